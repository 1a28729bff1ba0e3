/* Discards in batches (engine/discard.c): after a batch of ranges, exactly the pages of
 * those ranges read zero and every other page keeps its bytes, whichever method the
 * kernel allows, for anonymous memory and for a memfd; more ranges than one call takes;
 * adjacent, single-page and block-long ranges. */
#include "engine/discard.h"
#include <string.h>

#define PAGES 4096u   /* 16 MiB of 4 KiB pages */

static void fill(MigRamBlock *b)
{
	for (guint p = 0; p < PAGES; p++)
		memset(b->host + (gsize)p * b->page_size, (int)(p % 251) + 1, b->page_size);
}

static void check(MigRamBlock *b, const gboolean *dropped)
{
	for (guint p = 0; p < PAGES; p++) {
		const guint8 *pg = b->host + (gsize)p * b->page_size;
		guint8 want = dropped[p] ? 0 : (guint8)(p % 251 + 1);

		if (pg[0] != want || pg[b->page_size - 1] != want)
			g_error("page %u reads %u/%u, want %u", p, pg[0], pg[b->page_size - 1], want);
	}
}

/* 1500 single pages (every other of the first 3000: more than one call's 1024), three
 * adjacent ranges, and a long one */
static guint make_ranges(guint64 *r, gboolean *dropped)
{
	guint n = 0;

	memset(dropped, 0, PAGES * sizeof(*dropped));
	for (guint p = 0; p < 3000; p += 2) {
		r[2 * n] = p, r[2 * n + 1] = 1, n++;
		dropped[p] = TRUE;
	}
	for (guint p = 3100; p < 3130; p += 10) {
		r[2 * n] = p, r[2 * n + 1] = 10, n++;
		for (guint q = p; q < p + 10; q++)
			dropped[q] = TRUE;
	}
	r[2 * n] = 3500, r[2 * n + 1] = 400, n++;
	for (guint q = 3500; q < 3900; q++)
		dropped[q] = TRUE;
	return n;
}

static void run(MigMemBackend backend, gboolean per_range)
{
	g_autoptr(GError) err = NULL;
	MigRamBlock *b = mig_ram_block_new("pc.ram", (gsize)PAGES * 4096, backend, 0, &err);
	MigDiscarder *d = per_range ? mig_discarder_new_per_range() : mig_discarder_new();
	g_autofree guint64 *r = g_new(guint64, 2 * PAGES);
	g_autofree gboolean *dropped = g_new(gboolean, PAGES);
	guint n;

	g_assert_no_error(err);
	g_test_message("%s, %s", mig_mem_backend_str(backend), mig_discarder_method(d));
	if (per_range)
		g_assert_cmpstr(mig_discarder_method(d), ==, "madvise");
	fill(b);
	n = make_ranges(r, dropped);
	g_assert_cmpint(mig_discarder_apply(d, b, r, n), ==, 0);
	check(b, dropped);
	/* a second time over the same ranges changes nothing more */
	g_assert_cmpint(mig_discarder_apply(d, b, r, n), ==, 0);
	check(b, dropped);
	mig_discarder_free(d);
	mig_ram_block_free(b);
}

static void test_anon(void) { run(MIG_MEM_ANON, FALSE); }
static void test_anon_per_range(void) { run(MIG_MEM_ANON, TRUE); }
static void test_memfd(void) { run(MIG_MEM_MEMFD, FALSE); }

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/discard/anon", test_anon);
	g_test_add_func("/discard/anon-per-range", test_anon_per_range);
	g_test_add_func("/discard/memfd", test_memfd);
	return g_test_run();
}
