/* A source and a destination session in one process: there is no global state, so
 * this is a whole precopy migration (and its failure modes) without any migd, and a
 * postcopy in which many threads fault at once on the same and on different pages. */
#include "tools/migd/guest_vm.h"
#include "tools/migd/unit.h"
#include <mig/mig.h>
#include "channels/hello.h"
#include "channels/io.h"
#include "channels/uri.h"
#include "engine/dst/dst_int.h"
#include "bounded.h"
#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <sys/socket.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct Side {
	MigdGuest *guest;
	MigSession *s;
} Side;


static Side side_new(const char *name, gboolean incoming, const char *workload, guint64 size)
{
	MigdGuestConfig cfg = { .mem_size = size, .backend = MIG_MEM_ANON, .vcpus = 2, .seed = 77, .incoming = incoming };
	g_autoptr(GError) err = NULL;
	Side sd;

	g_assert_true(migd_workload_parse(workload, &cfg.workload, &err));
	sd.guest = migd_guest_new(&cfg, &err);
	g_assert_no_error(err);
	sd.s = mig_session_new(name);
	mig_session_set_vm(sd.s, &migd_guest_vm_ops, sd.guest, incoming ? MIG_RUN_INMIGRATE : MIG_RUN_RUNNING);
	mig_session_add_ram(sd.s, migd_guest_ram(sd.guest));
	if (!incoming)
		migd_guest_cont(sd.guest);
	return sd;
}

static void side_free(Side *sd)
{
	mig_session_free(sd->s);
	migd_guest_free(sd->guest);
}

static MigStatus wait_final(MigSession *s, gint64 timeout_s)
{
	gint64 end = g_get_monotonic_time() + timeout_s * G_USEC_PER_SEC;
	MigStatus st;

	while ((st = mig_session_status(s)) != MIG_STATUS_COMPLETED && st != MIG_STATUS_FAILED &&
	       st != MIG_STATUS_CANCELLED && g_get_monotonic_time() < end)
		g_usleep(5000);
	return st;
}

static char *sock_uri(const char *dir, const char *name)
{
	return g_strdup_printf("unix:%s/%s", dir, name);
}

static void set_unlimited(MigSession *s)
{
	g_autoptr(GError) err = NULL;

	g_assert_true(mig_session_set_param_u64(s, MIG_PARAM_MAX_BANDWIDTH, 0, &err));
	g_assert_no_error(err);
	g_assert_cmpuint(mig_session_get_param_u64(s, MIG_PARAM_MAX_BANDWIDTH), ==, 0);
}

/* Migrates src to dst at full speed; both must complete. */
static void migrate_ok(Side *src, Side *dst, const char *uri)
{
	g_autoptr(GError) err = NULL;

	g_assert_true(mig_session_incoming(dst->s, uri, &err));
	set_unlimited(src->s);
	g_assert_true(mig_session_migrate(src->s, uri, &err));
	g_assert_no_error(err);
	g_assert_cmpint(wait_final(src->s, 60), ==, MIG_STATUS_COMPLETED);
	g_assert_cmpint(wait_final(dst->s, 10), ==, MIG_STATUS_COMPLETED);
}

/* The destination's guest checked every unit of its memory and found none wrong. */
static void assert_intact(Side *dst, guint64 want_total)
{
	guint64 checked, failed, total;

	g_assert_true(migd_guest_wait_verified(dst->guest, 30 * G_USEC_PER_SEC));
	migd_guest_integrity(dst->guest, &checked, &failed, &total);
	g_assert_cmpuint(total, ==, want_total);
	g_assert_cmpuint(checked, ==, total);
	g_assert_cmpuint(failed, ==, 0);
}

static void test_precopy_in_process(void)
{
	g_autofree char *dir = g_dir_make_tmp("mig-XXXXXX", NULL);
	g_autofree char *uri = sock_uri(dir, "m.sock");
	Side src = side_new("src", FALSE, "seq", 32u << 20);
	Side dst = side_new("dst", TRUE, "random,wss=8M", 32u << 20);

	migrate_ok(&src, &dst, uri);
	g_assert_cmpint(mig_session_runstate(src.s), ==, MIG_RUN_POSTMIGRATE);
	g_assert_cmpint(mig_session_runstate(dst.s), ==, MIG_RUN_RUNNING);
	assert_intact(&dst, (32u << 20) / 4096);
	side_free(&src);
	side_free(&dst);
	g_rmdir(dir);
}

#define TAIL_GUEST (64u << 20)
#define TAIL_USED (16u << 20)

/* Pages of [p, p + len) the kernel holds for us. */
static gsize resident_pages(const guint8 *p, gsize len)
{
	g_autofree unsigned char *vec = g_malloc(len / 4096);
	gsize n = 0;

	g_assert_cmpint(mincore((void *)p, len, vec), ==, 0);
	for (gsize i = 0; i < len / 4096; i++)
		n += vec[i] & 1;
	return n;
}

static void set_multifd(MigSession *s, guint channels)
{
	g_autoptr(GError) err = NULL;

	g_assert_true(mig_session_set_cap(s, MIG_CAP_MULTIFD, TRUE, &err));
	g_assert_true(mig_session_set_param_u64(s, MIG_PARAM_MULTIFD_CHANNELS, channels, &err));
	g_assert_no_error(err);
}

/* A guest that wrote only its first quarter (used=): every unit is checked, the tail
 * against a zero record, and the tail never gets a page, neither on the source (the
 * senders find it empty in the page tables) nor on the destination (nothing written
 * there, and the verifier does not read what holds no page). channels: multifd's
 * senders, 0 the main channel's. */
