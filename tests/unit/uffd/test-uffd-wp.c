/* MigWpTracker and MigWpLog on anon, anon+THP, memfd (shmem) and hugetlb-2M memory:
 * exact reporting, get-and-clear, and no lost writes under a concurrent writer. */
#include <glib.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "uffd/wp_log.h"
#include "uffd/wp_tracker.h"
#include "uffd/testmem.h"

static const TmBackend backends[] = {
	{ TM_ANON, "anon" },
	{ TM_ANON_THP, "anon-thp" },
	{ TM_MEMFD, "memfd" },
	{ TM_HUGETLB, "hugetlb-2M" },
};

/* Pages per group of the collects' summary: small, so that the tests' few MiB span
 * many groups and a run of pages crosses their edges. */
#define GROUP_SHIFT 3u

/* The two trackers with one contract: async WP + PAGEMAP_SCAN, and the sync fault log. */
typedef struct {
	const char *name;
	int (*new_)(void *addr, size_t len, size_t page_size, void **out);
	int (*arm)(void *t);
	/* the _marked collect: groups of GROUP_SHIFT pages marked beside the bitmap */
	int (*collect)(void *t, unsigned long *bitmap, unsigned long *groups, uint64_t *ndirty);
	void (*free_)(void *t);
} Impl;

#define IMPL_WRAP(P, T)                                                                    \
	static int P##_new_(void *a, size_t len, size_t ps, void **out)                    \
	{                                                                                  \
		T *t;                                                                      \
		int ret = mig_##P##_new(a, len, ps, &t);                                   \
                                                                                           \
		*out = t;                                                                  \
		return ret;                                                                \
	}                                                                                  \
	static int P##_arm_(void *t) { return mig_##P##_arm(t); }                          \
	static int P##_collect_(void *t, unsigned long *map, unsigned long *groups, uint64_t *n) \
	{                                                                                  \
		return mig_##P##_collect_marked(t, map, groups, GROUP_SHIFT, n);           \
	}                                                                                  \
	static void P##_free_(void *t) { mig_##P##_free(t); }
IMPL_WRAP(wp_tracker, MigWpTracker)
IMPL_WRAP(wp_log, MigWpLog)

static const Impl impls[] = {
	{ "wp", wp_tracker_new_, wp_tracker_arm_, wp_tracker_collect_, wp_tracker_free_ },
	{ "wp-log", wp_log_new_, wp_log_arm_, wp_log_collect_, wp_log_free_ },
};

typedef struct {
	const TmBackend *b;
	const Impl *impl;
} Case;

static Case cases[G_N_ELEMENTS(impls)][G_N_ELEMENTS(backends)];
static const Impl *impl;	/* the running test's */

static const TmBackend *use_case(gconstpointer data)
{
	const Case *c = data;

	impl = c->impl;
	return c->b;
}

#define HUGE_WANT 64	/* free 2 MiB pages we make sure exist; tests use at most 32 */
static TmHugeResv huge_resv;
static int huge_err;

/* Marks a page written: one u64 at its start and one at its end, so for hugetlb two
 * different 4 KiB sub-pages are touched. */
static void poke(const TmMem *m, size_t p, uint64_t v)
{
	volatile uint64_t *w = (volatile uint64_t *)(m->base + p * m->page_size);

	w[0] = v;
	w[m->page_size / sizeof(uint64_t) - 1] = v;
}

static uint64_t peek(const TmMem *m, size_t p, int last)
{
	volatile uint64_t *w = (volatile uint64_t *)(m->base + p * m->page_size);

	return last ? w[m->page_size / sizeof(uint64_t) - 1] : w[0];
}

/* Page migration (compaction, NUMA balancing) can make the kernel report a page that
 * was not written: when collect re-protects a page whose pte is at that moment a
 * *writable* migration entry, it sets uffd-wp on the entry, but remove_migration_pte()
 * then restores a writable pte and drops the bit (Linux 6.18). The page is reported
 * once more: an over-report, never a loss. So extra reports are tolerated, and
 * counted, only if the system migrated pages while the test ran; missing reports
 * never are. */
static unsigned long long mig_at_start;

static gboolean migrated(void)
{
	return tm_pgmigrate_success() != mig_at_start;
}

/* g_test_skip_printf() is GLib 2.78; we build against 2.70+. */
static void skip(char *msg)
{
	g_test_skip(msg);
	g_free(msg);
}

