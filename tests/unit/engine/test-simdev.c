/* The simulated device driven through its ops as the engine would: a source device's
 * pre-copy and stop-copy fds are read, the bytes (intact or damaged on purpose) are
 * written into a destination device's resuming fd, and its STOP verdict is checked. */
#include "tools/migd/simdev.h"
#include "engine/qmp/qmp_cmds.h"
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#define CHUNK 4096u

/* Every case runs twice: devices keeping their state image (spliced into the pipe,
 * compared in place) and devices generating each chunk on the fly. */
static gboolean stream_only;

static MigdSimDev *dev_new(const char *spec)
{
	g_autoptr(GError) err = NULL;
	MigdSimDevConfig cfg;

	g_assert_true(migd_simdev_parse(spec, &cfg, &err));
	g_assert_no_error(err);
	cfg.stream_only = stream_only;
	return migd_simdev_new(&cfg);
}

static void set_state(MigdSimDev *d, MigDevState st, int *fd)
{
	g_autoptr(GError) err = NULL;
	int dummy;

	g_assert_true(migd_simdev_ops.set_state(d, st, fd ? fd : &dummy, &err));
	g_assert_no_error(err);
	if (!fd)
		g_assert_cmpint(dummy, ==, -1);
}

/* Appends up to max bytes (G_MAXSIZE: until EOF) read from fd to out. */
static void read_into(int fd, GByteArray *out, gsize max)
{
	guint8 buf[65536];

	while (max) {
		ssize_t n = read(fd, buf, MIN(sizeof(buf), max));

		g_assert_cmpint(n, >=, 0);
		if (n == 0)
			return;
		g_byte_array_append(out, buf, (guint)n);
		max -= (gsize)n;
	}
}

/* The source's whole state: pre_read bytes in PRE_COPY (if the device has pre-copy),
 * the rest in STOP_COPY. */
static GByteArray *source_state(const char *spec, gsize pre_read)
{
	MigdSimDev *src = dev_new(spec);
	GByteArray *out = g_byte_array_new();
	guint64 initial, dirty, stop_copy, pre_stop_copy = 0;
	int fd;

	if (pre_read) {
		set_state(src, MIG_DEV_PRE_COPY, &fd);
		read_into(fd, out, pre_read);
		g_assert_true(migd_simdev_ops.precopy_info(src, &initial, &dirty, NULL));
		g_assert_cmpuint(dirty, ==, 0);
		g_assert_true(migd_simdev_ops.data_size(src, &pre_stop_copy, NULL));
		g_assert_cmpuint(pre_stop_copy, >=, initial);
		close(fd);
	}
	set_state(src, MIG_DEV_STOP_COPY, &fd);
	g_assert_true(migd_simdev_ops.data_size(src, &stop_copy, NULL));
	if (pre_read)   /* what was not read in pre-copy is in the stop-copy stream */
		g_assert_cmpuint(stop_copy, ==, pre_stop_copy);
	read_into(fd, out, G_MAXSIZE);
	g_assert_cmpuint(out->len, ==, pre_read + stop_copy);
	close(fd);
	set_state(src, MIG_DEV_STOP, NULL);
	migd_simdev_free(src);
	return out;
}

/* Writes n bytes of p into a destination device, piece bytes per write, and returns
 * its verdict's error (NULL: loaded); *query_out gets the device's query members as
 * JSON. */
