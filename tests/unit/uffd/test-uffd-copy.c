/* uffd/place.c: mig_uffd_copy_pages places a run of pages in as few ioctls as it can
 * and leaves alone the pages another copy placed first (the lazy restore's prefetch
 * against its faults). */
#include <glib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "uffd/place.h"
#include "uffd/uffd.h"

#define PS 4096u
#define NPAGES 8u

static void fill(guint8 *p, guint8 v)
{
	memset(p, v, PS);
}

/* Pages 0, 3 and 5 are placed first with other bytes; then a run of 0..5 is placed:
 * the others get the run's bytes, those three keep theirs, 6 and 7 stay missing. */
static void test_copy_pages_skips_present(void)
{
	guint8 *mem = mmap(NULL, NPAGES * PS, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	guint8 *src = g_malloc(NPAGES * PS), *first = g_malloc(PS);
	unsigned char vec[NPAGES];
	MigUffdInfo info = { 0 };
	int fd = mig_uffd_open(0, 0, &info);

	g_assert_true(mem != MAP_FAILED);
	g_assert_cmpint(fd, >=, 0);
	g_assert_cmpint(mig_uffd_register(fd, mem, NPAGES * PS, UFFDIO_REGISTER_MODE_MISSING, NULL), ==, 0);
	for (guint i = 0; i < NPAGES; i++)
		fill(src + i * PS, (guint8)(0x10 + i));
	fill(first, 0xee);
	for (guint i = 0; i < NPAGES; i++)
		if (i == 0 || i == 3 || i == 5)
			g_assert_cmpint(mig_uffd_copy(fd, mem + i * PS, first, PS), ==, 0);
	g_assert_cmpint(mig_uffd_copy_pages(fd, mem, src, PS, 6), ==, 0);
	for (guint i = 0; i < 6; i++) {
		guint8 want = i == 0 || i == 3 || i == 5 ? 0xee : (guint8)(0x10 + i);

		g_assert_cmpuint(mem[i * PS], ==, want);
		g_assert_cmpuint(mem[i * PS + PS - 1], ==, want);
	}
	/* never touched: still missing, so not resident */
	g_assert_cmpint(mincore(mem, NPAGES * PS, vec), ==, 0);
	g_assert_cmpuint(vec[6] & 1, ==, 0);
	g_assert_cmpuint(vec[7] & 1, ==, 0);
	/* every page of a run already there: nothing to do, no error */
	g_assert_cmpint(mig_uffd_copy_pages(fd, mem + 3 * PS, src, PS, 1), ==, 0);
	g_assert_cmpuint(mem[3 * PS], ==, 0xee);
	close(fd);
	munmap(mem, NPAGES * PS);
	g_free(src);
	g_free(first);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/uffd/copy-pages/skips-present", test_copy_pages_skips_present);
	return g_test_run();
}