/* Maps memory and starts a tracker, or skips the test saying why. THP memory gets its
 * first `used` bytes faulted in (THP forms only on populated memory). */
static gboolean setup_used(TmKind kind, size_t len, size_t used, TmMem *m, void **t)
{
	int ret;

	if (kind == TM_HUGETLB && huge_err) {
		skip(g_strdup_printf("cannot reserve %d free 2 MiB huge pages: %s", HUGE_WANT,
				     g_strerror(-huge_err)));
		return FALSE;
	}
	mig_at_start = tm_pgmigrate_success();
	ret = tm_map(kind, len, m);
	if (ret < 0) {
		skip(g_strdup_printf("mapping %s memory: %s",
				     kind == TM_HUGETLB ? "hugetlb" : "test", g_strerror(-ret)));
		return FALSE;
	}
	if (kind == TM_ANON_THP)
		memset(m->base, 0, used);
	ret = impl->new_(m->base, m->len, m->page_size, t);
	if (ret == -EOPNOTSUPP) {
		tm_unmap(m);
		skip(g_strdup_printf("kernel lacks %s", tm_missing_wp_feature(kind)));
		return FALSE;
	}
	g_assert_cmpint(ret, ==, 0);
	return TRUE;
}

static gboolean setup(TmKind kind, size_t len, TmMem *m, void **t)
{
	return setup_used(kind, len, len, m, t);
}

/* A collect into a cleared bitmap; its groups must be those of the pages it set,
 * exactly (a missing mark would hide a dirty page from the engine's walk). */
static void collect(void *t, unsigned long *map, size_t nlongs, uint64_t *n)
{
	size_t npages = nlongs * 8 * sizeof(long), ngroups = (npages >> GROUP_SHIFT) + 1;
	g_autofree unsigned long *groups = g_new0(unsigned long, tm_bitmap_longs(ngroups));

	memset(map, 0, nlongs * sizeof(long));
	g_assert_cmpint(impl->collect(t, map, groups, n), ==, 0);
	for (size_t g = 0; g < ngroups; g++) {
		int any = 0;

		for (size_t p = g << GROUP_SHIFT; p < MIN((g + 1) << GROUP_SHIFT, npages); p++)
			any |= tm_test_bit(map, p);
		if (tm_test_bit(groups, g) != any)
			g_error("group %zu (pages %zu..): marked %d, pages set %d", g, g << GROUP_SHIFT,
				tm_test_bit(groups, g), any);
	}
}

static void assert_exact(const TmMem *m, const unsigned long *map, uint64_t n,
			 const gboolean *want)
{
	uint64_t nwant = 0, extra = 0;

	for (size_t p = 0; p < m->npages; p++) {
		int got = tm_test_bit(map, p);

		if (got && !want[p] && migrated()) {
			extra++;
			continue;
		}
		if (got != !!want[p])
			g_error("page %zu: reported %d, written %d", p, got, want[p]);
		nwant += !!want[p];
	}
	if (extra)
		g_test_message("%" G_GUINT64_FORMAT " unwritten page(s) reported while the "
			       "system migrated pages", extra);
	g_assert_cmpuint(n, ==, nwant + extra);
	/* Bits past the last page belong to nobody and must stay clear. */
	for (size_t p = m->npages; p < tm_bitmap_longs(m->npages) * 8 * sizeof(long); p++)
		g_assert_false(tm_test_bit(map, p));
}