static void zero_tail(guint channels)
{
	g_autofree char *dir = g_dir_make_tmp("mig-XXXXXX", NULL);
	g_autofree char *uri = sock_uri(dir, "m.sock");
	Side src = side_new("src", FALSE, "seq,used=16M", TAIL_GUEST);
	Side dst = side_new("dst", TRUE, "idle", TAIL_GUEST);
	const guint8 *stail = migd_guest_ram(src.guest)->host + TAIL_USED;
	const guint8 *dtail = migd_guest_ram(dst.guest)->host + TAIL_USED;

	if (channels) {
		set_multifd(src.s, channels);
		set_multifd(dst.s, channels);
	}
	g_assert_cmpuint(resident_pages(stail, TAIL_GUEST - TAIL_USED), ==, 0);
	migrate_ok(&src, &dst, uri);
	assert_intact(&dst, TAIL_GUEST / 4096);
	g_assert_cmpuint(resident_pages(stail, TAIL_GUEST - TAIL_USED), ==, 0);
	g_assert_cmpuint(resident_pages(dtail, TAIL_GUEST - TAIL_USED), ==, 0);
	/* the written part did move: the destination holds it */
	g_assert_cmpuint(resident_pages(migd_guest_ram(dst.guest)->host, TAIL_USED), ==, TAIL_USED / 4096);
	side_free(&src);
	side_free(&dst);
	g_rmdir(dir);
}

static void test_zero_tail(void)
{
	zero_tail(0);
}

static void test_zero_tail_multifd(void)
{
	zero_tail(2);
}

typedef struct TailFail {
	guint64 unit;
	char *what;
	guint n;
} TailFail;

static void tail_fail(gpointer opaque, guint64 unit, const char *what)
{
	TailFail *f = opaque;

	if (!f->n++) {
		f->unit = unit;
		f->what = g_strdup(what);
	}
}

/* Data in the tail that the record says is zero (written behind the guest's back on
 * the source, so it travels as a page): the destination's verifier reads that page
 * and reports it, whatever else in the tail it passes without reading. */
static void test_zero_tail_data_caught(void)
{
	g_autofree char *dir = g_dir_make_tmp("mig-XXXXXX", NULL);
	g_autofree char *uri = sock_uri(dir, "m.sock");
	Side src = side_new("src", FALSE, "idle,used=16M", TAIL_GUEST);
	Side dst = side_new("dst", TRUE, "idle", TAIL_GUEST);
	const guint64 bad = TAIL_USED / 4096 + 1000;
	TailFail f = { 0 };
	guint64 checked, failed, total;

	migd_guest_set_fail_cb(dst.guest, tail_fail, &f);
	migd_unit_write(migd_guest_ram(src.guest)->host + bad * 4096, 77, bad, 0);
	migrate_ok(&src, &dst, uri);
	g_assert_true(migd_guest_wait_verified(dst.guest, 30 * G_USEC_PER_SEC));
	migd_guest_integrity(dst.guest, &checked, &failed, &total);
	g_assert_cmpuint(checked, ==, TAIL_GUEST / 4096);
	g_assert_cmpuint(failed, ==, 1);
	g_assert_cmpuint(f.n, ==, 1);
	g_assert_cmpuint(f.unit, ==, bad);
	g_assert_nonnull(strstr(f.what, migd_unit_verdict_str(MIGD_UNIT_UNEXPECTED_DATA)));
	g_free(f.what);
	side_free(&src);
	side_free(&dst);
	g_rmdir(dir);
}

/* A dirty tracker that reports every page dirty at every sync and counts its calls:
 * plugged in, it must be the one the source asks (all of RAM goes again each pass). */
typedef struct AllDirty {
	MigDirtyTracker base;
	gsize npages;
	guint *syncs, *freed;
} AllDirty;

typedef struct TrackerCount {
	guint made, syncs, freed;
	const MigRamBlock *block;
} TrackerCount;

static gboolean all_start(MigDirtyTracker *t, void *host, gsize len, gsize page_size, GError **err)
{
	((AllDirty *)t)->npages = len / page_size;
	return TRUE;
}

static gboolean all_sync(MigDirtyTracker *t, gulong *bitmap, guint64 *ndirty, GError **err)
{
	AllDirty *a = (AllDirty *)t;

	for (gsize i = 0; i < a->npages; i++)
		bitmap[i / (8 * sizeof(gulong))] |= 1ul << (i % (8 * sizeof(gulong)));
	*ndirty = a->npages;
	(*a->syncs)++;
	return TRUE;
}

static void all_stop(MigDirtyTracker *t) { }

static void all_free(MigDirtyTracker *t)
{
	(*((AllDirty *)t)->freed)++;
	g_free(t);
}

static const MigDirtyTrackerOps all_dirty_ops = {
	.name = "all-dirty", .start = all_start, .sync = all_sync, .stop = all_stop, .free = all_free,
};

static MigDirtyTracker *all_dirty_new(gpointer opaque, const MigRamBlock *block, GError **err)
{
	TrackerCount *c = opaque;
	AllDirty *a = g_new0(AllDirty, 1);

	a->base.ops = &all_dirty_ops;
	a->syncs = &c->syncs;
	a->freed = &c->freed;
	c->made++;
	c->block = block;
	return &a->base;
}