static char *load_state_pieces(const char *spec, const guint8 *p, gsize n, gsize piece, char **query_out)
{
	MigdSimDev *dst = dev_new(spec);
	g_autoptr(GError) err = NULL;
	g_autoptr(JsonBuilder) b = json_builder_new();
	g_autoptr(JsonGenerator) gen = json_generator_new();
	g_autoptr(JsonNode) root = NULL;
	g_autoptr(MigValue) q = mig_value_new_object();
	int fd, dummy;

	set_state(dst, MIG_DEV_STOP, NULL);
	set_state(dst, MIG_DEV_RESUMING, &fd);
	while (n) {
		ssize_t w = write(fd, p, MIN(n, piece));

		if (w < 0 && errno == EPIPE)
			break;   /* fail-mode=abort: the device closed its end */
		g_assert_cmpint(w, >, 0);
		p += w;
		n -= (gsize)w;
	}
	close(fd);   /* before RESUMING -> STOP: the device waits for EOF */
	migd_simdev_ops.set_state(dst, MIG_DEV_STOP, &dummy, &err);
	migd_simdev_ops.query(dst, q);
	json_builder_begin_object(b);
	mig_qmp_add_value_members(b, q);   /* as query-migrate shows it */
	json_builder_end_object(b);
	root = json_builder_get_root(b);
	json_generator_set_root(gen, root);
	if (query_out)
		*query_out = json_generator_to_data(gen, NULL);
	migd_simdev_free(dst);
	return err ? g_strdup(err->message) : NULL;
}

static char *load_state(const char *spec, const guint8 *p, gsize n, char **query_out)
{
	return load_state_pieces(spec, p, n, 100000, query_out);
}

static void test_clean_stream(void)
{
	static const struct {
		const char *spec;
		gsize pre_read;
	} cases[] = {
		{ "sim,id=nic0,size=3M", 0 },
		{ "sim,id=nic0,size=3M,precopy=1M", 300001 },   /* partial pre-copy: the rest is re-served */
		{ "sim,id=nic0,size=3M,precopy=1M", 1u << 20 }, /* all of it */
		{ "sim,id=nic0,size=3M,precopy=1M", 0 },        /* never entered PRE_COPY */
		{ "sim,id=gpu.1,size=12345,precopy=777,seed=9", 5 },
		{ "sim,id=empty,size=0", 0 },
	};

	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autoptr(GByteArray) st = source_state(cases[i].spec, cases[i].pre_read);
		g_autofree char *q = NULL;
		g_autofree char *e = load_state(cases[i].spec, st->data, st->len, &q);
		g_autofree char *want = g_strdup_printf("\"verified-bytes\":%u", st->len);
		g_autofree char *e2 = NULL;

		g_test_message("%s, %zu read in pre-copy: %s", cases[i].spec, cases[i].pre_read, q);
		g_assert_null(e);
		g_assert_nonnull(strstr(q, "\"result\":\"ok\""));
		g_assert_nonnull(strstr(q, want));
		g_assert_nonnull(strstr(q, "\"wait-ms\":"));   /* the load's own figures */
		g_assert_nonnull(strstr(q, "\"cpu-ms\":"));
		stream_only = !stream_only;   /* the image and the generator agree */
		e2 = load_state(cases[i].spec, st->data, st->len, NULL);
		stream_only = !stream_only;
		g_assert_null(e2);
	}
}

static void test_precopy_info(void)
{
	MigdSimDev *src = dev_new("sim,id=a,size=1M,precopy=256K");
	g_autoptr(GByteArray) got = g_byte_array_new();
	g_autoptr(GError) err = NULL;
	guint64 initial, dirty, size;
	int fd;

	g_assert_false(migd_simdev_ops.precopy_info(src, &initial, &dirty, &err));
	g_assert_cmpint(err->code, ==, EINVAL);
	g_assert_true(migd_simdev_ops.data_size(src, &size, NULL));
	g_assert_cmpuint(size, ==, (1u << 20) + (256u << 10));
	set_state(src, MIG_DEV_PRE_COPY, &fd);
	g_assert_true(migd_simdev_ops.precopy_info(src, &initial, &dirty, NULL));
	g_assert_cmpuint(initial, ==, 256u << 10);   /* however much the thread wrote: none read */
	read_into(fd, got, 100000);
	g_assert_true(migd_simdev_ops.precopy_info(src, &initial, &dirty, NULL));
	g_assert_cmpuint(initial, ==, (256u << 10) - 100000);
	read_into(fd, got, G_MAXSIZE);   /* EOF after exactly the pre-copy bytes */
	g_assert_cmpuint(got->len, ==, 256u << 10);
	g_assert_true(migd_simdev_ops.precopy_info(src, &initial, &dirty, NULL));
	g_assert_cmpuint(initial, ==, 0);
	g_assert_true(migd_simdev_ops.data_size(src, &size, NULL));
	g_assert_cmpuint(size, ==, 1u << 20);
	close(fd);
	migd_simdev_free(src);
}