static void test_exact(gconstpointer data)
{
	const TmBackend *b = use_case(data);
	size_t len = b->kind == TM_HUGETLB ? 32 * TM_HUGE_2M : 8UL << 20;
	g_autofree gboolean *want = NULL;
	g_autofree uint64_t *expect = NULL;
	g_autofree unsigned long *map = NULL;
	void *t;
	size_t np, nlongs, untouched, read_only;
	uint64_t n;
	TmMem m;

	if (!setup(b->kind, len, &m, &t))
		return;
	np = m.npages;
	nlongs = tm_bitmap_longs(np);
	map = g_new0(unsigned long, nlongs);
	want = g_new0(gboolean, np);
	expect = g_new0(uint64_t, np);

	/* Every third page holds data before tracking starts; the rest was never touched. */
	for (size_t p = 0; p < np; p += 3) {
		expect[p] = 0x1000 + p;
		poke(&m, p, expect[p]);
	}

	g_assert_cmpint(impl->arm(t), ==, 0);

	/* Nothing written since arm: nothing reported, populated or not. */
	collect(t, map, nlongs, &n);
	assert_exact(&m, map, n, want);

	/* Two never-touched pages (index not a multiple of 3): one only read, one written. */
	untouched = np / 2 + (np / 2 % 3 == 0);
	read_only = untouched + 1 + ((untouched + 1) % 3 == 0);
	g_assert_cmpuint(untouched % 3, !=, 0);
	g_assert_cmpuint(read_only % 3, !=, 0);

	/* Reading never-touched pages maps the zero page; that is not a write. */
	g_assert_cmpuint(peek(&m, read_only, 0), ==, 0);
	g_assert_cmpuint(peek(&m, 1, 1), ==, 0);

	{
		size_t set[] = { 0, np - 1, 3, untouched, 1 /* read above */, 10, 11, 12, 13 };

		for (size_t i = 0; i < G_N_ELEMENTS(set); i++) {
			want[set[i]] = TRUE;
			expect[set[i]] = 0xabc00000 + set[i];
			poke(&m, set[i], expect[set[i]]);
		}
	}
	collect(t, map, nlongs, &n);
	assert_exact(&m, map, n, want);

	/* get-and-clear: the same pages are not reported again... */
	memset(want, 0, np * sizeof(*want));
	collect(t, map, nlongs, &n);
	assert_exact(&m, map, n, want);

	/* ...until written again, and then only those. */
	want[3] = want[np - 1] = TRUE;
	expect[3] = 0x5a5a;
	expect[np - 1] = 0xa5a5;
	poke(&m, 3, expect[3]);
	poke(&m, np - 1, expect[np - 1]);
	collect(t, map, nlongs, &n);
	assert_exact(&m, map, n, want);

	/* Tracking never altered memory. */
	for (size_t p = 0; p < np; p++) {
		g_assert_cmpuint(peek(&m, p, 0), ==, expect[p]);
		g_assert_cmpuint(peek(&m, p, 1), ==, expect[p]);
	}

	/* After free the memory is plainly writable again. */
	impl->free_(t);
	for (size_t p = 0; p < np; p++)
		poke(&m, p, ~(uint64_t)p);
	for (size_t p = 0; p < np; p++)
		g_assert_cmpuint(peek(&m, p, 1), ==, ~(uint64_t)p);
	tm_unmap(&m);
}

/* More runs than the tracker's 512-entry region vector: collect has to resume from
 * walk_end several times, and nothing may fall between two calls. */
static void test_many_regions(gconstpointer data)
{
	const TmBackend *b = use_case(data);
	g_autofree gboolean *want = NULL;
	g_autofree unsigned long *map = NULL;
	void *t;
	size_t nlongs;
	uint64_t n;
	TmMem m;

	if (!setup(b->kind, 16UL << 20, &m, &t))	/* 4096 pages */
		return;
	nlongs = tm_bitmap_longs(m.npages);
	map = g_new0(unsigned long, nlongs);
	want = g_new0(gboolean, m.npages);
	g_assert_cmpint(impl->arm(t), ==, 0);
	/* Every other page, plus a few pairs so some regions are longer than one page:
	 * about 2000 separate regions. */
	for (size_t p = 0; p < m.npages; p += 2) {
		want[p] = TRUE;
		if (p % 254 == 0 && p + 1 < m.npages)
			want[p + 1] = TRUE;
	}
	for (size_t p = 0; p < m.npages; p++)
		if (want[p])
			poke(&m, p, p + 1);
	collect(t, map, nlongs, &n);
	assert_exact(&m, map, n, want);
	memset(want, 0, m.npages * sizeof(*want));
	collect(t, map, nlongs, &n);
	assert_exact(&m, map, n, want);
	impl->free_(t);
	tm_unmap(&m);
}

/* Does page p of m hold anything in this process's page table: a page, a swap entry or
 * a write-protect marker (pagemap shows a marker as swapped)? */
static gboolean pte_used(const TmMem *m, size_t p)
{
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	uint64_t e = 0;
	off_t off = (off_t)((uintptr_t)(m->base + p * m->page_size) / 4096 * sizeof(e));

	g_assert_cmpint(fd, >=, 0);
	g_assert_cmpint(pread(fd, &e, sizeof(e), off), ==, sizeof(e));
	close(fd);
	return (e >> 62) != 0;
}

