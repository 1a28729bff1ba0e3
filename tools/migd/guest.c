/* Synthetic guest. Each vCPU owns a disjoint slice of the units it touches, because
 * two vCPUs writing one unit at once would legitimately tear it and hide real bugs. */
#include "tools/migd/guest.h"
#include "tools/migd/unit.h"
#include "channels/wire.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

G_DEFINE_QUARK(migd-guest-error-quark, migd_guest_error)
#define GUEST_ERROR migd_guest_error_quark()

#define DEFAULT_RATE (64ull << 20)
#define MAX_FAIL_LOGS 20

enum { U_UNCHECKED = 0, U_CHECKING = 1, U_CHECKED = 2 };

typedef struct Vcpu {
	MigdGuest *g;
	guint id;
	GThread *thread;
	guint64 first, count;  /* the slice of units this vCPU touches */
	guint64 rng;
	pid_t tid;             /* set by the thread itself before the guest is returned */
	/* Inside a unit's first read, where a destination vCPU waits for a missing page:
	 * counts as stopped (seq-cst, against want_pause; see access_begin). */
	gint in_access;
	guint64 writes;        /* units written; this thread stores, anyone loads (relaxed) */
} Vcpu;

struct MigdGuest {
	MigdGuestConfig cfg;
	MigRamBlock *ram;
	guint64 units;
	guint64 seed;          /* adopted from the record on the destination */
	double zero;
	guint64 used_units;    /* units the guest writes; the rest start zero and stay so */

	/* pause machinery: vCPUs park between touches, and between a touch's read and its
	 * write; one waiting for a page in that read counts as stopped */
	GMutex lock;
	GCond cond;
	gboolean want_pause;   /* read racily by vCPUs as a hint, then under lock */
	gboolean quit;
	guint parked;
	guint started;         /* vCPU threads that have published their tid */
	guint exited;          /* vCPU threads that returned */
	Vcpu *vcpus;

	/* The generation record as the source keeps it: every write updates gens and
	 * marks the unit, so a migration hands out only what changed since it last
	 * looked (save_part), and the downtime does not read all of RAM. */
	guint32 *gens;         /* each unit's generation as its last write left it */
	gulong *rec_dirty;     /* units not handed out since save_begin (atomic words) */
	gulong *rec_sum;       /* bit w: word w of rec_dirty may have bits (atomic words) */
	guint64 rec_words;     /* words of rec_dirty */
	guint64 rec_cursor;    /* save_part goes on from this word of rec_dirty */
	/* destination: the record as it arrives, in parts then whole */
	gulong *rec_have;      /* units whose generation arrived */
	guint64 rec_nhave;

	/* integrity against the generation record */
	guint32 *record;
	guint8 *ustate;
	gint integrity_on;
	guint64 checked, failed;   /* atomics */
	GThread *verifier;
	MigdGuestFailFn fail_cb;
	gpointer fail_opaque;
};