typedef enum Damage { FLIP, DROP, DUP, SWAP, TRUNCATE, EXTRA, WORDS, ZERO } Damage;

/* The clean state of spec, damaged at 4 KiB chunk k (or byte off for FLIP/TRUNCATE). */
static GByteArray *damaged(const char *spec, Damage dmg, guint k, gsize off)
{
	GByteArray *st = source_state(spec, 0);
	g_autofree guint8 *tmp = g_memdup2(st->data + k * CHUNK, CHUNK);

	switch (dmg) {
	case FLIP:
		st->data[off] ^= 0x10;
		break;
	case DROP:
		g_byte_array_remove_range(st, k * CHUNK, CHUNK);
		break;
	case DUP:
		g_byte_array_set_size(st, st->len + CHUNK);
		memmove(st->data + (k + 1) * CHUNK, st->data + k * CHUNK, st->len - (k + 1) * CHUNK);
		break;
	case SWAP:
		memcpy(st->data + k * CHUNK, st->data + (k + 1) * CHUNK, CHUNK);
		memcpy(st->data + (k + 1) * CHUNK, tmp, CHUNK);
		break;
	case TRUNCATE:
		g_byte_array_set_size(st, (guint)off);
		break;
	case EXTRA:
		g_byte_array_append(st, tmp, 10);
		break;
	case WORDS:   /* two 8-byte words of chunk k trade places: every byte still this block's */
		memcpy(st->data + k * CHUNK + off, tmp + 1000, 8);
		memcpy(st->data + k * CHUNK + 1000, tmp + off, 8);
		break;
	case ZERO:
		memset(st->data + k * CHUNK, 0, CHUNK);
		break;
	}
	return st;
}

static void test_damage(void)
{
	static const char *spec = "sim,id=nic1,size=200K,precopy=56K,seed=3";
	static const struct {
		Damage dmg;
		guint chunk;
		gsize off;
		const char *want;
	} cases[] = {
		{ FLIP, 0, 100001, "state byte 100001 (stop-copy byte 42657): expected 0x" },
		{ FLIP, 0, 100001, "the bytes after it are in place: corrupted data" },
		{ FLIP, 0, 7, "state byte 7 (pre-copy byte 7)" },
		{ DROP, 20, 0, "state byte 81920 (stop-copy byte 24576)" },
		{ DROP, 20, 0, "belongs 4096 bytes further on: bytes lost or reordered" },
		{ DROP, 13, 0, "state byte 53248 (pre-copy byte 53248)" },   /* pre-copy data lost */
		{ DUP, 30, 0, "state byte 126976 (stop-copy byte 69632)" },
		{ DUP, 30, 0, "belongs 4096 bytes earlier: bytes duplicated or reordered" },
		{ SWAP, 40, 0, "state byte 163840 (stop-copy byte 106496)" },
		{ SWAP, 40, 0, "further on: bytes lost or reordered" },
		{ TRUNCATE, 0, 256000, "state short by 6144 bytes (got 256000 of 262144)" },
		{ TRUNCATE, 0, 0, "state short by 262144 bytes (got 0 of 262144)" },
		{ EXTRA, 0, 0, "10 extra bytes after the 262144 expected" },
	};

	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autoptr(GByteArray) st = damaged(spec, cases[i].dmg, cases[i].chunk, cases[i].off);
		g_autofree char *q = NULL;
		g_autofree char *e = load_state(spec, st->data, st->len, &q);

		g_test_message("case %u: %s", i, e ? e : "(loaded)");
		g_assert_nonnull(e);
		g_assert_nonnull(strstr(e, cases[i].want));
		g_assert_nonnull(strstr(q, "\"result\":\"failed\""));
	}
}