/* A guest that never touched the second half of its RAM: arming leaves that half without
 * page tables (the scan tracker: so no collect walks it), nothing there is reported
 * until written, and a write there, into memory nobody protected, is reported like any
 * other, then protected like any other. */
static void test_tail(gconstpointer data)
{
	const TmBackend *b = use_case(data);
	const size_t len = 32UL << 20, used = len / 2;
	g_autofree gboolean *want = NULL;
	g_autofree unsigned long *map = NULL;
	size_t np, nlongs, w1, w2;
	void *t;
	uint64_t n;
	TmMem m;

	if (!setup_used(b->kind, len, used, &m, &t))
		return;
	np = m.npages;
	nlongs = tm_bitmap_longs(np);
	map = g_new0(unsigned long, nlongs);
	want = g_new0(gboolean, np);
	for (size_t p = 0; p < used / m.page_size; p++)
		poke(&m, p, p + 1);
	g_assert_cmpint(impl->arm(t), ==, 0);
	/* The scan tracker gave the tail no entries, where page tables map tail pages only
	 * (memfd is not 2 MiB-aligned, and a table it shares with a neighbour may exist). */
	if (impl == &impls[0]) {
		uintptr_t a = ((uintptr_t)m.base + used + TM_HUGE_2M - 1) & ~(TM_HUGE_2M - 1);
		uintptr_t z = ((uintptr_t)m.base + len) & ~(TM_HUGE_2M - 1);

		g_assert_cmpuint(a, <, z);
		for (uintptr_t v = a; v < z; v += 97 * m.page_size)
			if (pte_used(&m, (v - (uintptr_t)m.base) / m.page_size))
				g_error("untouched page %zu got a page table entry at arm",
					(size_t)(v - (uintptr_t)m.base) / m.page_size);
	}

	collect(t, map, nlongs, &n);
	assert_exact(&m, map, n, want);

	/* Two writes in the tail: one page in a 2 MiB region of its own, one at the end. */
	w1 = used / m.page_size + (TM_HUGE_2M / m.page_size) + 5;
	w2 = np - 1;
	poke(&m, w1, 0xfeed);
	poke(&m, w2, 0xbeef);
	collect(t, map, nlongs, &n);
	if (b->kind == TM_ANON_THP) {
		/* A write to an empty THP region may fault in the whole huge page, which is
		 * then reported whole: the region, not the page, is the unit there. */
		for (size_t p = 0; p < np; p++) {
			gboolean near = p / 512 == w1 / 512 || p / 512 == w2 / 512;

			if (tm_test_bit(map, p) && !near && !migrated())
				g_error("page %zu reported, outside the written regions", p);
		}
		g_assert_true(tm_test_bit(map, w1));
		g_assert_true(tm_test_bit(map, w2));
	} else {
		want[w1] = want[w2] = TRUE;
		assert_exact(&m, map, n, want);
	}

	/* Reported once, then protected: the next collect is empty, a new write shows. */
	memset(want, 0, np * sizeof(*want));
	collect(t, map, nlongs, &n);
	assert_exact(&m, map, n, want);
	poke(&m, w1, 0xf00d);
	want[w1] = TRUE;
	collect(t, map, nlongs, &n);
	assert_exact(&m, map, n, want);
	g_assert_cmpuint(peek(&m, w1, 0), ==, 0xf00d);
	g_assert_cmpuint(peek(&m, w2, 1), ==, 0xbeef);
	impl->free_(t);
	tm_unmap(&m);
}

/* Arm racing a writer that fills untouched memory a page at a time: arm protects the
 * page tables there are and then records where they are, and a table the writer makes
 * in between (or after) must not hide a write. Every write that began after arm
 * returned is reported by the next collect; earlier ones may be. */
typedef struct {
	TmMem *m;
	atomic_bool armed, stop;
	atomic_size_t next;		/* pages written so far, in order */
	size_t first_after;		/* first page begun after arm returned (writer's) */
} Filler;