static void test_custom_tracker(void)
{
	g_autofree char *dir = g_dir_make_tmp("mig-XXXXXX", NULL);
	g_autofree char *uri = sock_uri(dir, "m.sock");
	Side src = side_new("src", FALSE, "idle", 16u << 20);
	Side dst = side_new("dst", TRUE, "idle", 16u << 20);
	TrackerCount c = { 0 };
	MigInfo q = { .size = sizeof(q) };
	guint64 pages = (16u << 20) / 4096;

	mig_session_set_dirty_tracker(src.s, all_dirty_new, &c);
	migrate_ok(&src, &dst, uri);
	g_assert_cmpuint(c.made, ==, 1);
	g_assert_true(c.block == migd_guest_ram(src.guest));
	g_assert_cmpuint(c.syncs, >=, 2);   /* the first pass, and the stopped one at least */
	/* an idle guest dirties nothing: only this tracker makes every pass send it all */
	g_assert_true(mig_session_query(src.s, &q));
	g_assert_cmpuint(q.ram.normal + q.ram.duplicate, >=, pages * c.syncs);
	mig_info_clear(&q);
	assert_intact(&dst, pages);
	/* the tracker goes in the teardown after `completed` (src_thread), which freeing
	 * the session joins */
	side_free(&src);
	g_assert_cmpuint(c.freed, ==, 1);
	side_free(&dst);
	g_rmdir(dir);
}

/* Collects a session's log lines: the engine writes nowhere else. */
typedef struct LogSink {
	GMutex lock;
	GString *text;
	MigLogLevel worst;
} LogSink;

static void log_collect(gpointer opaque, MigLogLevel level, const char *session, const char *msg)
{
	LogSink *l = opaque;

	g_mutex_lock(&l->lock);
	g_string_append_printf(l->text, "%s: %s\n", session, msg);
	l->worst = MIN(l->worst, level);
	g_mutex_unlock(&l->lock);
}

/* A destination of another size refuses the stream; the source fails and keeps running. */
static void test_size_mismatch(void)
{
	g_autofree char *dir = g_dir_make_tmp("mig-XXXXXX", NULL);
	g_autofree char *uri = sock_uri(dir, "m.sock");
	g_autoptr(GError) err = NULL;
	Side src = side_new("src", FALSE, "seq", 16u << 20);
	Side dst = side_new("dst", TRUE, "idle", 32u << 20);
	guint64 checked, failed;
	MigInfo q = { .size = sizeof(q) };
	const char *desc, *line;
	LogSink log = { .text = g_string_new(NULL), .worst = MIG_LOG_DEBUG };

	g_mutex_init(&log.lock);
	mig_session_set_log_cb(src.s, log_collect, &log);
	g_assert_true(mig_session_incoming(dst.s, uri, &err));
	g_assert_true(mig_session_migrate(src.s, uri, &err));
	g_assert_cmpint(wait_final(src.s, 30), ==, MIG_STATUS_FAILED);
	g_assert_cmpint(mig_session_runstate(src.s), ==, MIG_RUN_RUNNING);
	g_assert_true(mig_session_query(src.s, &q));
	g_assert_true(q.started && q.source);
	g_assert_cmpint(q.status, ==, MIG_STATUS_FAILED);
	desc = q.error;
	g_assert_nonnull(strstr(desc, "bytes on the source"));
	/* the failure reached the embedder's log as a line of its own, with the session's
	 * name (lines before it say which dirty tracker each RAM block got) */
	g_assert_cmpint(log.worst, ==, MIG_LOG_ERROR);
	line = g_str_has_prefix(log.text->str, "src: migration failed: ")
		       ? log.text->str
		       : strstr(log.text->str, "\nsrc: migration failed: ");
	g_assert_nonnull(line);
	g_assert_nonnull(strstr(line, desc));
	migd_guest_self_check(src.guest, &checked, &failed);
	g_assert_cmpuint(failed, ==, 0);
	side_free(&src);
	side_free(&dst);
	mig_info_clear(&q);
	g_string_free(log.text, TRUE);
	g_mutex_clear(&log.lock);
	g_rmdir(dir);
}

/* Wrong magic, wrong version, garbage: each refused with a reason, the listener lives. */
static void test_bad_hello(void)
{
	g_autofree char *dir = g_dir_make_tmp("mig-XXXXXX", NULL);
	g_autofree char *uri = sock_uri(dir, "m.sock");
	g_autoptr(GError) err = NULL;
	Side dst = side_new("dst", TRUE, "idle", 8u << 20);
	MigUri u;
	static const struct { guint32 magic; guint16 version; int want; } cases[] = {
		{ 0xdeadbeef, 1, MIG_HELLO_BAD_MAGIC },
		{ MIG_HELLO_MAGIC, 99, MIG_HELLO_BAD_VERSION },
	};

	g_assert_true(mig_session_incoming(dst.s, uri, &err));
	g_assert_cmpint(mig_uri_parse(uri, &u), ==, 0);
	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		guint8 hello[MIG_HELLO_LEN], reply[MIG_HELLO_REPLY_HDR_LEN];
		int fd = mig_uri_connect(&u, 2000);

		g_assert_cmpint(fd, >=, 0);
		mig_hello_pack(&(MigHello){ .version = cases[i].version, .type = MIG_CHAN_MAIN }, hello);
		mig_put_be32(hello, cases[i].magic);   /* over the good magic pack wrote */
		g_assert_cmpint(mig_io_write_full(fd, hello, sizeof(hello)), ==, 0);
		g_assert_cmpint(mig_io_read_full(fd, reply, sizeof(reply)), ==, 0);
		g_assert_cmpmem(reply, 4, "MIGA", 4);
		g_assert_cmpint(mig_get_be32(reply + 4), ==, cases[i].want);
		close(fd);
	}
	g_assert_cmpint(mig_session_status(dst.s), ==, MIG_STATUS_SETUP);
	side_free(&dst);
	g_rmdir(dir);
}