static guint64 mix(guint64 x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* Units that start zero are a pure function of (seed, index) and the tail past used,
 * so the source can tell whether a zero unit may legitimately be zero. */
static gboolean starts_zero(const MigdGuest *g, guint64 idx)
{
	if (idx >= g->used_units)
		return TRUE;
	if (g->zero <= 0)
		return FALSE;
	return (double)(mix(g->seed ^ (idx * 0x2545f4914f6cdd1dull)) >> 11) < g->zero * (double)(1ull << 53);
}

/* May unit idx read all zero now? What started zero and was not written since: the
 * source knows that from its own workload; a destination knows it only from the
 * record (whose generations it keeps in gens), not from its own command line, whose
 * used= or zero= need not be the source's. */
static gboolean may_be_zero(const MigdGuest *g, guint64 idx)
{
	return starts_zero(g, idx) || __atomic_load_n(&g->gens[idx], __ATOMIC_RELAXED) == MIGD_UNIT_ZERO_GEN;
}

gboolean migd_workload_parse(const char *s, MigdWorkload *out, GError **err)
{
	g_auto(GStrv) parts = g_strsplit(s ? s : "idle", ",", -1);

	*out = (MigdWorkload){ .rate = DEFAULT_RATE, .read_pct = 50 };
	if (!g_strcmp0(parts[0], "idle"))
		out->kind = MIGD_WORKLOAD_IDLE;
	else if (!g_strcmp0(parts[0], "seq"))
		out->kind = MIGD_WORKLOAD_SEQ;
	else if (!g_strcmp0(parts[0], "random"))
		out->kind = MIGD_WORKLOAD_RANDOM;
	else {
		g_set_error(err, GUEST_ERROR, EINVAL, "unknown workload '%s' (idle, seq, random)", parts[0]);
		return FALSE;
	}
	for (guint i = 1; parts[i]; i++) {
		char *eq = strchr(parts[i], '=');
		const char *val = eq ? eq + 1 : "";
		gboolean ok = eq != NULL;
		char *end = NULL;

		if (eq)
			*eq = '\0';
		if (ok && !strcmp(parts[i], "wss"))
			ok = mig_parse_size(val, &out->wss);
		else if (ok && !strcmp(parts[i], "rate"))
			ok = mig_parse_size(val, &out->rate);
		else if (ok && !strcmp(parts[i], "zero")) {
			out->zero = g_ascii_strtod(val, &end);
			ok = end && !*end && out->zero >= 0 && out->zero <= 1;
		} else if (ok && !strcmp(parts[i], "used"))
			ok = mig_parse_size(val, &out->used) && out->used >= MIGD_UNIT_SIZE;
		else if (ok && !strcmp(parts[i], "read")) {
			guint64 v;

			ok = g_ascii_string_to_unsigned(val, 10, 0, 100, &v, NULL);
			out->read_pct = (guint)v;
		} else
			ok = FALSE;
		if (!ok) {
			g_set_error(err, GUEST_ERROR, EINVAL,
				    "bad workload option '%s%s%s' (wss=SIZE, rate=BYTES_PER_S, zero=FRACTION, read=PCT, used=SIZE)",
				    parts[i], eq ? "=" : "", val);
			return FALSE;
		}
	}
	return TRUE;
}

static inline guint8 *unit_ptr(MigdGuest *g, guint64 idx)
{
	return g->ram->host + idx * MIGD_UNIT_SIZE;
}

static void report_failure(MigdGuest *g, guint64 idx, const char *what)
{
	guint64 n;

	/* torn down: what it reads now is not the guest's memory any more */
	if (__atomic_load_n(&g->quit, __ATOMIC_ACQUIRE))
		return;
	n = __atomic_add_fetch(&g->failed, 1, __ATOMIC_RELAXED);

	if (n <= MAX_FAIL_LOGS)
		g_printerr("mig: INTEGRITY FAILURE: unit %" G_GUINT64_FORMAT " (guest offset 0x%" G_GINT64_MODIFIER "x): %s\n",
			   idx, idx * MIGD_UNIT_SIZE, what);
	if (g->fail_cb)
		g->fail_cb(g->fail_opaque, idx, what);
}

static void check_unit(MigdGuest *g, guint64 idx)
{
	const guint8 *u = unit_ptr(g, idx);
	guint32 want = g->record[idx];
	MigdUnitVerdict v = migd_unit_check(u, g->seed, idx, want);

	if (v != MIGD_UNIT_OK) {
		char rec[16] = "zero", got[16] = "zero";
		g_autofree char *what = NULL;

		if (want != MIGD_UNIT_ZERO_GEN)
			g_snprintf(rec, sizeof(rec), "%u", want);
		if (migd_unit_gen(u) != MIGD_UNIT_ZERO_GEN)
			g_snprintf(got, sizeof(got), "%u", migd_unit_gen(u));
		what = g_strdup_printf("%s (recorded generation %s, header says %s)", migd_unit_verdict_str(v), rec, got);
		report_failure(g, idx, what);
	}
	__atomic_add_fetch(&g->checked, 1, __ATOMIC_RELAXED);
}

/* Check a unit against the record exactly once, whoever gets there first; a vCPU that
 * loses the race waits, because it must not change the unit before it was checked.
 * empty: the kernel holds no page for it, so it reads zero without being read. */
static void ensure_checked_as(MigdGuest *g, guint64 idx, gboolean empty)
{
	guint8 expect = U_UNCHECKED;

	if (__atomic_load_n(&g->ustate[idx], __ATOMIC_ACQUIRE) == U_CHECKED)
		return;
	if (__atomic_compare_exchange_n(&g->ustate[idx], &expect, U_CHECKING, FALSE,
					__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		if (empty && g->record[idx] == MIGD_UNIT_ZERO_GEN)
			__atomic_add_fetch(&g->checked, 1, __ATOMIC_RELAXED);
		else
			check_unit(g, idx);
		__atomic_store_n(&g->ustate[idx], U_CHECKED, __ATOMIC_RELEASE);
		return;
	}
	while (__atomic_load_n(&g->ustate[idx], __ATOMIC_ACQUIRE) != U_CHECKED)
		g_thread_yield();
}

static void ensure_checked(MigdGuest *g, guint64 idx)
{
	ensure_checked_as(g, idx, FALSE);
}

/* Returns FALSE when the guest is quitting. */
static gboolean park_if_asked(MigdGuest *g)
{
	if (!__atomic_load_n(&g->want_pause, __ATOMIC_SEQ_CST) && !__atomic_load_n(&g->quit, __ATOMIC_ACQUIRE))
		return TRUE;
	g_mutex_lock(&g->lock);
	if (g->want_pause && !g->quit) {
		g->parked++;
		g_cond_broadcast(&g->cond);
		while (g->want_pause && !g->quit)
			g_cond_wait(&g->cond, &g->lock);
		g->parked--;
	}
	gboolean go = !g->quit;
	g_mutex_unlock(&g->lock);
	return go;
}

/* A unit's first access is a read: on the destination in postcopy it may wait for a page
 * that the network does not bring soon, and "stop" must not wait for that (a real vCPU
 * in such a fault is kicked out of it and counts as stopped). So the read is bracketed:
 * inside, the vCPU counts as stopped; leaving it, it parks before doing anything else
 * if a pause came meanwhile. Dekker-style: the vCPU writes in_access then reads
 * want_pause, the stopper writes want_pause then reads in_access, both seq-cst, so
 * either the vCPU sees the pause and parks or the stopper sees it in the read. The
 * write half of a touch, where a source vCPU may wait on a uffd-wp fault that the
 * migration resolves, stays outside: a vCPU there is running and is waited for. */
static gboolean access_begin(MigdGuest *g, Vcpu *v)
{
	for (;;) {
		__atomic_store_n(&v->in_access, 1, __ATOMIC_SEQ_CST);
		if (!__atomic_load_n(&g->want_pause, __ATOMIC_SEQ_CST) && !__atomic_load_n(&g->quit, __ATOMIC_ACQUIRE))
			return TRUE;
		__atomic_store_n(&v->in_access, 0, __ATOMIC_SEQ_CST);
		if (!park_if_asked(g))
			return FALSE;
	}
}

static gboolean access_end(MigdGuest *g, Vcpu *v)
{
	__atomic_store_n(&v->in_access, 0, __ATOMIC_SEQ_CST);
	return park_if_asked(g);
}

static guint64 next_rand(guint64 *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

#define WORD_BITS (8 * sizeof(gulong))

/* A write left unit idx at gen: the record must hand it out again. gens first, then
 * the mark (release), so whoever takes the mark (acquire) reads this gen or a later
 * one. The summary bit is set by whoever found the word empty: a saver empties the
 * summary bit before it takes the word, so a mark is never left unsummarised. */
static void record_written(MigdGuest *g, guint64 idx, guint32 gen)
{
	guint64 w = idx / WORD_BITS;
	gulong old;

	__atomic_store_n(&g->gens[idx], gen, __ATOMIC_RELAXED);
	old = __atomic_fetch_or(&g->rec_dirty[w], 1ul << (idx % WORD_BITS), __ATOMIC_RELEASE);
	if (!old)
		__atomic_fetch_or(&g->rec_sum[w / WORD_BITS], 1ul << (w % WORD_BITS), __ATOMIC_RELEASE);
}

/* Returns FALSE when the guest is quitting. */
static gboolean touch(MigdGuest *g, Vcpu *v, guint64 idx, gboolean write)
{
	guint8 *u = unit_ptr(g, idx);
	MigdUnitVerdict r = MIGD_UNIT_OK;
	guint32 gen = 0;

	if (!access_begin(g, v))
		return FALSE;
	if (__atomic_load_n(&g->integrity_on, __ATOMIC_ACQUIRE))
		ensure_checked(g, idx);
	if (write)
		gen = migd_unit_gen(u);
	else
		r = migd_unit_check_self(u, g->seed, idx);
	if (!access_end(g, v))
		return FALSE;
	if (!write) {
		if (r != MIGD_UNIT_OK && !(r == MIGD_UNIT_ZERO && may_be_zero(g, idx)))
			report_failure(g, idx, migd_unit_verdict_str(r));
		return TRUE;
	}
	gen = gen == MIGD_UNIT_ZERO_GEN ? 1 : gen + 1;
	migd_unit_write(u, g->seed, idx, gen);
	record_written(g, idx, gen);
	__atomic_store_n(&v->writes, v->writes + 1, __ATOMIC_RELAXED);
	return TRUE;
}

static gpointer vcpu_main(gpointer p)
{
	Vcpu *v = p;
	MigdGuest *g = v->g;
	const MigdWorkload *w = &g->cfg.workload;
	guint64 rate = w->rate / MAX(g->cfg.vcpus, 1u);
	gint64 t0 = g_get_monotonic_time();
	guint64 done = 0, pos = 0;

	g_mutex_lock(&g->lock);
	v->tid = gettid();
	g->started++;
	g_cond_broadcast(&g->cond);
	g_mutex_unlock(&g->lock);
	while (park_if_asked(g)) {
		if (w->kind == MIGD_WORKLOAD_IDLE || !v->count) {
			g_mutex_lock(&g->lock);
			if (!g->want_pause && !g->quit)
				g_cond_wait_until(&g->cond, &g->lock, g_get_monotonic_time() + 100 * G_TIME_SPAN_MILLISECOND);
			g_mutex_unlock(&g->lock);
			continue;
		}
		if (w->kind == MIGD_WORKLOAD_SEQ) {
			if (!touch(g, v, v->first + pos, TRUE))
				break;
			pos = pos + 1 == v->count ? 0 : pos + 1;
		} else {
			guint64 r = next_rand(&v->rng);

			if (!touch(g, v, v->first + (r >> 8) % v->count, (r & 0xff) * 100 >= w->read_pct * 256u))
				break;
		}
		done += MIGD_UNIT_SIZE;
		if (rate) {
			/* pace against the start time so a pause does not cause a burst later */
			gint64 due = t0 + (gint64)(done * G_USEC_PER_SEC / rate);
			gint64 now = g_get_monotonic_time();

			if (due - now > 1000)
				g_usleep((gulong)MIN(due - now, 2000));
			if (now - due > G_USEC_PER_SEC) {
				t0 = now;
				done = 0;
			}
		}
	}
	g_mutex_lock(&g->lock);
	g->exited++;
	g_cond_broadcast(&g->cond);
	g_mutex_unlock(&g->lock);
	return NULL;
}

/* An array of the guest's size (4 bytes per 4 KiB unit), zeroed, in 2 MiB pages where
 * the kernel gives them on request (transparent huge pages "madvise"): a lazy restore's
 * guest waits for the generation record's load, whose first touches of these arrays
 * would fault once per 4 KiB, dear in a VM. Freed with g_free (free). */
static gpointer unit_array0(gsize len)
{
	void *p = NULL;

	if (len < (2u << 20))
		return g_malloc0(MAX(len, 1u));
	if (posix_memalign(&p, 2u << 20, len))
		g_error("out of memory for a %" G_GSIZE_FORMAT "-byte array of units", len);
	madvise(p, len, MADV_HUGEPAGE);   /* a hint: without it, 4 KiB pages */
	memset(p, 0, len);
	return p;
}

/* The tail past used is not written, not even read: its pages stay unpopulated, as a
 * real guest's RAM it never touched. */
static void populate(MigdGuest *g)
{
	for (guint64 i = 0; i < g->used_units; i++) {
		gboolean zero = starts_zero(g, i);

		if (!zero)
			migd_unit_write(unit_ptr(g, i), g->seed, i, 0);
		g->gens[i] = zero ? MIGD_UNIT_ZERO_GEN : 0;
	}
	for (guint64 i = g->used_units; i < g->units; i++)
		g->gens[i] = MIGD_UNIT_ZERO_GEN;
}

/* Every unit still to hand out. Racing writers only mark what is marked already. */
static void record_mark_all(MigdGuest *g)
{
	guint64 sum_words = (g->rec_words + WORD_BITS - 1) / WORD_BITS;

	for (guint64 w = 0; w < g->rec_words; w++) {
		guint64 last = MIN(g->units - w * WORD_BITS, WORD_BITS);

		__atomic_store_n(&g->rec_dirty[w], last == WORD_BITS ? ~0ul : (1ul << last) - 1, __ATOMIC_RELAXED);
	}
	for (guint64 w = 0; w < sum_words; w++) {
		guint64 last = MIN(g->rec_words - w * WORD_BITS, WORD_BITS);

		__atomic_store_n(&g->rec_sum[w], last == WORD_BITS ? ~0ul : (1ul << last) - 1, __ATOMIC_RELEASE);
	}
	g->rec_cursor = 0;
}

MigdGuest *migd_guest_new(const MigdGuestConfig *cfg, GError **err)
{
	MigdGuest *g = g_new0(MigdGuest, 1);
	guint64 span;

	g->cfg = *cfg;
	g->seed = cfg->seed;
	g->zero = cfg->workload.zero;
	g_mutex_init(&g->lock);
	g_cond_init(&g->cond);
	g->ram = mig_ram_block_new("pc.ram", cfg->mem_size, cfg->backend, cfg->hugepage_size, err);
	if (g->ram && cfg->thp && !mig_ram_block_set_thp(g->ram, TRUE, err))
		g_clear_pointer(&g->ram, mig_ram_block_free);
	if (!g->ram) {
		g_free(g);
		return NULL;
	}
	g->units = g->ram->size / MIGD_UNIT_SIZE;
	g->used_units = cfg->workload.used ? MIN(cfg->workload.used / MIGD_UNIT_SIZE, g->units) : g->units;
	g->rec_words = (g->units + WORD_BITS - 1) / WORD_BITS;
	g->gens = unit_array0(g->units * sizeof(guint32));
	g->rec_dirty = g_new0(gulong, g->rec_words);
	g->rec_sum = g_new0(gulong, (g->rec_words + WORD_BITS - 1) / WORD_BITS);
	record_mark_all(g);
	if (cfg->prealloc && !mig_ram_block_prealloc(g->ram, err)) {
		mig_ram_block_free(g->ram);
		g_free(g->gens);
		g_free(g->rec_dirty);
		g_free(g->rec_sum);
		g_free(g);
		return NULL;
	}
	if (!cfg->incoming)
		populate(g);
	g->want_pause = TRUE;
	span = cfg->workload.wss ? MIN(cfg->workload.wss / MIGD_UNIT_SIZE, g->used_units) : g->used_units;
	g->vcpus = g_new0(Vcpu, MAX(cfg->vcpus, 1u));
	for (guint i = 0; i < cfg->vcpus; i++) {
		Vcpu *v = &g->vcpus[i];
		g_autofree char *name = g_strdup_printf("vcpu/%u", i);

		v->g = g;
		v->id = i;
		v->first = span * i / cfg->vcpus;
		v->count = span * (i + 1) / cfg->vcpus - v->first;
		v->rng = mix(cfg->seed + i + 1) | 1;
		v->thread = g_thread_new(name, vcpu_main, v);
	}
	/* the engine learns the vCPUs' tids from migd_guest_vcpu_tids */
	g_mutex_lock(&g->lock);
	while (g->started < cfg->vcpus)
		g_cond_wait(&g->cond, &g->lock);
	g_mutex_unlock(&g->lock);
	return g;
}

static void stop_verifier(MigdGuest *g)
{
	if (g->verifier) {
		g_thread_join(g->verifier);
		g->verifier = NULL;
	}
}

gboolean migd_guest_quit(MigdGuest *g, gint64 timeout_us)
{
	gint64 end = g_get_monotonic_time() + timeout_us;
	gboolean all;

	g_mutex_lock(&g->lock);
	__atomic_store_n(&g->quit, TRUE, __ATOMIC_RELEASE);
	g_cond_broadcast(&g->cond);
	while (g->exited < g->cfg.vcpus && g_cond_wait_until(&g->cond, &g->lock, end))
		;
	all = g->exited == g->cfg.vcpus;
	g_mutex_unlock(&g->lock);
	return all;
}

void migd_guest_free(MigdGuest *g)
{
	if (!g)
		return;
	g_mutex_lock(&g->lock);
	__atomic_store_n(&g->quit, TRUE, __ATOMIC_RELEASE);
	g_cond_broadcast(&g->cond);
	g_mutex_unlock(&g->lock);
	for (guint i = 0; i < g->cfg.vcpus; i++)
		g_thread_join(g->vcpus[i].thread);
	stop_verifier(g);
	mig_ram_block_free(g->ram);
	g_free(g->vcpus);
	g_free(g->record);
	g_free(g->ustate);
	g_free(g->gens);
	g_free(g->rec_dirty);
	g_free(g->rec_sum);
	g_free(g->rec_have);
	g_mutex_clear(&g->lock);
	g_cond_clear(&g->cond);
	g_free(g);
}

MigRamBlock *migd_guest_ram(MigdGuest *g) { return g->ram; }

guint migd_guest_vcpu_tids(MigdGuest *g, pid_t *tids, guint max)
{
	guint n = MIN(max, g->cfg.vcpus);

	for (guint i = 0; i < n; i++)
		tids[i] = g->vcpus[i].tid;
	return n;
}
guint64 migd_guest_units(MigdGuest *g) { return g->units; }

guint64 migd_guest_writes(MigdGuest *g)
{
	guint64 n = 0;

	for (guint i = 0; i < g->cfg.vcpus; i++)
		n += __atomic_load_n(&g->vcpus[i].writes, __ATOMIC_RELAXED);
	return n;
}

void migd_guest_set_fail_cb(MigdGuest *g, MigdGuestFailFn fn, gpointer opaque)
{
	g->fail_cb = fn;
	g->fail_opaque = opaque;
}

void migd_guest_cont(MigdGuest *g)
{
	g_mutex_lock(&g->lock);
	__atomic_store_n(&g->want_pause, FALSE, __ATOMIC_RELEASE);
	g_cond_broadcast(&g->cond);
	g_mutex_unlock(&g->lock);
}

/* Under g->lock, so no parked vCPU leaves and none parks while we count: a vCPU is
 * either parked or, if in_access, on its way to park without running guest code. */
static guint stopped_locked(MigdGuest *g)
{
	guint n = g->parked;

	for (guint i = 0; i < g->cfg.vcpus; i++)
		n += __atomic_load_n(&g->vcpus[i].in_access, __ATOMIC_SEQ_CST) ? 1 : 0;
	return n;
}

void migd_guest_stop(MigdGuest *g)
{
	g_mutex_lock(&g->lock);
	__atomic_store_n(&g->want_pause, TRUE, __ATOMIC_SEQ_CST);
	g_cond_broadcast(&g->cond);
	while (stopped_locked(g) + g->exited < g->cfg.vcpus && !g->quit)
		g_cond_wait(&g->cond, &g->lock);
	g_mutex_unlock(&g->lock);
}

gboolean migd_guest_running(MigdGuest *g)
{
	return !__atomic_load_n(&g->want_pause, __ATOMIC_ACQUIRE);
}

/* The record travels as runs: be64 first unit, be32 count (>= 1), be32 gen[count].
 * Whole (save_state) it is a head, be64 seed, be64 zero fraction (as 2^-53 units),
 * be64 units, then the runs not handed out in parts. */
#define RUN_HEAD 12u
#define RECORD_HEAD 24u

/* Appends unit idx's generation, extending the last run when it ends just before. */
static void run_append(GByteArray *out, gsize *run_at, guint64 idx, guint32 gen)
{
	guint8 b[RUN_HEAD];

	if (*run_at != G_MAXSIZE) {
		guint8 *r = out->data + *run_at;
		guint32 n = mig_get_be32(r + 8);

		if (mig_get_be64(r) + n == idx && n < G_MAXUINT32) {
			mig_put_be32(r + 8, n + 1);
			mig_put_be32(b, gen);
			g_byte_array_append(out, b, 4);
			return;
		}
	}
	*run_at = out->len;
	mig_put_be64(b, idx);
	mig_put_be32(b + 8, 1);
	g_byte_array_append(out, b, RUN_HEAD);
	mig_put_be32(b, gen);
	g_byte_array_append(out, b, 4);
}

/* Hands out the marked units from the cursor on, a word of marks at a time, while out
 * has room for a whole word's worth (at least one word; max 0: no bound). Returns TRUE if it stopped for
 * room before the end. Only the summary's set bits are visited, so an idle guest
 * costs a walk of one bit per 64 units' word. */
static gboolean record_take(MigdGuest *g, GByteArray *out, gsize max)
{
	const gsize word_max = WORD_BITS * (RUN_HEAD + 4);
	guint64 sum_words = (g->rec_words + WORD_BITS - 1) / WORD_BITS;
	gsize run_at = G_MAXSIZE;

	for (guint64 sw = g->rec_cursor / WORD_BITS; sw < sum_words; sw++) {
		gulong sum = __atomic_load_n(&g->rec_sum[sw], __ATOMIC_ACQUIRE);

		if (sw == g->rec_cursor / WORD_BITS)
			sum &= ~0ul << (g->rec_cursor % WORD_BITS);
		while (sum) {
			guint64 w = sw * WORD_BITS + (guint64)__builtin_ctzl(sum);
			gulong bits;

			if (max && out->len && out->len + word_max > max) {
				g->rec_cursor = w;
				return TRUE;
			}
			sum &= sum - 1;
			/* the summary bit first: a writer finding the word empty after this sets it again */
			__atomic_fetch_and(&g->rec_sum[sw], ~(1ul << (w % WORD_BITS)), __ATOMIC_ACQ_REL);
			bits = __atomic_exchange_n(&g->rec_dirty[w], 0, __ATOMIC_ACQUIRE);
			while (bits) {
				guint64 idx = w * WORD_BITS + (guint64)__builtin_ctzl(bits);

				bits &= bits - 1;
				run_append(out, &run_at, idx, __atomic_load_n(&g->gens[idx], __ATOMIC_RELAXED));
			}
		}
	}
	g->rec_cursor = 0;
	return FALSE;
}

void migd_guest_save_begin(MigdGuest *g)
{
	record_mark_all(g);
}

gboolean migd_guest_save_part(MigdGuest *g, GByteArray *out, gsize max)
{
	return record_take(g, out, max);
}

/* Source, vCPUs stopped: the head and every generation not handed out in parts (all
 * of them when none was). */
GBytes *migd_guest_save_record(MigdGuest *g)
{
	GByteArray *out = g_byte_array_new();
	guint8 head[RECORD_HEAD];

	mig_put_be64(head, g->seed);
	mig_put_be64(head + 8, (guint64)(g->zero * (double)(1ull << 53)));
	mig_put_be64(head + 16, g->units);
	g_byte_array_append(out, head, RECORD_HEAD);
	g->rec_cursor = 0;
	record_take(g, out, 0);
	return g_byte_array_free_to_bytes(out);
}

void migd_guest_load_begin(MigdGuest *g)
{
	if (__atomic_load_n(&g->integrity_on, __ATOMIC_ACQUIRE))
		return;   /* adopted: what comes now is refused */
	g_free(g->rec_have);
	g_free(g->record);
	g->rec_have = g_new0(gulong, g->rec_words);
	g->record = unit_array0(g->units * sizeof(guint32));
	g->rec_nhave = 0;
	/* the checks' state too, here while the source's guest runs: allocated at the
	 * record's load it was a byte per unit zeroed inside the downtime (from 8 GiB a
	 * memset and its page faults, 0.3 ms at 16 GiB). Untouched until integrity_on, so
	 * one left from a migration that failed is still all U_UNCHECKED. */
	if (!g->ustate)
		g->ustate = unit_array0(g->units);
}

/* Checks every run before it keeps any of it: a peer's bytes. */
static gboolean record_apply(MigdGuest *g, const guint8 *data, gsize len, GError **err)
{
	MigWireRd r = mig_wire_rd(data, len);

	if (__atomic_load_n(&g->integrity_on, __ATOMIC_ACQUIRE)) {
		g_set_error(err, GUEST_ERROR, EEXIST, "guest generation record loaded twice");
		return FALSE;
	}
	if (!g->record)   /* no load_begin: the record comes whole */
		migd_guest_load_begin(g);
	while (r.left) {
		guint64 first;
		guint32 n;
		const guint8 *gen;

		if (mig_rd_be64(&r, &first) < 0 || mig_rd_be32(&r, &n) < 0 || !n ||
		    mig_rd_bytes(&r, (gsize)n * 4, &gen) < 0) {
			g_set_error(err, GUEST_ERROR, EPROTO, "guest generation record: run truncated or empty");
			return FALSE;
		}
		if (first >= g->units || n > g->units - first) {
			g_set_error(err, GUEST_ERROR, EPROTO,
				    "guest generation record: units %" G_GUINT64_FORMAT "..+%u outside the %" G_GUINT64_FORMAT " this guest has",
				    first, n, g->units);
			return FALSE;
		}
		for (guint32 k = 0; k < n; k++) {
			guint64 idx = first + k;
			guint32 v = mig_get_be32(gen + 4 * k);

			g->record[idx] = v;
			g->gens[idx] = v;   /* what this guest hands out if it migrates on */
			if (!(g->rec_have[idx / WORD_BITS] & (1ul << (idx % WORD_BITS)))) {
				g->rec_have[idx / WORD_BITS] |= 1ul << (idx % WORD_BITS);
				g->rec_nhave++;
			}
		}
	}
	return TRUE;
}

gboolean migd_guest_load_part(MigdGuest *g, const guint8 *data, gsize len, GError **err)
{
	return record_apply(g, data, len, err);
}

#define PM_PRESENT (1ull << 63)
#define PM_SWAPPED (1ull << 62)
#define VERIFY_BATCH 512u

/* Sweeps every unit. Anonymous RAM (private: no one else holds its pages) that has no
 * page in the page tables, present or swapped, reads zero: a unit recorded zero there
 * passes without a read, which would populate it (a page of its own on some hosts),
 * so a guest's never-written tail costs the destination no memory. Whatever holds a
 * page is read and checked; from the look-up to the check only a vCPU may write the
 * unit, and it checks the unit first. Without pagemap, every unit is read. */
static gpointer verify_main(gpointer p)
{
	MigdGuest *g = p;
	int pm = g->ram->backend == MIG_MEM_ANON ? open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC) : -1;
	guint64 ent[VERIFY_BATCH];

	for (guint64 i = 0; i < g->units && !__atomic_load_n(&g->quit, __ATOMIC_ACQUIRE); i += VERIFY_BATCH) {
		guint64 n = MIN(VERIFY_BATCH, g->units - i);
		off_t at = (off_t)((guintptr)unit_ptr(g, i) / MIGD_UNIT_SIZE * sizeof(ent[0]));
		gboolean have = pm >= 0 && pread(pm, ent, n * sizeof(ent[0]), at) == (ssize_t)(n * sizeof(ent[0]));

		for (guint64 k = 0; k < n && !__atomic_load_n(&g->quit, __ATOMIC_ACQUIRE); k++)
			ensure_checked_as(g, i + k, have && !(ent[k] & (PM_PRESENT | PM_SWAPPED)));
	}
	if (pm >= 0)
		close(pm);
	return NULL;
}

/* Destination: the head, the last runs, and then every unit must have its generation. */
gboolean migd_guest_load_record(MigdGuest *g, const guint8 *data, gsize len, GError **err)
{
	if (len < RECORD_HEAD) {
		g_set_error(err, GUEST_ERROR, EPROTO, "guest generation record truncated (%" G_GSIZE_FORMAT " bytes)", len);
		return FALSE;
	}
	if (mig_get_be64(data + 16) != g->units) {
		g_set_error(err, GUEST_ERROR, EPROTO,
			    "guest generation record is for %" G_GUINT64_FORMAT " units, this guest has %" G_GUINT64_FORMAT,
			    mig_get_be64(data + 16), g->units);
		return FALSE;
	}
	if (!record_apply(g, data + RECORD_HEAD, len - RECORD_HEAD, err))
		return FALSE;
	if (g->rec_nhave != g->units) {
		g_set_error(err, GUEST_ERROR, EPROTO,
			    "guest generation record incomplete: %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT " units have a generation",
			    g->rec_nhave, g->units);
		return FALSE;
	}
	g->seed = mig_get_be64(data);
	g->zero = (double)mig_get_be64(data + 8) / (double)(1ull << 53);
	/* the source's used= is not in the head: its zero tail is in the record's
	 * generations (may_be_zero), this guest's own used= says nothing of it */
	g->used_units = g->units;
	__atomic_store_n(&g->integrity_on, 1, __ATOMIC_RELEASE);
	return TRUE;
}

void migd_guest_start_verifier(MigdGuest *g)
{
	if (g->record && !g->verifier)
		g->verifier = g_thread_new("guest/verify", verify_main, g);
}

void migd_guest_integrity(MigdGuest *g, guint64 *checked, guint64 *failed, guint64 *total)
{
	*checked = __atomic_load_n(&g->checked, __ATOMIC_RELAXED);
	*failed = __atomic_load_n(&g->failed, __ATOMIC_RELAXED);
	*total = g->record ? g->units : 0;
}

gboolean migd_guest_wait_verified(MigdGuest *g, gint64 timeout_us)
{
	gint64 end = g_get_monotonic_time() + timeout_us;

	while (g->record && __atomic_load_n(&g->checked, __ATOMIC_RELAXED) < g->units) {
		if (g_get_monotonic_time() > end)
			return FALSE;
		g_usleep(1000);
	}
	return g->record != NULL;
}

void migd_guest_self_check(MigdGuest *g, guint64 *checked, guint64 *failed)
{
	gboolean was_running = migd_guest_running(g);
	guint64 bad = 0;

	migd_guest_stop(g);
	for (guint64 i = 0; i < g->units; i++) {
		MigdUnitVerdict v = migd_unit_check_self(unit_ptr(g, i), g->seed, i);

		if (v == MIGD_UNIT_OK || (v == MIGD_UNIT_ZERO && may_be_zero(g, i)))
			continue;
		if (++bad <= MAX_FAIL_LOGS)
			g_printerr("mig: self-check: unit %" G_GUINT64_FORMAT ": %s\n", i, migd_unit_verdict_str(v));
	}
	if (was_running)
		migd_guest_cont(g);
	*checked = g->units;
	*failed = bad;
}