static gpointer filler(gpointer data)
{
	Filler *f = data;
	size_t np = f->m->npages;

	f->first_after = np;
	for (size_t p = np / 8; p < np && !atomic_load(&f->stop); p++) {
		if (f->first_after == np && atomic_load(&f->armed))
			f->first_after = p;
		poke(f->m, p, p);
		atomic_store(&f->next, p + 1);
		if (p % 64 == 0)
			g_usleep(20);	/* let arm run between the writes */
	}
	return NULL;
}

static void test_arm_race(gconstpointer data)
{
	const TmBackend *b = use_case(data);
	g_autofree unsigned long *map = NULL;
	Filler f = { 0 };
	GThread *th;
	size_t nlongs, end;
	void *t;
	uint64_t n;
	TmMem m;

	if (!setup_used(b->kind, 64UL << 20, 2UL << 20, &m, &t))
		return;
	nlongs = tm_bitmap_longs(m.npages);
	map = g_new0(unsigned long, nlongs);
	poke(&m, 0, 1);
	f.m = &m;
	atomic_init(&f.armed, false);
	atomic_init(&f.stop, false);
	atomic_init(&f.next, m.npages / 8);
	th = g_thread_new("uffd-filler", filler, &f);
	while (atomic_load(&f.next) < m.npages / 8 + 256)
		g_usleep(100);
	g_assert_cmpint(impl->arm(t), ==, 0);
	atomic_store(&f.armed, true);
	while (atomic_load(&f.next) < m.npages / 2 + 256)
		g_usleep(100);
	atomic_store(&f.stop, true);
	g_thread_join(th);
	end = atomic_load(&f.next);
	g_assert_cmpuint(f.first_after, <, end);

	collect(t, map, nlongs, &n);
	for (size_t p = f.first_after; p < end; p++)
		if (!tm_test_bit(map, p))
			g_error("page %zu written after arm (from page %zu on) was not reported", p,
				f.first_after);
	/* and nothing beyond what was written (pages the filler never reached) */
	for (size_t p = end; p < m.npages; p++)
		if (tm_test_bit(map, p) && (b->kind != TM_ANON_THP || p / 512 != (end - 1) / 512) &&
		    !migrated())
			g_error("page %zu reported, never written", p);
	g_test_message("%s: %zu pages written during arm, %zu after", b->name,
		       f.first_after - m.npages / 8, end - f.first_after);
	impl->free_(t);
	tm_unmap(&m);
}

/* The writer/collector race.
 *
 * Never lost, and reported by "this collect or the next": the writer reads `epoch`
 * (= number of collects started) before and after each write, and logs both. Reading
 * e0 before means collect e0-1 had already returned; reading e1 after means collect
 * e1+1 had not started. So the write overlapped collects e0..e1 at most, and must be
 * reported by one of the collects e0..e1+1.
 *
 * Not reported again without a write: a store that faults, gets its page unprotected,
 * and then loses the page to a concurrent collect's re-protect before the CPU retries
 * it, faults a second time. One store is then reported by two consecutive collects
 * (harmless: the second copy is redundant). So a repeat report only needs *some* write
 * that was not yet finished when the earlier collect started: for reports at collects
 * a < b of page p, intent[p] after b > done[p] before a. */
typedef struct {
	guint32 page, e0, e1;
} WriteLog;

#define LOG_MAX (4u << 20)

typedef struct {
	TmMem *m;
	atomic_uint epoch;		/* number of collects started */
	atomic_bool stop;
	atomic_uint *intent;		/* writes begun per page, bumped before the store */
	atomic_uint *done;		/* writes finished per page, bumped after the store */
	/* Writer-private until joined: */
	WriteLog *log;
	guint32 nlog;
	uint64_t *expect;
	guint32 seed;
} Race;

static gpointer writer(gpointer data)
{
	Race *r = data;
	guint32 x = r->seed | 1;
	uint64_t v = 0;

	while (!atomic_load_explicit(&r->stop, memory_order_relaxed) && r->nlog < LOG_MAX) {
		WriteLog *l = &r->log[r->nlog++];
		size_t p;

		x ^= x << 13, x ^= x >> 17, x ^= x << 5;	/* xorshift32 */
		p = x % r->m->npages;
		l->page = (guint32)p;
		/* seq_cst throughout: the epoch loads, counters and the page stores must not
		 * be reordered around each other, or the window [e0, e1] would be a lie. */
		l->e0 = atomic_load(&r->epoch);
		atomic_fetch_add(&r->intent[p], 1);
		atomic_thread_fence(memory_order_seq_cst);
		poke(r->m, p, ++v);
		atomic_thread_fence(memory_order_seq_cst);
		atomic_fetch_add(&r->done[p], 1);
		l->e1 = atomic_load(&r->epoch);
		r->expect[p] = v;
	}
	return NULL;
}

