/* The fault thread's request batch (engine/dst/reqbatch.h): the requests of one
 * userfaultfd read packed as whole RP_REQ_PAGE frames and written at once. Written
 * through a real socketpair in one write and read back with the frame reader the
 * source uses, each must come out as its own frame, in order, with its fields; a full
 * batch refuses more without touching what it holds. */
#include "engine/dst/reqbatch.h"
#include "channels/frame.h"
#include "channels/io.h"
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void read_back(int fd, guint n, guint32 block0, guint64 off0)
{
	for (guint i = 0; i < n; i++) {
		guint8 p[MIG_PAGE_REQ_LEN];
		MigFrameHdr h;
		guint32 bi, zero;
		guint64 off;

		g_assert_cmpint(mig_frame_recv_hdr(fd, &h, MIG_FRAME_MAX_LEN), ==, 0);
		g_assert_cmpuint(h.type, ==, MIG_F_RP_REQ_PAGE);
		g_assert_cmpuint(h.flags, ==, 0);
		g_assert_cmpuint(h.len, ==, MIG_PAGE_REQ_LEN);
		g_assert_cmpint(mig_io_read_full(fd, p, sizeof(p)), ==, 0);
		mig_get_head16(p, &bi, &zero, &off);
		g_assert_cmpuint(bi, ==, block0 + i % 3);
		g_assert_cmpuint(zero, ==, 0);
		g_assert_cmpuint(off, ==, off0 + (guint64)i * 4096);
	}
}

static void fill(MigReqBatch *b, guint n, guint32 block0, guint64 off0)
{
	for (guint i = 0; i < n; i++)
		g_assert_true(mig_req_batch_add(b, block0 + i % 3, off0 + (guint64)i * 4096));
}

static void test_one_write(void)
{
	const guint counts[] = { 1, 2, 17, MIG_REQ_BATCH_MAX };
	int sv[2];

	g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), ==, 0);
	for (gsize c = 0; c < G_N_ELEMENTS(counts); c++) {
		MigReqBatch b = { 0 };
		/* offsets past 4 GiB: the 64-bit field must survive */
		guint64 off0 = ((guint64)c << 33) + 0x7000;

		fill(&b, counts[c], (guint32)c, off0);
		g_assert_cmpuint(b.n, ==, counts[c]);
		g_assert_cmpuint(mig_req_batch_bytes(&b), ==, counts[c] * (8u + 16u));
		/* one write, as the fault thread makes it */
		g_assert_cmpint(write(sv[0], b.buf, mig_req_batch_bytes(&b)), ==, (gssize)mig_req_batch_bytes(&b));
		read_back(sv[1], counts[c], (guint32)c, off0);
	}
	close(sv[0]);
	close(sv[1]);
}

static void test_full(void)
{
	MigReqBatch b = { 0 };
	guint8 copy[sizeof(b.buf)];
	int sv[2];

	fill(&b, MIG_REQ_BATCH_MAX, 5, 0);
	memcpy(copy, b.buf, sizeof(copy));
	g_assert_false(mig_req_batch_add(&b, 9, 0x1000));
	g_assert_cmpuint(b.n, ==, MIG_REQ_BATCH_MAX);
	g_assert_cmpmem(copy, sizeof(copy), b.buf, sizeof(b.buf));
	/* reset: the next batch starts at the front */
	mig_req_batch_reset(&b);
	g_assert_cmpuint(mig_req_batch_bytes(&b), ==, 0);
	fill(&b, 2, 7, 0x3000);
	g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), ==, 0);
	g_assert_cmpint(write(sv[0], b.buf, mig_req_batch_bytes(&b)), ==, 48);
	close(sv[0]);
	read_back(sv[1], 2, 7, 0x3000);
	{
		MigFrameHdr h;

		/* nothing after the two frames */
		g_assert_cmpint(mig_frame_recv_hdr(sv[1], &h, MIG_FRAME_MAX_LEN), ==, -EPIPE);
	}
	close(sv[1]);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/reqbatch/one-write", test_one_write);
	g_test_add_func("/reqbatch/full", test_full);
	return g_test_run();
}