/* The storm: STORM_THREADS threads stand in for vCPUs and read the destination's guest
 * in rounds, all released at once by a barrier: in even rounds every thread reads the
 * same unit, in odd rounds each its own. Each read must find the unit whole and the
 * source's (a missing page read as zero, or another unit's, fails it). */
#define STORM_THREADS 16
#define STORM_ROUNDS 96
#define STORM_MIB 64u

typedef struct Storm {
	const guint8 *host;
	guint64 units;
	guint64 round_unit[STORM_ROUNDS];
	pthread_barrier_t start;
	gint bad;              /* reads that found a wrong unit (atomic) */
	gint first_bad_idx;    /* the first of them, for the message */
} Storm;

typedef struct StormThread {
	Storm *st;
	guint index;
} StormThread;

static gpointer storm_main(gpointer p)
{
	StormThread *t = p;
	Storm *st = t->st;
	guint8 buf[MIGD_UNIT_SIZE];

	for (guint r = 0; r < STORM_ROUNDS; r++) {
		/* odd rounds: 16 different units spread over the guest, one per thread */
		guint64 idx = r % 2 ? (st->round_unit[r] + (guint64)t->index * (st->units / STORM_THREADS)) % st->units
				    : st->round_unit[r];

		pthread_barrier_wait(&st->start);
		memcpy(buf, st->host + idx * MIGD_UNIT_SIZE, sizeof(buf));
		if (migd_unit_check_self(buf, 77, idx) != MIGD_UNIT_OK &&
		    !g_atomic_int_add(&st->bad, 1))
			g_atomic_int_set(&st->first_bad_idx, (gint)idx);
	}
	return NULL;
}

static gint64 value_int(const MigValue *obj, const char *name)
{
	const MigValue *v = obj ? mig_value_get(obj, name) : NULL;

	g_assert_nonnull(v);
	g_assert_cmpint(v->type, ==, MIG_VALUE_INT);
	return v->i;
}

static gint64 value_sum(const MigValue *arr)
{
	gint64 sum = 0;

	g_assert_nonnull(arr);
	g_assert_cmpint(arr->type, ==, MIG_VALUE_ARRAY);
	for (guint i = 0; i < arr->items->len; i++)
		sum += ((const MigValue *)g_ptr_array_index(arr->items, i))->i;
	return sum;
}

static void set_u64(MigSession *s, MigParam p, guint64 v)
{
	g_autoptr(GError) err = NULL;

	g_assert_true(mig_session_set_param_u64(s, p, v, &err));
	g_assert_no_error(err);
}

/* Until the destination runs its guest in postcopy (or the source failed). */
static void wait_postcopy_active(Side *src, Side *dst, gint64 timeout_s)
{
	gint64 end = g_get_monotonic_time() + timeout_s * G_USEC_PER_SEC;

	while (mig_session_status(dst->s) != MIG_STATUS_POSTCOPY_ACTIVE &&
	       mig_session_status(src->s) != MIG_STATUS_FAILED && g_get_monotonic_time() < end)
		g_usleep(1000);
	g_assert_cmpstr(mig_status_str(mig_session_status(dst->s)), ==, "postcopy-active");
}

/* postcopy-ram on both sides, the source unthrottled and switching after its first
 * pass: postcopy starts with the pages the guest rewrote meanwhile missing. */
static void postcopy_after_one_pass(Side *src, Side *dst)
{
	g_autoptr(GError) err = NULL;

	for (guint i = 0; i < 2; i++) {
		g_assert_true(mig_session_set_cap(i ? dst->s : src->s, MIG_CAP_POSTCOPY_RAM, TRUE, &err));
		g_assert_no_error(err);
	}
	set_u64(src->s, MIG_PARAM_MAX_BANDWIDTH, 0);
	set_u64(src->s, MIG_PARAM_X_POSTCOPY_AFTER_PASSES, 1);
}

/* Many threads faulting at once over 4 preempt channels, the threads of the fault path
 * real-time where the test may (root): every read finds the right data, and the request
 * counts agree exactly (the destination's requests, its timed placements, the source's
 * served requests), so none was lost or placed twice. More waits than requests shows
 * that threads did wait on one page together. Bulk is held to 8 MiB/s meanwhile, so the
 * storm meets missing pages, and let go afterwards; then every unit is checked against
 * the source's record. */