typedef struct {
	GArray **hist;		/* per page: collects that reported it, ascending */
	guint *done_before;	/* done[p] snapshot taken before its latest report's collect */
	guint *snap;		/* done[] snapshot before the current collect */
	guint64 repeats;	/* repeat reports explained only by an in-flight write */
	guint64 unexplained;	/* reports with no write at all: page migration only */
	char *first;		/* description of the first unexplained one */
} Books;

static void snapshot(Race *r, Books *bk)
{
	for (size_t p = 0; p < r->m->npages; p++)
		bk->snap[p] = atomic_load(&r->done[p]);
}

static void account(Race *r, Books *bk, const unsigned long *map, guint k)
{
	for (size_t p = 0; p < r->m->npages; p++) {
		GArray *h = bk->hist[p];
		guint in;

		if (!tm_test_bit(map, p))
			continue;
		in = atomic_load(&r->intent[p]);
		if (!h->len ? in == 0 : in <= bk->done_before[p]) {
			if (!bk->unexplained++)
				bk->first = g_strdup_printf(
					"page %zu reported by collect %u with no write since collect %u "
					"started (writes begun %u, finished before %u)", p, k,
					h->len ? g_array_index(h, guint, h->len - 1) : 0, in,
					bk->done_before[p]);
		} else if (h->len && bk->snap[p] <= bk->done_before[p])
			bk->repeats++;
		g_array_append_val(h, k);
		bk->done_before[p] = bk->snap[p];
	}
}

/* Did any collect in [lo, hi] report the page? */
static gboolean reported_between(GArray *h, guint lo, guint hi)
{
	guint a = 0, b = h->len;

	while (a < b) {		/* first entry >= lo */
		guint mid = (a + b) / 2;

		if (g_array_index(h, guint, mid) < lo)
			a = mid + 1;
		else
			b = mid;
	}
	return a < h->len && g_array_index(h, guint, a) <= hi;
}

