/* The destination's device reorder queue (engine/dst/devlane.h): chunks of several
 * devices, tagged (device, sequence), arrive over the multifd channels in any order
 * and each device must get its bytes in order, exactly once, with at most
 * x-device-max-queued bytes held.
 *
 * Test devices take their state through a pipe (the splice path) or a socketpair (the
 * copy path) and keep what they read. Chunks go as frames over socketpairs and are
 * taken by mig_dev_dst_chunk_mf(), as a multifd receiver does: in every arrival order
 * for a small case, in seeded random orders for larger ones, and from several channel
 * threads at once against the smallest queue.
 *
 * Every call into the queue that can wait (taking a chunk, DEV_END) runs under a bound
 * (bounded.h): a broken queue fails the test with a message, it does not hang it. */
#include "bounded.h"
#include "dst-fixture.h"
#include "engine/dst/devlane.h"
#include "engine/src/devlane.h"
#include "channels/frame.h"
#include "channels/wire.h"
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define NDEV_MAX 4

typedef struct TDev {
	char id[16];
	gboolean use_pipe;
	guint slow_us;        /* pause between reads: a device slower than the wire */
	int rfd;
	GThread *reader;
	GByteArray *got;      /* every byte the device was given */
} TDev;

static gpointer reader_main(gpointer opaque)
{
	TDev *d = opaque;
	guint8 buf[65536];

	for (;;) {
		ssize_t n = read(d->rfd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return NULL;
		g_byte_array_append(d->got, buf, (guint)n);
		if (d->slow_us)
			g_usleep(d->slow_us);
	}
}

/* RESUMING hands out a fresh write end; leaving it (the engine closed the write end
 * first) waits for the reader to see the end. */
static gboolean tdev_set_state(gpointer opaque, MigDevState st, int *fd, GError **err)
{
	TDev *d = opaque;
	int p[2];

	if (d->reader) {
		g_thread_join(d->reader);
		close(d->rfd);
		d->reader = NULL;
	}
	if (st != MIG_DEV_RESUMING)
		return TRUE;
	if (d->use_pipe)
		g_assert_cmpint(pipe2(p, O_CLOEXEC), ==, 0);
	else
		g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p), ==, 0);
	d->rfd = p[0];
	*fd = p[1];
	g_byte_array_set_size(d->got, 0);
	d->reader = g_thread_new("test-dev", reader_main, d);
	return TRUE;
}

static gboolean tdev_data_size(gpointer opaque, guint64 *bytes, GError **err)
{
	*bytes = 0;
	return TRUE;
}

static const MigDeviceOps tdev_ops = { .set_state = tdev_set_state, .data_size = tdev_data_size };

/* A destination with ndev devices, past its setup frame. */
typedef struct Rx {
	MigSession *s;
	TDev dev[NDEV_MAX];
	guint ndev;
	guint64 cap;
	GByteArray *want[NDEV_MAX];   /* each device's whole state, in order */
	guint64 nchunks[NDEV_MAX];
} Rx;

static void rx_init(Rx *r, guint ndev, guint64 max_queued)
{
	g_autoptr(GError) err = NULL;
	g_autoptr(GByteArray) setup = g_byte_array_new();
	gsize off = 0;

	memset(r, 0, sizeof(*r));
	r->ndev = ndev;
	r->s = mig_session_new("dev-reorder");
	for (guint i = 0; i < ndev; i++) {
		TDev *d = &r->dev[i];

		g_snprintf(d->id, sizeof(d->id), "dev%u", i);
		d->use_pipe = i % 2 == 0;
		d->rfd = -1;
		d->got = g_byte_array_new();
		r->want[i] = g_byte_array_new();
		g_assert_true(mig_session_add_device(r->s, d->id, &tdev_ops, d, &err));
	}
	r->s->params.x_device_max_queued = max_queued;
	test_dst_new(r->s);
	/* the lane's chunks come on multifd channels (these tests' take_chunk): DEV_END
	 * waits for them only when the destination has some */
	r->s->dst->mf_expected = 1;
	r->cap = MAX(max_queued, 2ull * MIG_DEV_CHUNK);
	mig_dev_setup_append(r->s, setup);
	g_assert_true(mig_dev_dst_setup(r->s, setup->data, setup->len, &off, &err));
	g_assert_no_error(err);
	g_assert_cmpuint(off, ==, setup->len);
}

