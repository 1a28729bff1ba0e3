/* mig_holes_find against pages this test touched itself: anonymous memory (page table:
 * none, a present page, the zero page after a read, a discarded page, and the pte
 * markers the dirty tracker's write-protection leaves on pages never populated) and a
 * memfd (its holes). Every page not touched must be found, and no touched one. */
#include "engine/holes.h"
#include "engine/bitmap.h"
#include <mig/dirty.h>
#include <string.h>
#include <unistd.h>

#define PAGES 1024u

static gboolean touched(gsize i)
{
	return i == 0 || i == 5 || (i >= 7 && i <= 10) || i == 300 || i == PAGES - 1;
}

static void touch(MigRamBlock *b)
{
	for (gsize i = 0; i < PAGES; i++)
		if (touched(i))
			b->host[i * 4096 + 17] = 1;
}

/* want: the holes expected among [first, first + n), by page */
static void expect(MigHoles *h, MigRamBlock *b, gsize first, gsize n, gboolean (*hole)(gsize), const char *what)
{
	gulong *out = mig_bitmap_new(n);
	gsize found = mig_holes_find(h, b, first, n, out), want = 0;

	for (gsize k = 0; k < n; k++) {
		if (hole(first + k))
			want++;
		if (mig_bitmap_test(out, k) != hole(first + k))
			g_error("%s: page %" G_GSIZE_FORMAT " is%s a hole, found%s", what, first + k,
				hole(first + k) ? "" : " not", mig_bitmap_test(out, k) ? "" : " not");
	}
	g_assert_cmpuint(found, ==, want);
	g_free(out);
}

static gboolean hole_untouched(gsize i)
{
	return !touched(i);
}

static gboolean hole_all(gsize i)
{
	return TRUE;
}

/* page 20 was read (the zero page is mapped: present, not a hole), page 5 discarded */
static gboolean hole_after(gsize i)
{
	return i == 5 || (!touched(i) && i != 20);
}

static void test_anon(void)
{
	g_autoptr(GError) err = NULL;
	MigRamBlock *b = mig_ram_block_new("anon", PAGES * 4096, MIG_MEM_ANON, 0, &err);
	MigHoles *h = mig_holes_new();
	MigDirtyTracker *t;
	volatile guint8 r;

	g_assert_no_error(err);
	expect(h, b, 0, PAGES, hole_all, "anon, fresh");
	touch(b);
	expect(h, b, 0, PAGES, hole_untouched, "anon");
	expect(h, b, 3, 600, hole_untouched, "anon, a range");
	r = b->host[20 * 4096];
	(void)r;
	g_assert_cmpint(mig_ram_block_discard(b, 5, 1), ==, 0);
	expect(h, b, 0, PAGES, hole_after, "anon, read and discarded");
	/* the default tracker write-protects the block, markers on its empty pages */
	t = mig_dirty_tracker_uffd_new();
	if (!t->ops->start(t, b->host, b->size, 4096, &err)) {
		g_test_message("no uffd-wp tracker here (%s): markers not checked", err->message);
		g_clear_error(&err);
	} else {
		if (geteuid() == 0)   /* a marker's swap type shows to CAP_SYS_ADMIN only */
			expect(h, b, 0, PAGES, hole_after, "anon, write-protected");
		t->ops->stop(t);
	}
	mig_dirty_tracker_free(t);
	mig_holes_free(h);
	mig_ram_block_free(b);
}

static void test_memfd(void)
{
	g_autoptr(GError) err = NULL;
	MigRamBlock *b = mig_ram_block_new("memfd", PAGES * 4096, MIG_MEM_MEMFD, 0, &err);
	MigHoles *h = mig_holes_new();

	g_assert_no_error(err);
	touch(b);
	expect(h, b, 0, PAGES, hole_untouched, "memfd");
	expect(h, b, 6, 500, hole_untouched, "memfd, a range");
	mig_holes_free(h);
	mig_ram_block_free(b);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/holes/anon", test_anon);
	g_test_add_func("/holes/memfd", test_memfd);
	return g_test_run();
}