/* Damage that leaves the bytes of a 4 KiB block in it, or spans a whole block, is found
 * at its first byte, however the device's reads cut the stream: written in one piece
 * (read whole blocks at a time) and in odd pieces (blocks split between reads). */
static void test_damage_in_block(void)
{
	static const char *spec = "sim,id=blk,size=512K,seed=5";
	static const struct {
		Damage dmg;
		guint chunk;
		gsize off;
	} cases[] = {
		{ WORDS, 50, 24 },     /* word 3 <-> word 125 of block 50 */
		{ WORDS, 0, 0 },       /* the first word of the stream */
		{ WORDS, 127, 4088 },  /* the last word of the stream */
		/* neighbours in one row of the sum's 8-word rows: only the lane's weight tells them apart */
		{ WORDS, 60, 992 },    /* word 124 <-> word 125 */
		{ WORDS, 61, 1008 },   /* word 126 <-> word 125 */
		{ WORDS, 62, 960 },    /* word 120 <-> word 125: one in each half of the row */
		{ ZERO, 77, 0 },
	};
	g_autoptr(GByteArray) clean = source_state(spec, 0);

	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autoptr(GByteArray) st = damaged(spec, cases[i].dmg, cases[i].chunk, cases[i].off);
		gsize first = 0;
		g_autofree char *want = NULL;

		g_assert_cmpuint(st->len, ==, clean->len);
		while (first < st->len && st->data[first] == clean->data[first])
			first++;
		g_assert_cmpuint(first, <, st->len);
		want = g_strdup_printf("state byte %zu (stop-copy byte %zu)", first, first);
		for (guint piece = 0; piece < 2; piece++) {
			g_autofree char *q = NULL;
			g_autofree char *e = load_state_pieces(spec, st->data, st->len, piece ? 4099 : st->len, &q);
			g_autofree char *verified = g_strdup_printf("\"verified-bytes\":%zu", first);

			g_test_message("case %u, %s: %s", i, piece ? "4099-byte writes" : "one write", e ? e : "(loaded)");
			g_assert_nonnull(e);
			g_assert_nonnull(strstr(e, want));
			g_assert_nonnull(strstr(q, verified));
		}
	}
}

/* Another device's state (other id, other seed) is refused at its first byte. */
static void test_foreign_state(void)
{
	g_autoptr(GByteArray) st = source_state("sim,id=nic2,size=64K", 0);
	g_autofree char *e1 = load_state("sim,id=nic3,size=64K", st->data, st->len, NULL);
	g_autofree char *e2 = load_state("sim,id=nic2,size=64K,seed=2", st->data, st->len, NULL);

	g_assert_nonnull(strstr(e1, "state byte 0 (stop-copy byte 0)"));
	g_assert_nonnull(strstr(e1, "not this device's state"));
	g_assert_nonnull(strstr(e2, "not this device's state"));
}

static void test_fail_at(void)
{
	g_autoptr(GByteArray) st = source_state("sim,id=f,size=2M", 0);
	g_autofree char *q1 = NULL, *q2 = NULL;
	g_autofree char *e1 = load_state("sim,id=f,size=2M,fail-at=5000", st->data, st->len, &q1);
	g_autofree char *e2 = load_state("sim,id=f,size=2M,fail-at=1M,fail-mode=abort", st->data, st->len, &q2);
	g_autofree char *e3 = load_state("sim,id=f,size=2M,fail-at=2M", st->data, st->len, NULL);

	g_assert_cmpstr(e1, ==, "the device rejected its state at byte 5000 (fail-at)");
	g_assert_nonnull(strstr(q1, "\"verified-bytes\":5000"));
	g_assert_nonnull(strstr(q1, "\"received-bytes\":2097152"));   /* verdict mode takes it all */
	g_assert_cmpstr(e2, ==, "the device rejected its state at byte 1048576 (fail-at)");
	g_assert_nonnull(strstr(q2, "\"verified-bytes\":1048576"));
	g_assert_null(strstr(q2, "\"received-bytes\":2097152"));     /* abort mode stopped reading */
	g_assert_null(e3);   /* past the end of the stream: never fires */
}