static void test_postcopy_storm(void)
{
	g_autofree char *dir = g_dir_make_tmp("mig-XXXXXX", NULL);
	g_autofree char *uri = sock_uri(dir, "m.sock");
	g_autoptr(GError) err = NULL;
	/* unthrottled: most of the guest is written again during the first pass, so
	 * postcopy starts with most pages missing */
	Side src = side_new("src", FALSE, "seq,rate=0", STORM_MIB << 20);
	Side dst = side_new("dst", TRUE, "idle", STORM_MIB << 20);
	MigCapSetting caps[] = { { MIG_CAP_POSTCOPY_RAM, TRUE }, { MIG_CAP_POSTCOPY_PREEMPT, TRUE } };
	guint rt = geteuid() == 0 ? 1 : 0;
	StormThread t[STORM_THREADS];
	GThread *th[STORM_THREADS];
	MigInfo qs = { .size = sizeof(qs) }, qd = { .size = sizeof(qd) };
	gint64 reqs, timed = 0, waits;
	const MigValue *lat;
	Storm st = { 0 };

	for (guint i = 0; i < 2; i++) {
		MigSession *s = i ? dst.s : src.s;

		g_assert_true(mig_session_set_caps(s, caps, G_N_ELEMENTS(caps), &err));
		g_assert_no_error(err);
		set_u64(s, MIG_PARAM_X_PREEMPT_CHANNELS, 4);
		set_u64(s, MIG_PARAM_X_POSTCOPY_RT_PRIORITY, rt);
	}
	g_assert_true(mig_session_set_cap(dst.s, MIG_CAP_POSTCOPY_BLOCKTIME, TRUE, &err));
	g_assert_no_error(err);
	/* postcopy after one pass; its bulk slow while the threads read */
	set_u64(src.s, MIG_PARAM_MAX_BANDWIDTH, 0);
	set_u64(src.s, MIG_PARAM_MAX_POSTCOPY_BANDWIDTH, 8u << 20);
	set_u64(src.s, MIG_PARAM_DOWNTIME_LIMIT, 1);
	set_u64(src.s, MIG_PARAM_X_POSTCOPY_AFTER_PASSES, 1);
	g_assert_true(mig_session_incoming(dst.s, uri, &err));
	g_assert_true(mig_session_migrate(src.s, uri, &err));
	g_assert_no_error(err);
	/* a pass of 64 MiB, generous: the test may share 2 CPUs with busier ones; the
	 * guest runs there from then on: only now may its memory be read */
	wait_postcopy_active(&src, &dst, 90);

	st.host = migd_guest_ram(dst.guest)->host;
	st.units = (STORM_MIB << 20) / MIGD_UNIT_SIZE;
	for (guint r = 0; r < STORM_ROUNDS; r++)
		st.round_unit[r] = g_test_rand_int_range(0, (gint32)st.units);
	g_assert_cmpint(pthread_barrier_init(&st.start, NULL, STORM_THREADS), ==, 0);
	for (guint i = 0; i < STORM_THREADS; i++) {
		t[i] = (StormThread){ .st = &st, .index = i };
		th[i] = g_thread_new("storm", storm_main, &t[i]);
	}
	for (guint i = 0; i < STORM_THREADS; i++)
		g_thread_join(th[i]);
	pthread_barrier_destroy(&st.start);
	set_u64(src.s, MIG_PARAM_MAX_POSTCOPY_BANDWIDTH, 0);
	g_assert_cmpint(wait_final(src.s, 90), ==, MIG_STATUS_COMPLETED);
	g_assert_cmpint(wait_final(dst.s, 30), ==, MIG_STATUS_COMPLETED);
	if (g_atomic_int_get(&st.bad))
		g_error("%d storm reads found a wrong unit, the first unit %d", g_atomic_int_get(&st.bad),
			g_atomic_int_get(&st.first_bad_idx));

	g_assert_true(mig_session_query(src.s, &qs));
	g_assert_true(mig_session_query(dst.s, &qd));
	reqs = value_int(qd.extra, "x-postcopy-requests");
	lat = mig_value_get(qd.extra, "x-postcopy-latency");
	g_assert_nonnull(lat);
	for (guint i = 0; i < lat->items->len; i++)
		timed += value_int(g_ptr_array_index(lat->items, i), "count");
	waits = value_sum(mig_value_get(qd.extra, "postcopy-latency-dist"));
	g_test_message("%" G_GINT64_FORMAT " requests, %" G_GINT64_FORMAT " timed placements, %" G_GINT64_FORMAT
		       " waits, source served %" G_GUINT64_FORMAT " (%" G_GUINT64_FORMAT " skipped: bulk had them)",
		       reqs, timed, waits, qs.ram.postcopy_requests, qs.ram.urgent_skipped);
	g_assert_cmpint(reqs, >, 0);
	g_assert_cmpint(timed, ==, reqs);
	g_assert_cmpuint(qs.ram.postcopy_requests, ==, (guint64)reqs);
	g_assert_cmpint(waits, >, reqs);
	mig_info_clear(&qs);
	mig_info_clear(&qd);
	assert_intact(&dst, st.units);
	side_free(&src);
	side_free(&dst);
	g_rmdir(dir);
}

/* A channel lost between the destination's GO and its guest's start (docs/design.md,
 * Switchover): the loader holds there (Dst.test_after_go) while the loss is reported,
 * and the switchover must end as the same loss does a moment later, never failed. */
static MigStatus wait_status(MigSession *s, MigStatus want, gint64 timeout_s)
{
	gint64 end = g_get_monotonic_time() + timeout_s * G_USEC_PER_SEC;
	MigStatus st;

	while ((st = mig_session_status(s)) != want && st != MIG_STATUS_COMPLETED && st != MIG_STATUS_FAILED &&
	       st != MIG_STATUS_CANCELLED && g_get_monotonic_time() < end)
		g_usleep(5000);
	return st;
}

static gboolean loss_reported(MigSession *s)
{
	gboolean r;

	g_mutex_lock(&s->lock);
	r = s->dst->switch_fault || s->status == MIG_STATUS_FAILED;
	g_mutex_unlock(&s->lock);
	return r;
}

/* multifd channel 0 dies under its receiver, which reports it (mig_dst_fail) */
static void cut_multifd_after_go(MigSession *s)
{
	int fd;

	g_mutex_lock(&s->dst->mf_lock);
	fd = s->dst->mf_fd[0];
	g_mutex_unlock(&s->dst->mf_lock);
	g_assert_cmpint(fd, >=, 0);
	g_assert_cmpint(shutdown(fd, SHUT_RDWR), ==, 0);
	bounded_wait(loss_reported, s, "multifd channel 0's loss reported");
}