static void rx_free(Rx *r)
{
	mig_session_free(r->s);
	for (guint i = 0; i < r->ndev; i++) {
		g_assert_null(r->dev[i].reader);
		g_byte_array_free(r->dev[i].got, TRUE);
		g_byte_array_free(r->want[i], TRUE);
	}
}

/* The contents of a chunk: different for every device, sequence and offset. */
static guint8 chunk_byte(guint dev, guint64 seq, gsize i)
{
	return (guint8)(dev * 131 + seq * 17 + i * 7 + i / 251);
}

/* Writes the MF_DEV frame of chunk (dev, seq) of len state bytes on fd, and records
 * the bytes in the device's expected state when it is the next one in sequence
 * (chunks are made in sequence order by every caller). */
static void send_chunk(Rx *r, int fd, guint dev, guint64 seq, gsize len)
{
	g_autofree guint8 *data = g_malloc(len);
	guint8 hdr[MIG_DEV_HDR_LEN];
	struct iovec iov[2] = { { hdr, sizeof(hdr) }, { data, len } };

	mig_put_head16(hdr, dev, MIG_DEV_F_STOP_COPY, seq);
	for (gsize i = 0; i < len; i++)
		data[i] = chunk_byte(dev, seq, i);
	g_assert_cmpint(mig_frame_send(fd, MIG_F_MF_DEV, 0, iov, 2), ==, 0);
}

/* What a multifd receiver does with the next frame on fd. It may wait for room in
 * the queue: callers on the test's own thread use take_chunk_bounded. */
static gboolean take_chunk(Rx *r, int fd, GError **err)
{
	MigFrameHdr h;

	g_assert_cmpint(mig_frame_recv_hdr(fd, &h, MIG_FRAME_MAX_LEN), ==, 0);
	g_assert_cmpuint(h.type, ==, MIG_F_MF_DEV);
	return mig_dev_dst_chunk_mf(r->s, fd, h.len, err);
}

/* A call into the queue on its own thread, with its answer and error. */
typedef struct QCall {
	Rx *r;
	int fd;
	gboolean ok;
	GError *err;
} QCall;

static gpointer take_main(gpointer opaque)
{
	QCall *q = opaque;

	q->ok = take_chunk(q->r, q->fd, &q->err);
	return NULL;
}

/* take_chunk, failing the test if it does not return within BOUNDED_MS: a chunk that
 * never fits (held bytes never given to their device) must not hang the test. */
static gboolean take_chunk_bounded(Rx *r, int fd, GError **err)
{
	QCall q = { r, fd, FALSE, NULL };

	bounded_call_join(bounded_call_start("take-chunk", take_main, &q), "taking a device chunk");
	if (q.err)
		g_propagate_error(err, q.err);
	return q.ok;
}

static void plan_chunk(Rx *r, guint dev, gsize len)
{
	guint64 seq = r->nchunks[dev]++;

	for (gsize i = 0; i < len; i++) {
		guint8 b = chunk_byte(dev, seq, i);

		g_byte_array_append(r->want[dev], &b, 1);
	}
}

static gpointer end_main(gpointer opaque)
{
	QCall *q = opaque;
	Rx *r = q->r;
	g_autoptr(GByteArray) p = g_byte_array_new();
	guint8 n[4];

	mig_put_be32(n, r->ndev);
	g_byte_array_append(p, n, sizeof(n));
	for (guint i = 0; i < r->ndev; i++) {
		guint8 v[16];

		mig_put_be64(v, r->nchunks[i]);
		mig_put_be64(v + 8, r->want[i]->len);
		g_byte_array_append(p, v, sizeof(v));
	}
	q->ok = mig_dev_dst_end(r->s, p->data, p->len, &q->err);
	return NULL;
}

