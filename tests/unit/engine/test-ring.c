/* The file migration's io_uring (engine/ring.c) on a real file: vectored requests
 * gathered from memory pieces (adjacent ones merged) and filler land at consecutive
 * offsets, split at the request size and at MIG_RING_MAX_IOV pieces; a vectored read
 * cut short by the end of the file resubmits its rest and then reports the file
 * truncated, the bytes before the end delivered; a throttled ring keeps one request
 * of the throttled size in flight, and a reserve there waits for it. */
#include "engine/ring.h"
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

typedef struct Fixture {
	char *dir, *path;
	int fd;
} Fixture;

static void fixture_init(Fixture *f)
{
	f->dir = g_dir_make_tmp("mig-ring-XXXXXX", NULL);
	g_assert_nonnull(f->dir);
	f->path = g_build_filename(f->dir, "f.img", NULL);
	f->fd = open(f->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	g_assert_cmpint(f->fd, >=, 0);
}

static void fixture_clear(Fixture *f)
{
	close(f->fd);
	unlink(f->path);
	rmdir(f->dir);
	g_free(f->path);
	g_free(f->dir);
}

static void fill_pattern(guint8 *p, gsize len, guint seed)
{
	for (gsize i = 0; i < len; i++)
		p[i] = (guint8)(i * 31 + seed);
}

/* 300 pages from memory, every other one apart from the last (not mergeable),
 * with a 2-page filler after every tenth: requests split at MIG_RING_MAX_IOV pieces,
 * the bytes at consecutive offsets, filler zeros. */
static void test_vec_write_read(void)
{
	Fixture f;
	GError *err = NULL;
	MigRing *r;
	const gsize n = 300, ps = 4096;
	guint8 *mem = g_malloc(2 * n * ps), *back = g_malloc(2 * n * ps * 2), *want = g_malloc0(2 * n * ps * 2);
	gsize off = 0, fill = 0;

	fixture_init(&f);
	fill_pattern(mem, 2 * n * ps, 7);
	r = mig_ring_new(f.fd, MIG_RING_QD, &err);
	g_assert_no_error(err);
	mig_ring_vec_begin(r, 4096, TRUE);
	for (gsize i = 0; i < n; i++) {
		g_assert_true(mig_ring_vec_add(r, mem + 2 * i * ps, ps, FALSE, &err));
		memcpy(want + off, mem + 2 * i * ps, ps);
		off += ps;
		if (i % 10 == 9) {
			g_assert_true(mig_ring_vec_fill(r, 2 * ps, &err));
			off += 2 * ps;
			fill += 2 * ps;
		}
	}
	g_assert_true(mig_ring_vec_end(r, &err));
	g_assert_true(mig_ring_drain(r, &err));
	g_assert_no_error(err);
	g_assert_cmpuint(mig_ring_bytes(r), ==, off);
	g_assert_cmpuint(mig_ring_fill_bytes(r), ==, fill);
	/* 330 pieces (a filler is one, a page one): 256 + 74 */
	g_assert_cmpuint(mig_ring_requests(r), ==, 2);
	g_assert_cmpint(pread(f.fd, back, off, 4096), ==, (gssize)off);
	g_assert_true(memcmp(back, want, off) == 0);

	/* read back: every page into its own buffer, the fillers into the discard buffer;
	 * adjacent buffers merge, so the request count follows the 1 MiB size */
	memset(back, 0, 2 * n * ps * 2);
	mig_ring_vec_begin(r, 4096, FALSE);
	off = 0;
	for (gsize i = 0; i < n; i++) {
		g_assert_true(mig_ring_vec_add(r, back + i * ps, ps, FALSE, &err));
		if (i % 10 == 9)
			g_assert_true(mig_ring_vec_fill(r, 2 * ps, &err));
	}
	g_assert_true(mig_ring_vec_end(r, &err));
	g_assert_true(mig_ring_drain(r, &err));
	g_assert_no_error(err);
	for (gsize i = 0; i < n; i++)
		g_assert_true(memcmp(back + i * ps, mem + 2 * i * ps, ps) == 0);
	mig_ring_free(r);
	fixture_clear(&f);
	g_free(mem);
	g_free(back);
	g_free(want);
}

/* The file ends inside the third piece: the first completion is short, the rest is
 * resubmitted from inside a piece, finds the end, and the error says truncated. */
static void test_vec_short_read(void)
{
	Fixture f;
	GError *err = NULL;
	MigRing *r;
	guint8 data[10000], a[4096], b[4096], c[4096];

	fixture_init(&f);
	fill_pattern(data, sizeof(data), 3);
	g_assert_cmpint(pwrite(f.fd, data, sizeof(data), 0), ==, (gssize)sizeof(data));
	memset(c, 0xee, sizeof(c));
	r = mig_ring_new(f.fd, 4, &err);
	g_assert_no_error(err);
	mig_ring_vec_begin(r, 0, FALSE);
	g_assert_true(mig_ring_vec_add(r, a, sizeof(a), FALSE, &err));
	g_assert_true(mig_ring_vec_add(r, b, sizeof(b), FALSE, &err));
	g_assert_true(mig_ring_vec_add(r, c, sizeof(c), FALSE, &err));
	mig_ring_vec_end(r, NULL);
	g_assert_false(mig_ring_drain(r, &err));
	g_assert_nonnull(err);
	g_test_message("%s", err->message);
	g_assert_true(strstr(err->message, "truncated") != NULL);
	g_assert_true(strstr(err->message, "offset 10000") != NULL);
	g_assert_true(memcmp(a, data, 4096) == 0 && memcmp(b, data + 4096, 4096) == 0);
	g_assert_true(memcmp(c, data + 8192, 10000 - 8192) == 0);
	g_assert_cmpuint(mig_ring_bytes(r), ==, sizeof(data));
	g_clear_error(&err);
	mig_ring_free(r);
	fixture_clear(&f);
}

/* Throttled to one request of 16 KiB: 256 KiB go as 16 requests, never two in flight. */
static void test_throttle(void)
{
	Fixture f;
	GError *err = NULL;
	MigRing *r;
	guint8 *buf = g_malloc(256 << 10);

	fixture_init(&f);
	fill_pattern(buf, 256 << 10, 9);
	r = mig_ring_new(f.fd, MIG_RING_QD, &err);
	g_assert_no_error(err);
	mig_ring_throttle(r, 1, 16 << 10);
	g_assert_true(mig_ring_write(r, buf, 256 << 10, 0, &err));
	g_assert_true(mig_ring_drain(r, &err));
	g_assert_cmpuint(mig_ring_requests(r), ==, 16);
	g_assert_cmpuint(mig_ring_depth_peak(r), ==, 1);
	mig_ring_throttle(r, MIG_RING_QD, MIG_RING_MAX_IO);
	g_assert_true(mig_ring_write(r, buf, 256 << 10, 256 << 10, &err));
	g_assert_true(mig_ring_drain(r, &err));
	g_assert_cmpuint(mig_ring_requests(r), ==, 17);
	/* throttled, a reserve waits for the request in flight: it is done when it returns */
	mig_ring_throttle(r, 1, 16 << 10);
	g_assert_true(mig_ring_write(r, buf, 16 << 10, 0, &err));
	g_assert_true(mig_ring_reserve(r, &err));
	g_assert_cmpuint(mig_ring_bytes(r), ==, (512u << 10) + (16u << 10));
	g_assert_true(mig_ring_drain(r, &err));
	mig_ring_free(r);
	fixture_clear(&f);
	g_free(buf);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/ring/vec-write-read", test_vec_write_read);
	g_test_add_func("/ring/vec-short-read", test_vec_short_read);
	g_test_add_func("/ring/throttle", test_throttle);
	return g_test_run();
}