static void test_read_rate(void)
{
	MigdSimDev *src = dev_new("sim,id=slow,size=8M,read-rate=64M");
	g_autoptr(GByteArray) got = g_byte_array_new();
	guint64 rd, ld;
	gint64 t0;
	int fd;

	migd_simdev_ops.rates(src, &rd, &ld);
	g_assert_cmpuint(rd, ==, 64u << 20);
	g_assert_cmpuint(ld, ==, 0);
	t0 = g_get_monotonic_time();
	set_state(src, MIG_DEV_STOP_COPY, &fd);
	read_into(fd, got, G_MAXSIZE);
	g_assert_cmpuint(got->len, ==, 8u << 20);
	/* 125 ms of device time; only a lower bound, the machine may be slower */
	g_assert_cmpint(g_get_monotonic_time() - t0, >=, 100000);
	close(fd);
	migd_simdev_free(src);
}

static void test_load_rate(void)
{
	static const char *const specs[] = {
		"sim,id=slow,size=8M,load-rate=64M",                     /* 125 ms */
		"sim,id=slow,size=8M,load-latency=16000",                /* 8 x 16 ms = 128 ms */
		"sim,id=slow,size=8M,load-latency=4000,load-chunk=256K", /* 32 x 4 ms = 128 ms */
	};
	g_autoptr(GByteArray) st = source_state("sim,id=slow,size=8M", 0);

	for (guint i = 0; i < G_N_ELEMENTS(specs); i++) {
		gint64 t0 = g_get_monotonic_time(), us;
		g_autofree char *e = load_state(specs[i], st->data, st->len, NULL);

		us = g_get_monotonic_time() - t0;
		g_test_message("%s: %" G_GINT64_FORMAT " us", specs[i], us);
		g_assert_null(e);
		g_assert_cmpint(us, >=, 100000);
	}
}

static void test_rates_reported(void)
{
	MigdSimDev *d = dev_new("sim,id=r,size=1M,read-rate=1G,load-rate=1G,load-latency=1000");
	guint64 rd, ld;

	migd_simdev_ops.rates(d, &rd, &ld);
	g_assert_cmpuint(rd, ==, 1u << 30);
	/* 1 MiB costs 1/1024 s at 1 GiB/s plus 1 ms: about half the raw rate */
	g_assert_cmpuint(ld, >, 500u << 20);
	g_assert_cmpuint(ld, <, 530u << 20);
	migd_simdev_free(d);
}

/* Is a thread of this process named want (within 2 s: a new thread names itself)? */
static gboolean thread_named(const char *want)
{
	for (int tries = 0; tries < 200; tries++, g_usleep(10000)) {
		g_autoptr(GDir) dir = g_dir_open("/proc/self/task", 0, NULL);
		const char *tid;

		while (dir && (tid = g_dir_read_name(dir))) {
			g_autofree char *path = g_strdup_printf("/proc/self/task/%s/comm", tid);
			g_autofree char *comm = NULL;

			if (g_file_get_contents(path, &comm, NULL, NULL) && g_str_has_prefix(comm, want))
				return TRUE;
		}
	}
	return FALSE;
}