/* DEV_END with the counts the source would send. The engine waits up to minutes for
 * the loads to finish; the test fails within BOUNDED_MS instead. */
static gboolean end_lane(Rx *r, GError **err)
{
	QCall q = { r, -1, FALSE, NULL };

	bounded_call_join(bounded_call_start("dev-end", end_main, &q), "DEV_END waiting for the loads");
	if (q.err)
		g_propagate_error(err, q.err);
	return q.ok;
}

static void check_delivered(Rx *r)
{
	for (guint i = 0; i < r->ndev; i++) {
		g_assert_cmpuint(r->dev[i].got->len, ==, r->want[i]->len);
		g_assert_true(memcmp(r->dev[i].got->data, r->want[i]->data, r->want[i]->len) == 0);
	}
	g_assert_cmpuint(mig_dev_dst_held(r->s), ==, 0);
	g_assert_cmpuint(mig_dev_dst_queued_peak(r->s), <=, r->cap);
}

typedef struct Chunk {
	guint dev;
	guint64 seq;
	gsize len;
} Chunk;

typedef struct HeldWant {
	Rx *r;
	guint64 bytes;
} HeldWant;

static gboolean held_is(HeldWant *w) { return mig_dev_dst_held(w->r->s) == w->bytes; }

/* Delivers the chunks in the order given, one channel, checking after each that the
 * queue holds exactly the chunks still waiting for an earlier one (those in order go
 * to their device, which reads them at once). */
static void run_order(const Chunk *c, guint n, guint ndev, const guint *order)
{
	Rx r;
	int sv[2];
	gboolean arrived[64] = { FALSE };
	g_autoptr(GError) err = NULL;

	g_assert_cmpuint(n, <=, G_N_ELEMENTS(arrived));
	rx_init(&r, ndev, 0);
	for (guint i = 0; i < n; i++)
		plan_chunk(&r, c[i].dev, c[i].len);
	g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), ==, 0);
	for (guint k = 0; k < n; k++) {
		const Chunk *ck = &c[order[k]];
		HeldWant w = { &r, 0 };

		send_chunk(&r, sv[0], ck->dev, ck->seq, ck->len);
		g_assert_true(take_chunk_bounded(&r, sv[1], &err));
		g_assert_no_error(err);
		arrived[order[k]] = TRUE;
		/* waiting: every arrived chunk with an earlier one of its device missing */
		for (guint i = 0; i < n; i++) {
			gboolean gap = FALSE;

			for (guint j = 0; j < n && arrived[i]; j++)
				gap |= c[j].dev == c[i].dev && c[j].seq < c[i].seq && !arrived[j];
			if (arrived[i] && gap)
				w.bytes += c[i].len;
		}
		bounded_wait(held_is, &w, "the queue holding the out-of-order chunks only");
	}
	g_assert_true(end_lane(&r, &err));
	g_assert_no_error(err);
	check_delivered(&r);
	close(sv[0]);
	close(sv[1]);
	rx_free(&r);
}

/* Heap's algorithm: calls run_order for every permutation of order[0..k). */
static guint permute(const Chunk *c, guint n, guint ndev, guint *order, guint k)
{
	guint runs = 0;

	if (k == 1) {
		run_order(c, n, ndev, order);
		return 1;
	}
	for (guint i = 0; i < k; i++) {
		guint j = k % 2 ? 0 : i, t;

		runs += permute(c, n, ndev, order, k - 1);
		if (i + 1 == k)
			break;
		t = order[j];
		order[j] = order[k - 1];
		order[k - 1] = t;
	}
	return runs;
}

/* Five chunks of two devices (one spliced, one copied), of unequal sizes: all 120
 * arrival orders. */