/* Postcopy: the guest starts, then pauses with its faults waiting (it ran on no page
 * that did not come: every unit is checked at the end), and the migration recovers.
 * It used to end failed with the guest started and its faults waiting for good. */
static void test_postcopy_channel_lost_at_go(void)
{
	g_autofree char *dir = g_dir_make_tmp("mig-XXXXXX", NULL);
	g_autofree char *uri = sock_uri(dir, "m.sock");
	g_autofree char *again = sock_uri(dir, "r.sock");
	g_autoptr(GError) err = NULL;
	Side src = side_new("src", FALSE, "seq,rate=0", 32u << 20);
	Side dst = side_new("dst", TRUE, "random,wss=8M", 32u << 20);

	postcopy_after_one_pass(&src, &dst);
	set_multifd(src.s, 2);
	set_multifd(dst.s, 2);
	g_assert_true(mig_session_incoming(dst.s, uri, &err));
	dst.s->dst->test_after_go = cut_multifd_after_go;
	g_assert_true(mig_session_migrate(src.s, uri, &err));
	g_assert_no_error(err);
	g_assert_cmpstr(mig_status_str(wait_status(dst.s, MIG_STATUS_POSTCOPY_PAUSED, 60)), ==, "postcopy-paused");
	g_assert_cmpint(mig_session_runstate(dst.s), ==, MIG_RUN_RUNNING);
	g_assert_cmpstr(mig_status_str(wait_status(src.s, MIG_STATUS_POSTCOPY_PAUSED, 30)), ==, "postcopy-paused");
	g_assert_true(mig_session_recover(dst.s, again, &err));
	g_assert_no_error(err);
	g_assert_true(mig_session_resume(src.s, again, &err));
	g_assert_no_error(err);
	g_assert_cmpstr(mig_status_str(wait_final(src.s, 60)), ==, "completed");
	g_assert_cmpstr(mig_status_str(wait_final(dst.s, 10)), ==, "completed");
	assert_intact(&dst, (32u << 20) / 4096);
	side_free(&src);
	side_free(&dst);
	g_rmdir(dir);
}

/* a preempt channel (or any but the main one) reports its loss, as mig/dst/urg/N does */
static void fail_after_go(MigSession *s)
{
	mig_dst_fail(s, "preempt channel 0: Connection reset by peer (the test's)");
}

/* Precopy: every page is here, so the guest runs and the migration completes on both
 * sides. It used to end failed on the destination with its guest running. */
static void test_precopy_channel_lost_at_go(void)
{
	g_autofree char *dir = g_dir_make_tmp("mig-XXXXXX", NULL);
	g_autofree char *uri = sock_uri(dir, "m.sock");
	g_autoptr(GError) err = NULL;
	Side src = side_new("src", FALSE, "seq", 32u << 20);
	Side dst = side_new("dst", TRUE, "random,wss=8M", 32u << 20);

	set_unlimited(src.s);
	g_assert_true(mig_session_incoming(dst.s, uri, &err));
	dst.s->dst->test_after_go = fail_after_go;
	g_assert_true(mig_session_migrate(src.s, uri, &err));
	g_assert_no_error(err);
	g_assert_cmpstr(mig_status_str(wait_final(src.s, 60)), ==, "completed");
	g_assert_cmpstr(mig_status_str(wait_final(dst.s, 10)), ==, "completed");
	g_assert_cmpint(mig_session_runstate(dst.s), ==, MIG_RUN_RUNNING);
	assert_intact(&dst, (32u << 20) / 4096);
	side_free(&src);
	side_free(&dst);
	g_rmdir(dir);
}

/* mig/dst/fault's own steps failing under a running postcopy guest: Dst.test_fault_step
 * fails the first read of userfaultfd, or the first fault handled, with EIO. The
 * migration pauses (its guest running, a read of a missing page waiting), the thread
 * still reads the next fault while paused and asks for its page, and the migration
 * recovers and completes intact. A failed read used to end the destination `failed`
 * with its guest running, so that any later loss unregistered userfaultfd under it;
 * a failed fault, or read, made the thread quit for good. The faults are the test's
 * own reads (the guest idles), each of a page still missing. */
typedef struct FaultStep {
	gboolean reading;      /* the step to fail: a read, or a fault */
	gint failed;           /* it was failed once (atomic) */
} FaultStep;

static FaultStep fault_step;   /* the hook has only the session to go by */

static int fail_first_step(MigSession *s, gboolean reading)
{
	if (reading != fault_step.reading || !g_atomic_int_compare_and_exchange(&fault_step.failed, 0, 1))
		return 0;
	return -EIO;
}

typedef struct Asked {
	MigSession *s;
	gint64 base;
} Asked;

static gint64 dst_requests(MigSession *s)
{
	MigInfo q = { .size = sizeof(q) };
	gint64 n;

	g_assert_true(mig_session_query(s, &q));
	n = value_int(q.extra, "x-postcopy-requests");
	mig_info_clear(&q);
	return n;
}

static gboolean asked_more(Asked *a)
{
	return dst_requests(a->s) > a->base;
}

/* The last page of the guest's RAM before `before` that has not arrived yet. */
static gsize missing_page(Side *dst, gsize before)
{
	const gulong *rcv = dst->s->dst->received[0];

	while (before-- > 0)
		if (!(__atomic_load_n(&rcv[before / (8 * sizeof(gulong))], __ATOMIC_SEQ_CST) &
		      (1ul << (before % (8 * sizeof(gulong))))))
			return before;
	g_error("every page arrived: postcopy ended too soon for the test");
}