/* Threads are named and stop promptly wherever the engine abandons them. */
static void test_abandon(void)
{
	MigdSimDev *src = dev_new("sim,id=ab,size=64M,precopy=64M");
	MigdSimDev *dst = dev_new("sim,id=ab,size=64M,load-rate=1M");
	MigdSimDev *longer = dev_new("sim,id=nic-0,size=1M,precopy=4M");
	g_autoptr(MigValue) q = mig_value_new_object();
	gint64 t0 = g_get_monotonic_time();
	int fd, wfd, dummy;

	set_state(src, MIG_DEV_PRE_COPY, &fd);
	g_assert_true(thread_named("mig/dev/ab/save"));   /* 15 characters: what comm keeps */
	set_state(src, MIG_DEV_STOP_COPY, &dummy);   /* pre-copy pipe full, never read */
	close(fd);
	close(dummy);
	set_state(src, MIG_DEV_RUNNING, NULL);       /* a failed migration: back to running */
	set_state(src, MIG_DEV_PRE_COPY, &fd);
	migd_simdev_free(src);                        /* free in the middle of pre-copy */
	close(fd);

	set_state(dst, MIG_DEV_RESUMING, &wfd);
	g_assert_true(thread_named("mig/dev/ab/load"));
	set_state(longer, MIG_DEV_PRE_COPY, &fd);
	g_assert_true(thread_named("mig/dev/nic-0/s"));   /* cut, not the creator's name */
	migd_simdev_free(longer);
	close(fd);
	set_state(dst, MIG_DEV_ERROR, NULL);   /* the engine gives up: the load is cancelled */
	migd_simdev_ops.query(dst, q);
	g_assert_cmpstr(mig_value_get(q, "result")->s, ==, "failed");
	g_assert_cmpstr(mig_value_get(q, "error")->s, ==, "loading cancelled at state byte 0");
	migd_simdev_free(dst);
	close(wfd);
	g_assert_cmpint(g_get_monotonic_time() - t0, <, 10 * G_USEC_PER_SEC);   /* not hung */
}

static void test_bad_transitions(void)
{
	MigdSimDev *d = dev_new("sim,id=t,size=4K");
	g_autoptr(GError) err = NULL;
	int fd;

	set_state(d, MIG_DEV_STOP, NULL);
	g_assert_false(migd_simdev_ops.set_state(d, MIG_DEV_PRE_COPY, &fd, &err));
	g_assert_cmpstr(err->message, ==, "simulated device cannot go from stop to pre-copy");
	g_assert_cmpint(fd, ==, -1);
	g_clear_error(&err);
	set_state(d, MIG_DEV_RESUMING, &fd);
	g_assert_false(migd_simdev_ops.set_state(d, MIG_DEV_STOP_COPY, &fd, &err));
	g_assert_nonnull(strstr(err->message, "from resuming to stop-copy"));
	migd_simdev_free(d);
}

static void test_bad_specs(void)
{
	static const struct {
		const char *spec, *want;
	} cases[] = {
		{ "", "the only device type is 'sim'" },
		{ "vfio,id=a,size=1M", "the only device type is 'sim'" },
		{ "sim", "id=ID and size=SIZE are required" },
		{ "sim,id=a", "id=ID and size=SIZE are required" },
		{ "sim,size=1M", "id=ID and size=SIZE are required" },
		{ "sim,id=a,size=1X", "bad device option size=1X: want a size" },
		{ "sim,id=a,size=-1", "bad device option size=-1" },
		{ "sim,id=a,size=", "device option 'size=' needs a value" },
		{ "sim,id=a,size", "device option 'size' needs a value" },
		{ "sim,id=a,size=1M,size=2M", "device option 'size' given twice" },
		{ "sim,id=a,size=1M,colour=red", "unknown device option 'colour'" },
		{ "sim,id=1a,size=1M", "bad device option id=1a: want 1 to 63 letters" },
		{ "sim,id=a b,size=1M", "bad device option id=a b" },
		{ "sim,id=a,size=1M,read-rate=fast", "bad device option read-rate=fast: want bytes per second" },
		{ "sim,id=a,size=1M,load-latency=1ms", "bad device option load-latency=1ms: want microseconds" },
		{ "sim,id=a,size=1M,load-chunk=0", "bad device option load-chunk=0" },
		{ "sim,id=a,size=1M,fail-mode=sometimes", "want verdict or abort" },
		{ "sim,id=a,size=1M,seed=x", "bad device option seed=x" },
		{ "sim,id=a,size=4T,precopy=16777215T", "bad device option precopy=16777215T" },
		{ "sim,id=a,size=4611686018427387903,precopy=1", "precopy + size is too large" },
	};

	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autoptr(GError) err = NULL;
		MigdSimDevConfig cfg;

		g_assert_false(migd_simdev_parse(cases[i].spec, &cfg, &err));
		g_test_message("'%s': %s", cases[i].spec, err->message);
		g_assert_nonnull(strstr(err->message, cases[i].want));
	}
}