static void test_concurrent(gconstpointer data)
{
	const TmBackend *b = use_case(data);
	size_t len = b->kind == TM_HUGETLB ? 16 * TM_HUGE_2M : 4UL << 20;
	g_autofree unsigned long *map = NULL;
	g_autofree guint *done_before = NULL, *snap = NULL;
	g_autofree GArray **hist = NULL;
	g_autofree atomic_uint *intent = NULL, *done = NULL;
	g_autofree WriteLog *log = NULL;
	g_autofree uint64_t *expect = NULL;
	g_autofree gboolean *wrote = NULL;
	void *t;
	GThread *th;
	Race r = { 0 };
	Books bk;
	gint64 t0;
	guint k = 0;
	uint64_t n, reported = 0, nwritten = 0;
	size_t np, nlongs;
	TmMem m;

	if (!setup(b->kind, len, &m, &t))
		return;
	np = m.npages;
	nlongs = tm_bitmap_longs(np);
	map = g_new0(unsigned long, nlongs);
	hist = g_new0(GArray *, np);
	for (size_t p = 0; p < np; p++)
		hist[p] = g_array_new(FALSE, FALSE, sizeof(guint));
	done_before = g_new0(guint, np);
	snap = g_new0(guint, np);
	intent = g_new0(atomic_uint, np);
	done = g_new0(atomic_uint, np);
	expect = g_new0(uint64_t, np);
	wrote = g_new0(gboolean, np);
	log = g_new(WriteLog, LOG_MAX);
	bk = (Books){ .hist = hist, .done_before = done_before, .snap = snap };
	/* Half the pages hold data beforehand so both populated and empty ptes race. */
	for (size_t p = 0; p < np; p += 2)
		poke(&m, p, 0);

	r.m = &m;
	r.intent = intent;
	r.done = done;
	r.log = log;
	r.expect = expect;
	r.seed = g_test_rand_int();
	atomic_init(&r.epoch, 0);
	atomic_init(&r.stop, false);

	g_assert_cmpint(impl->arm(t), ==, 0);
	/* Epoch 1 before the writer starts: its first writes belong to collect >= 1. */
	atomic_store(&r.epoch, 1);
	th = g_thread_new("uffd-writer", writer, &r);

	t0 = g_get_monotonic_time();
	for (;;) {
		snapshot(&r, &bk);
		if (k)
			atomic_store(&r.epoch, k + 1);
		k++;
		collect(t, map, nlongs, &n);
		reported += n;
		account(&r, &bk, map, k);
		if (g_get_monotonic_time() - t0 >= 200 * 1000)
			break;
	}
	atomic_store(&r.stop, true);
	g_thread_join(th);

	/* One last collect with the writer quiescent picks up everything still pending. */
	snapshot(&r, &bk);
	atomic_store(&r.epoch, ++k);
	collect(t, map, nlongs, &n);
	reported += n;
	account(&r, &bk, map, k);

	for (guint32 i = 0; i < r.nlog; i++) {
		const WriteLog *l = &log[i];

		if (!reported_between(hist[l->page], l->e0, l->e1 + 1))
			g_error("write #%u to page %u during collects %u..%u was not reported by "
				"any of collects %u..%u", i, l->page, l->e0, l->e1, l->e0, l->e1 + 1);
		wrote[l->page] = TRUE;
	}
	for (size_t p = 0; p < np; p++) {
		if (!wrote[p]) {
			g_assert_cmpuint(hist[p]->len, ==, 0);
			continue;
		}
		nwritten++;
		/* Tracking never altered what was written. */
		g_assert_cmpuint(peek(&m, p, 0), ==, expect[p]);
		g_assert_cmpuint(peek(&m, p, 1), ==, expect[p]);
	}
	/* Nothing left behind: a further collect finds nothing (unless a migration left a
	 * page writable, see assert_exact). */
	collect(t, map, nlongs, &n);
	if (n && migrated())
		bk.unexplained += n;
	else
		g_assert_cmpuint(n, ==, 0);
	if (bk.unexplained) {
		if (!migrated())
			g_error("%s", bk.first);
		g_test_message("%" G_GUINT64_FORMAT " report(s) without a write while the system "
			       "migrated pages, first: %s", bk.unexplained, bk.first ? bk.first : "-");
	}
	g_free(bk.first);

	g_test_message("%s: %u collects, %u writes to %" G_GUINT64_FORMAT " pages, %"
		       G_GUINT64_FORMAT " page reports, %" G_GUINT64_FORMAT
		       " of them repeats due to a write spanning a collect", b->name, k, r.nlog,
		       nwritten, reported, bk.repeats);
	g_assert_cmpuint(k, >, 2);
	for (size_t p = 0; p < np; p++)
		g_array_unref(hist[p]);
	impl->free_(t);
	tm_unmap(&m);
}

int main(int argc, char **argv)
{
	int ret;

	g_test_init(&argc, &argv, NULL);
	huge_err = tm_reserve_huge(HUGE_WANT, &huge_resv);

	for (size_t k = 0; k < G_N_ELEMENTS(impls); k++)
	for (size_t i = 0; i < G_N_ELEMENTS(backends); i++) {
		const Case *c = &cases[k][i];
		g_autofree char *p1 = g_strdup_printf("/uffd/%s/%s/exact", impls[k].name,
						      backends[i].name);
		g_autofree char *p2 = g_strdup_printf("/uffd/%s/%s/concurrent", impls[k].name,
						      backends[i].name);

		cases[k][i] = (Case){ &backends[i], &impls[k] };
		g_test_add_data_func(p1, c, test_exact);
		g_test_add_data_func(p2, c, test_concurrent);
		if (backends[i].kind != TM_HUGETLB) {	/* 512+ huge pages: too many to ask */
			g_autofree char *p3 = g_strdup_printf("/uffd/%s/%s/many-regions",
							      impls[k].name, backends[i].name);
			g_autofree char *p4 = g_strdup_printf("/uffd/%s/%s/untouched-tail",
							      impls[k].name, backends[i].name);
			g_autofree char *p5 = g_strdup_printf("/uffd/%s/%s/arm-race",
							      impls[k].name, backends[i].name);

			g_test_add_data_func(p3, c, test_many_regions);
			g_test_add_data_func(p4, c, test_tail);
			g_test_add_data_func(p5, c, test_arm_race);
		}
	}
	ret = g_test_run();

	tm_release_huge(&huge_resv);
	return ret;
}