static gpointer read_page(gpointer p)
{
	return GUINT_TO_POINTER((guint)*(volatile guint8 *)p);
}

static void fault_step_fails(gboolean reading)
{
	g_autofree char *dir = g_dir_make_tmp("mig-XXXXXX", NULL);
	g_autofree char *uri = sock_uri(dir, "m.sock");
	g_autofree char *again = sock_uri(dir, "r.sock");
	g_autoptr(GError) err = NULL;
	const gsize pages = (32u << 20) / 4096;
	Side src = side_new("src", FALSE, "seq,rate=0", 32u << 20);
	Side dst = side_new("dst", TRUE, "idle", 32u << 20);
	guint8 *host = migd_guest_ram(dst.guest)->host;
	Asked a = { .s = dst.s };
	BoundedCall *first, *second;
	gsize p1, p2;

	/* most pages rewritten during the one pass, and a slow bulk: pages stay missing */
	postcopy_after_one_pass(&src, &dst);
	set_u64(src.s, MIG_PARAM_MAX_POSTCOPY_BANDWIDTH, 1u << 20);
	fault_step = (FaultStep){ .reading = reading };
	g_assert_true(mig_session_incoming(dst.s, uri, &err));
	dst.s->dst->test_fault_step = fail_first_step;
	g_assert_true(mig_session_migrate(src.s, uri, &err));
	g_assert_no_error(err);
	wait_postcopy_active(&src, &dst, 60);

	p1 = missing_page(&dst, pages);
	first = bounded_call_start("fault-1", read_page, host + p1 * 4096);
	g_assert_cmpstr(mig_status_str(wait_status(dst.s, MIG_STATUS_POSTCOPY_PAUSED, 30)), ==, "postcopy-paused");
	g_assert_cmpint(g_atomic_int_get(&fault_step.failed), ==, 1);
	g_assert_cmpint(mig_session_runstate(dst.s), ==, MIG_RUN_RUNNING);
	g_assert_cmpstr(mig_status_str(wait_status(src.s, MIG_STATUS_POSTCOPY_PAUSED, 30)), ==, "postcopy-paused");
	g_assert_false(bounded_call_done_within(first, 0));

	/* paused, nothing arrives: a second missing page is asked for, held until resumed */
	a.base = dst_requests(dst.s);
	p2 = missing_page(&dst, p1);
	second = bounded_call_start("fault-2", read_page, host + p2 * 4096);
	bounded_wait(asked_more, &a, "the request for a page faulted on while paused");
	g_assert_cmpstr(mig_status_str(mig_session_status(dst.s)), ==, "postcopy-paused");

	g_assert_true(mig_session_recover(dst.s, again, &err));
	g_assert_no_error(err);
	g_assert_true(mig_session_resume(src.s, again, &err));
	g_assert_no_error(err);
	bounded_call_join(first, "the read of the first missing page");
	bounded_call_join(second, "the read of the second missing page");
	set_u64(src.s, MIG_PARAM_MAX_POSTCOPY_BANDWIDTH, 0);
	g_assert_cmpstr(mig_status_str(wait_final(src.s, 60)), ==, "completed");
	g_assert_cmpstr(mig_status_str(wait_final(dst.s, 10)), ==, "completed");
	assert_intact(&dst, pages);
	side_free(&src);
	side_free(&dst);
	g_rmdir(dir);
}

static void test_postcopy_fault_read_fails(void)
{
	fault_step_fails(TRUE);
}

static void test_postcopy_fault_fails(void)
{
	fault_step_fails(FALSE);
}

/* A resume that comes while the paused destination still tears down its old channels
 * (Dst.test_before_ready holds it there) is refused with a reason the source reads:
 * the destination waits for the teardown half of the hello's bound, the source for
 * the reply the whole of it (x-channel-timeout, 1 s on both sides here). The
 * destination keeps listening, so the source's next resume completes the migration.
 * With the two waits equal, the source timed out first and reported only that. */
static gint teardown_held;   /* 1 while the hook holds the loader (atomic) */

static void hold_teardown(MigSession *s)
{
	gint64 end = g_get_monotonic_time() + 20 * G_USEC_PER_SEC;

	(void)s;
	while (g_atomic_int_get(&teardown_held) && g_get_monotonic_time() < end)
		g_usleep(2000);
}