static void test_good_spec(void)
{
	g_autoptr(GError) err = NULL;
	MigdSimDevConfig cfg;

	g_assert_true(migd_simdev_parse("sim,id=nic-0,size=100M,precopy=1G,read-rate=2G,load-rate=1G,"
				       "load-latency=250,load-chunk=64K,seed=0x10,fail-at=4K,fail-mode=abort",
				       &cfg, &err));
	g_assert_cmpstr(cfg.id, ==, "nic-0");
	g_assert_cmpuint(cfg.size, ==, 100u << 20);
	g_assert_cmpuint(cfg.precopy, ==, 1u << 30);
	g_assert_cmpuint(cfg.read_rate, ==, 2ull << 30);
	g_assert_cmpuint(cfg.load_rate, ==, 1u << 30);
	g_assert_cmpuint(cfg.load_latency_us, ==, 250);
	g_assert_cmpuint(cfg.load_chunk, ==, 64u << 10);
	g_assert_cmpuint(cfg.seed, ==, 16);
	g_assert_cmpint(cfg.fail_at, ==, 4096);
	g_assert_cmpint(cfg.fail_mode, ==, MIGD_SIMDEV_FAIL_ABORT);
	g_assert_true(migd_simdev_parse("sim,id=b,size=0", &cfg, &err));
	g_assert_cmpint(cfg.fail_at, ==, -1);
	g_assert_cmpuint(cfg.load_chunk, ==, 1u << 20);
	g_assert_cmpuint(cfg.seed, ==, 1);
}

static void run_mode(gconstpointer test)
{
	stream_only = g_str_has_prefix(g_test_get_path(), "/simdev/stream/");
	((GTestFunc)test)();
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		GTestFunc fn;
	} cases[] = {
		{ "clean-stream", test_clean_stream },
		{ "precopy-info", test_precopy_info },
		{ "damage", test_damage },
		{ "damage-in-block", test_damage_in_block },
		{ "foreign-state", test_foreign_state },
		{ "fail-at", test_fail_at },
		{ "read-rate", test_read_rate },
		{ "load-rate", test_load_rate },
		{ "abandon", test_abandon },
	};

	signal(SIGPIPE, SIG_IGN);   /* fail-mode=abort closes the pipe under our writes */
	g_test_init(&argc, &argv, NULL);
	for (guint m = 0; m < 2; m++) {
		for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
			g_autofree char *path = g_strdup_printf("/simdev/%s/%s", m ? "stream" : "image", cases[i].name);

			g_test_add_data_func(path, (gconstpointer)cases[i].fn, run_mode);
		}
	}
	g_test_add_func("/simdev/rates-reported", test_rates_reported);
	g_test_add_func("/simdev/bad-transitions", test_bad_transitions);
	g_test_add_func("/simdev/bad-specs", test_bad_specs);
	g_test_add_func("/simdev/good-spec", test_good_spec);
	return g_test_run();
}