static void test_every_order(void)
{
	static const Chunk c[] = {
		{ 0, 0, 3000 }, { 0, 1, 17 }, { 0, 2, 70000 }, { 1, 0, 5000 }, { 1, 1, 1 },
	};
	guint order[G_N_ELEMENTS(c)];

	for (guint i = 0; i < G_N_ELEMENTS(c); i++)
		order[i] = i;
	g_assert_cmpuint(permute(c, G_N_ELEMENTS(c), 2, order, G_N_ELEMENTS(c)), ==, 120);
}

static void shuffle(GRand *rnd, guint *v, guint n)
{
	for (guint i = n; i > 1; i--) {
		guint j = (guint)g_rand_int_range(rnd, 0, (gint32)i), t = v[i - 1];

		v[i - 1] = v[j];
		v[j] = t;
	}
}

/* Four devices with up to ten chunks each, 40 seeded random arrival orders. */
static void test_random_orders(void)
{
	GRand *rnd = g_rand_new_with_seed(0x13);

	for (guint run = 0; run < 40; run++) {
		Chunk c[40];
		guint order[40], n = 0;

		for (guint d = 0; d < NDEV_MAX; d++) {
			guint k = (guint)g_rand_int_range(rnd, 1, 11);

			for (guint s = 0; s < k; s++)
				c[n++] = (Chunk){ d, s, (gsize)g_rand_int_range(rnd, 1, 20000) };
		}
		for (guint i = 0; i < n; i++)
			order[i] = i;
		shuffle(rnd, order, n);
		run_order(c, n, NDEV_MAX, order);
	}
	g_rand_free(rnd);
}

typedef struct Chan {
	Rx *r;
	int tx, rx;
	GArray *chunks;       /* Chunk, in the order the source handed them to this channel */
	GRand *rnd;
	char *error;
} Chan;

static gpointer chan_send(gpointer opaque)
{
	Chan *ch = opaque;

	for (guint i = 0; i < ch->chunks->len; i++) {
		const Chunk *c = &g_array_index(ch->chunks, Chunk, i);

		send_chunk(ch->r, ch->tx, c->dev, c->seq, c->len);
	}
	return NULL;
}

/* The channel's receiver, with a random pause before each chunk so that the
 * channels overtake each other. */
static gpointer chan_recv(gpointer opaque)
{
	Chan *ch = opaque;

	for (guint i = 0; i < ch->chunks->len; i++) {
		g_autoptr(GError) err = NULL;

		g_usleep((gulong)g_rand_int_range(ch->rnd, 0, 3000));
		if (!take_chunk(ch->r, ch->rx, &err)) {
			ch->error = g_strdup(err->message);
			break;
		}
	}
	return NULL;
}

/* Three devices, one of them slow, 36 chunks of up to a full MIG_DEV_CHUNK, dealt out
 * in a random interleaving over four channels with their own receiver threads, against
 * the smallest queue: no hang, nothing refused, the bound held. */