static void test_postcopy_resume_while_tearing_down(void)
{
	g_autofree char *dir = g_dir_make_tmp("mig-XXXXXX", NULL);
	g_autofree char *uri = sock_uri(dir, "m.sock");
	g_autofree char *again = sock_uri(dir, "r.sock");
	g_autoptr(GError) err = NULL;
	Side src = side_new("src", FALSE, "seq,rate=0", 32u << 20);
	Side dst = side_new("dst", TRUE, "random,wss=8M", 32u << 20);
	MigInfo q = { .size = sizeof(q) };

	postcopy_after_one_pass(&src, &dst);
	set_u64(src.s, MIG_PARAM_X_CHANNEL_TIMEOUT, 1000);
	set_u64(dst.s, MIG_PARAM_X_CHANNEL_TIMEOUT, 1000);
	set_u64(src.s, MIG_PARAM_MAX_POSTCOPY_BANDWIDTH, 1u << 20);
	g_atomic_int_set(&teardown_held, 1);
	g_assert_true(mig_session_incoming(dst.s, uri, &err));
	dst.s->dst->test_before_ready = hold_teardown;
	g_assert_true(mig_session_migrate(src.s, uri, &err));
	g_assert_no_error(err);
	wait_postcopy_active(&src, &dst, 60);

	g_assert_true(mig_session_pause(dst.s, &err));
	g_assert_no_error(err);
	g_assert_cmpstr(mig_status_str(wait_status(src.s, MIG_STATUS_POSTCOPY_PAUSED, 30)), ==, "postcopy-paused");
	g_assert_true(mig_session_recover(dst.s, again, &err));
	g_assert_no_error(err);
	g_assert_true(mig_session_resume(src.s, again, &err));
	g_assert_no_error(err);
	/* the refusal comes after the destination's 0.5 s: the source is paused again */
	g_assert_cmpstr(mig_status_str(wait_status(src.s, MIG_STATUS_POSTCOPY_PAUSED, 30)), ==, "postcopy-paused");
	g_assert_true(mig_session_query(src.s, &q));
	g_assert_nonnull(q.error);
	if (!strstr(q.error, "still tearing down its old channels"))
		g_error("the source's error does not carry the destination's refusal: %s", q.error);
	mig_info_clear(&q);
	g_assert_cmpstr(mig_status_str(mig_session_status(dst.s)), ==, "postcopy-recover-setup");

	g_atomic_int_set(&teardown_held, 0);
	g_assert_true(mig_session_resume(src.s, again, &err));
	g_assert_no_error(err);
	set_u64(src.s, MIG_PARAM_MAX_POSTCOPY_BANDWIDTH, 0);
	g_assert_cmpstr(mig_status_str(wait_final(src.s, 60)), ==, "completed");
	g_assert_cmpstr(mig_status_str(wait_final(dst.s, 10)), ==, "completed");
	assert_intact(&dst, (32u << 20) / 4096);
	side_free(&src);
	side_free(&dst);
	g_rmdir(dir);
}

/* A file save whose last step, the COMPLETE header's fdatasync, fails
 * (MigSession.test_file_sync): the source's guest runs on, so the file must not load,
 * though the page cache holds that header whatever reached the disk. */
static int fail_header_sync(MigSession *s, const char *what)
{
	(void)s;
	return strcmp(what, "header") ? 0 : -EIO;
}

static void test_file_header_sync_fails(void)
{
	g_autofree char *dir = g_dir_make_tmp("mig-XXXXXX", NULL);
	g_autofree char *path = g_build_filename(dir, "f.img", NULL);
	g_autofree char *uri = g_strdup_printf("file:%s", path);
	Side src = side_new("src", FALSE, "seq", 16u << 20);
	Side dst = side_new("dst", TRUE, "idle", 16u << 20);
	g_autoptr(GError) err = NULL;
	guint8 head[16];
	int fd;

	g_assert_true(mig_session_set_cap(src.s, MIG_CAP_MAPPED_RAM, TRUE, &err));
	g_assert_true(mig_session_set_cap(dst.s, MIG_CAP_MAPPED_RAM, TRUE, &err));
	src.s->test_file_sync = fail_header_sync;
	g_assert_true(mig_session_migrate(src.s, uri, &err));
	g_assert_no_error(err);
	g_assert_cmpstr(mig_status_str(wait_final(src.s, 60)), ==, "failed");
	g_assert_nonnull(strstr(src.s->error, "flushing the header"));
	g_assert_cmpint(mig_session_runstate(src.s), ==, MIG_RUN_RUNNING);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	g_assert_cmpint(fd, >=, 0);
	g_assert_cmpint(pread(fd, head, sizeof(head), 0), ==, sizeof(head));
	close(fd);
	g_assert_cmpmem(head, 8, "MIGMAPRM", 8);
	g_assert_cmpuint(head[12] | head[13] | head[14] | head[15], ==, 0);   /* flags: not COMPLETE */
	g_assert_true(mig_session_incoming(dst.s, uri, &err));
	g_assert_no_error(err);
	g_assert_cmpstr(mig_status_str(wait_final(dst.s, 30)), ==, "failed");
	g_assert_nonnull(strstr(dst.s->error, "marked incomplete"));
	side_free(&src);
	side_free(&dst);
	g_unlink(path);
	g_rmdir(dir);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/session/precopy-in-process", test_precopy_in_process);
	g_test_add_func("/session/zero-tail", test_zero_tail);
	g_test_add_func("/session/zero-tail-multifd", test_zero_tail_multifd);
	g_test_add_func("/session/zero-tail-data-caught", test_zero_tail_data_caught);
	g_test_add_func("/session/size-mismatch", test_size_mismatch);
	g_test_add_func("/session/custom-dirty-tracker", test_custom_tracker);
	g_test_add_func("/session/bad-hello", test_bad_hello);
	g_test_add_func("/session/postcopy-storm", test_postcopy_storm);
	g_test_add_func("/session/postcopy-channel-lost-at-go", test_postcopy_channel_lost_at_go);
	g_test_add_func("/session/precopy-channel-lost-at-go", test_precopy_channel_lost_at_go);
	g_test_add_func("/session/postcopy-fault-read-fails", test_postcopy_fault_read_fails);
	g_test_add_func("/session/postcopy-fault-fails", test_postcopy_fault_fails);
	g_test_add_func("/session/postcopy-resume-while-tearing-down", test_postcopy_resume_while_tearing_down);
	g_test_add_func("/session/file-header-sync-fails", test_file_header_sync_fails);
	return g_test_run();
}