static void test_channels_bound(void)
{
	enum { NCHAN = 4, NDEV = 3, PER_DEV = 12 };
	GRand *rnd = g_rand_new_with_seed(1313);
	Chan ch[NCHAN];
	BoundedCall *snd[NCHAN], *rcv[NCHAN];
	guint next[NDEV] = { 0 }, left = NDEV * PER_DEV;
	g_autoptr(GError) err = NULL;
	Rx r;

	rx_init(&r, NDEV, 0);
	r.dev[1].slow_us = 200;
	for (guint i = 0; i < NCHAN; i++) {
		int sv[2];

		g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), ==, 0);
		ch[i] = (Chan){ &r, sv[0], sv[1], g_array_new(FALSE, FALSE, sizeof(Chunk)),
				g_rand_new_with_seed(g_rand_int(rnd)), NULL };
	}
	/* the source's order: the devices' chunks interleaved, each device's in sequence */
	while (left) {
		guint d = (guint)g_rand_int_range(rnd, 0, NDEV);
		Chunk c;

		if (next[d] == PER_DEV)
			continue;
		c = (Chunk){ d, next[d]++, (gsize)g_rand_int_range(rnd, 1, MIG_DEV_CHUNK + 1) };
		plan_chunk(&r, d, c.len);
		g_array_append_val(ch[g_rand_int_range(rnd, 0, NCHAN)].chunks, c);
		left--;
	}
	for (guint i = 0; i < NCHAN; i++) {
		snd[i] = bounded_call_start("chan-send", chan_send, &ch[i]);
		rcv[i] = bounded_call_start("chan-recv", chan_recv, &ch[i]);
	}
	for (guint i = 0; i < NCHAN; i++) {
		bounded_call_join(rcv[i], "a channel's receiver");
		bounded_call_join(snd[i], "a channel's sender");
		g_assert_null(ch[i].error);
	}
	g_assert_true(end_lane(&r, &err));
	g_assert_no_error(err);
	check_delivered(&r);
	g_test_message("queue peak %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT " bytes",
		       mig_dev_dst_queued_peak(r.s), r.cap);
	for (guint i = 0; i < NCHAN; i++) {
		close(ch[i].tx);
		close(ch[i].rx);
		g_array_free(ch[i].chunks, TRUE);
		g_rand_free(ch[i].rnd);
	}
	rx_free(&r);
	g_rand_free(rnd);
}

/* Chunks given, in order, to a fresh two-device lane; the last one (or, with
 * at_end, DEV_END after them) must fail with an error containing want. */
static void expect_refused(const Chunk *c, guint n, gboolean at_end, const char *want)
{
	Rx r;
	int sv[2];
	g_autoptr(GError) err = NULL;
	gboolean ok = TRUE;

	rx_init(&r, 2, 0);
	g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), ==, 0);
	for (guint i = 0; i < n && ok; i++) {
		if (c[i].dev < r.ndev && c[i].seq == r.nchunks[c[i].dev])
			plan_chunk(&r, c[i].dev, c[i].len);
		send_chunk(&r, sv[0], c[i].dev, c[i].seq, c[i].len);
		ok = take_chunk_bounded(&r, sv[1], &err);
		g_assert_true(ok || i + 1 == n);
	}
	if (at_end) {
		g_assert_no_error(err);
		ok = end_lane(&r, &err);
	}
	g_assert_false(ok);
	g_assert_nonnull(err);
	if (!strstr(err->message, want))
		g_error("error '%s' does not say '%s'", err->message, want);
	close(sv[0]);
	close(sv[1]);
	rx_free(&r);
}

static void test_refused(void)
{
	static const Chunk twice_waiting[] = { { 0, 2, 10 }, { 0, 2, 10 } };
	static const Chunk twice_loaded[] = { { 1, 0, 10 }, { 1, 1, 10 }, { 1, 0, 10 } };
	static const Chunk unknown[] = { { 0, 0, 10 }, { 5, 0, 10 } };
	static const Chunk beyond[] = { { 0, 0, 10 }, { 0, 1, 10 }, { 0, 3, 10 }, { 1, 0, 10 } };

	expect_refused(twice_waiting, 2, FALSE, "device 'dev0': chunk 2 arrived twice");
	expect_refused(twice_loaded, 3, FALSE, "device 'dev1': chunk 0 arrived twice");
	expect_refused(unknown, 2, FALSE, "multifd: chunk for device 5 of 2");
	expect_refused(beyond, 4, TRUE, "device 'dev0': chunk 3 is beyond the 2 the source sent");
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/dev-reorder/every-order", test_every_order);
	g_test_add_func("/dev-reorder/random-orders", test_random_orders);
	g_test_add_func("/dev-reorder/channels-bound", test_channels_bound);
	g_test_add_func("/dev-reorder/refused", test_refused);
	return g_test_run();
}
