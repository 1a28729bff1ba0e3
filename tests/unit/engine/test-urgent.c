/* The source's urgent lanes (engine/src/urgent.h) over real sockets: a request goes to
 * the lane with the least load, what it has queued plus what its socket still holds
 * (SIOCOUTQ), ties taking turns; every page queued is written once, as a PAGES or
 * ZEROS frame, and stopping does not hang on a lane blocked in a full socket.
 *
 * Each lane's far end is read by a peer thread that can be held back, so the test
 * decides which sockets are full. Unix stream sockets count the bytes not yet read in
 * SIOCOUTQ, which makes a lane's load something the test controls; one case runs over
 * loopback TCP as the engine does. */
#include "bounded.h"
#include "engine/src/urgent.h"
#include "channels/wire.h"
#include "channels/frame.h"
#include "channels/io.h"
#include <arpa/inet.h>
#include <errno.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define NLANE_MAX 4
#define BLOCK 3u          /* the block index the requests name */

typedef struct Got {
	guint64 page;
	gboolean zero;
} Got;

/* The destination's end of one lane. */
typedef struct Peer {
	struct Fx *f;
	int fd;
	int src_fd;           /* the lane's end, handed to the engine */
	GThread *thread;
	GMutex lock;
	GCond cond;
	gboolean held;        /* the peer reads nothing while set */
	GArray *got;          /* Got, in arrival order (under lock) */
	guint64 bytes;        /* frame bytes read, headers included (under lock) */
	char *error;
} Peer;

typedef struct Fx {
	MigSession *s;
	MigRamBlock rb;
	guint n;
	Peer peer[NLANE_MAX];
	MigUrgent *u;
	GMutex lock;
	guint done, failed;   /* the engine's done callbacks, and those with an error */
} Fx;

static guint8 page_byte(guint64 page, gsize i)
{
	return (guint8)(page * 29 + i * 3 + 1);
}

/* Reads and checks frames until the lane closes. */
static gpointer peer_main(gpointer opaque)
{
	Peer *p = opaque;
	gsize ps = p->f->rb.page_size;
	g_autofree guint8 *buf = g_malloc(ps);

	for (;;) {
		MigFrameHdr h;
		guint8 head[MIG_PAGES_HDR_LEN], offb[8];
		guint32 block, count;
		guint64 off;
		Got g;
		int rc;

		g_mutex_lock(&p->lock);
		while (p->held)
			g_cond_wait(&p->cond, &p->lock);
		g_mutex_unlock(&p->lock);
		if (mig_frame_recv_hdr(p->fd, &h, MIG_FRAME_MAX_LEN) < 0)
			return NULL;
		g.zero = h.type == MIG_F_ZEROS;
		if ((h.type != MIG_F_PAGES && h.type != MIG_F_ZEROS) || h.len != 16 + (g.zero ? 0 : ps)) {
			p->error = g_strdup_printf("frame type %u of %u bytes", h.type, h.len);
			return NULL;
		}
		if ((rc = mig_io_read_full(p->fd, head, sizeof(head))) < 0 || (rc = mig_io_read_full(p->fd, offb, 8)) < 0 ||
		    (!g.zero && (rc = mig_io_read_full(p->fd, buf, ps)) < 0)) {
			p->error = g_strdup_printf("frame truncated: %s", g_strerror(-rc));
			return NULL;
		}
		mig_get_pages_hdr(head, &block, &count);
		off = mig_get_be64(offb);
		g.page = off / ps;
		if (block != BLOCK || count != 1 || off % ps) {
			p->error = g_strdup_printf("frame for block %u, %u pages at 0x%" G_GINT64_MODIFIER "x",
						   block, count, off);
			return NULL;
		}
		for (gsize i = 0; !g.zero && i < ps; i++) {
			if (buf[i] != page_byte(g.page, i)) {
				p->error = g_strdup_printf("page %" G_GUINT64_FORMAT " byte %zu is wrong", g.page, i);
				return NULL;
			}
		}
		g_mutex_lock(&p->lock);
		g_array_append_val(p->got, g);
		p->bytes += MIG_FRAME_HDR_LEN + h.len;
		g_cond_broadcast(&p->cond);
		g_mutex_unlock(&p->lock);
	}
}

static void done_cb(gpointer opaque, const GError *err)
{
	Fx *f = opaque;

	g_mutex_lock(&f->lock);
	f->done++;
	f->failed += err != NULL;
	g_mutex_unlock(&f->lock);
}

/* Two connected stream sockets: a socketpair, or a loopback TCP connection. */
static void connect_pair(gboolean tcp, int *a, int *b)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int sv[2], l;

	if (!tcp) {
		g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), ==, 0);
		*a = sv[0];
		*b = sv[1];
		return;
	}
	l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	g_assert_cmpint(l, >=, 0);
	g_assert_cmpint(bind(l, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
	g_assert_cmpint(listen(l, 1), ==, 0);
	g_assert_cmpint(getsockname(l, (struct sockaddr *)&sa, &len), ==, 0);
	*a = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	g_assert_cmpint(connect(*a, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
	*b = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	g_assert_cmpint(*b, >=, 0);
	close(l);
}

/* n lanes over sockets of the given kind, pages of ps bytes (a block the test owns,
 * page p filled by page_byte unless zero), peers held back if held. */
static void fx_init(Fx *f, guint n, gsize ps, guint npages, gboolean tcp, gboolean held)
{
	int fds[NLANE_MAX];

	g_assert_cmpuint(n, <=, NLANE_MAX);
	memset(f, 0, sizeof(*f));
	g_mutex_init(&f->lock);
	f->n = n;
	f->s = mig_session_new("urgent");
	g_strlcpy(f->rb.name, "ram", sizeof(f->rb.name));
	f->rb.page_size = ps;
	f->rb.size = ps * npages;
	f->rb.host = g_malloc(f->rb.size);
	f->rb.fd = -1;
	for (guint64 p = 0; p < npages; p++)
		for (gsize i = 0; i < ps; i++)
			f->rb.host[p * ps + i] = page_byte(p, i);
	for (guint i = 0; i < n; i++) {
		Peer *p = &f->peer[i];

		p->f = f;
		connect_pair(tcp, &p->src_fd, &p->fd);
		fds[i] = p->src_fd;
		g_mutex_init(&p->lock);
		g_cond_init(&p->cond);
		p->held = held;
		p->got = g_array_new(FALSE, FALSE, sizeof(Got));
		p->thread = g_thread_new("peer", peer_main, p);
	}
	f->u = mig_urgent_new(f->s, fds, n, 0, done_cb, f);
}

static void hold(Peer *p, gboolean held)
{
	g_mutex_lock(&p->lock);
	p->held = held;
	g_cond_broadcast(&p->cond);
	g_mutex_unlock(&p->lock);
}

static void fx_free(Fx *f)
{
	mig_urgent_free(f->u);
	for (guint i = 0; i < f->n; i++) {
		Peer *p = &f->peer[i];

		hold(p, FALSE);
		close(p->src_fd);
		g_thread_join(p->thread);
		g_free(p->error);
		close(p->fd);
		g_array_free(p->got, TRUE);
		g_mutex_clear(&p->lock);
		g_cond_clear(&p->cond);
	}
	mig_session_free(f->s);
	g_free(f->rb.host);
	g_mutex_clear(&f->lock);
}

static void queue(Fx *f, guint64 page)
{
	g_assert_cmpint(mig_urgent_queue(f->u, BLOCK, &f->rb, page), ==, 1);
}

static guint done_count(Fx *f)
{
	guint n;

	g_mutex_lock(&f->lock);
	n = f->done;
	g_mutex_unlock(&f->lock);
	return n;
}

static guint64 outq(int fd)
{
	int v = -1;

	g_assert_cmpint(ioctl(fd, SIOCOUTQ, &v), ==, 0);
	return (guint64)v;
}

static guint got_count(Peer *p)
{
	guint n;

	g_mutex_lock(&p->lock);
	n = p->got->len;
	g_mutex_unlock(&p->lock);
	return n;
}

typedef struct Want {
	Fx *f;
	guint lane;
	guint64 n;
} Want;

static gboolean done_is(Want *w) { return done_count(w->f) == w->n; }
/* The peer read n frames and the lane's socket holds nothing more. */
static gboolean drained(Want *w)
{
	return got_count(&w->f->peer[w->lane]) == w->n && outq(w->f->peer[w->lane].src_fd) == 0;
}
static gboolean outq_at_least(Want *w) { return outq(w->f->peer[w->lane].src_fd) >= w->n; }

static void wait_done(Fx *f, guint n)
{
	Want w = { f, 0, n };

	bounded_wait(done_is, &w, "the lanes reporting their pages sent");
}

/* Which pages each lane carried so far, for a failure message. */
static char *lanes_str(Fx *f)
{
	GString *out = g_string_new(NULL);

	for (guint l = 0; l < f->n; l++) {
		Peer *p = &f->peer[l];

		g_string_append_printf(out, "%slane %u:", l ? "; " : "", l);
		g_mutex_lock(&p->lock);
		for (guint i = 0; i < p->got->len; i++)
			g_string_append_printf(out, " %" G_GUINT64_FORMAT, g_array_index(p->got, Got, i).page);
		g_mutex_unlock(&p->lock);
		g_string_append_printf(out, " (%" G_GUINT64_FORMAT " bytes unread)", outq(p->src_fd));
	}
	return g_string_free(out, FALSE);
}

static void wait_drained(Fx *f, guint lane, guint frames)
{
	Want w = { f, lane, frames };

	if (!bounded_poll((BoundedPred)drained, &w, BOUNDED_MS))
		g_error("lane %u: %u frames read and its socket empty still not true after %d ms; %s", lane, frames,
			BOUNDED_MS, lanes_str(f));
}

/* The pages lane l's peer got, in order, must be want[0..n). */
static void check_lane(Fx *f, guint l, const guint64 *want, guint n)
{
	Peer *p = &f->peer[l];

	g_mutex_lock(&p->lock);
	g_assert_null(p->error);
	g_assert_cmpuint(p->got->len, ==, n);
	for (guint i = 0; i < n; i++)
		g_assert_cmpuint(g_array_index(p->got, Got, i).page, ==, want[i]);
	g_mutex_unlock(&p->lock);
	g_assert_cmpuint(f->s->stats.x_urgent_lane_requests[l], ==, n);
}

/* Idle lanes all tie: request k goes to lane k mod n. */
static void test_ties_rotate(void)
{
	Fx f;
	guint n = 3;

	fx_init(&f, n, 4096, 9, FALSE, FALSE);
	for (guint k = 0; k < 9; k++) {
		queue(&f, k);
		wait_done(&f, k + 1);
		for (guint l = 0; l < n; l++)
			wait_drained(&f, l, (k + n - l) / n);
	}
	for (guint l = 0; l < n; l++) {
		guint64 want[3] = { l, l + n, l + 2 * n };

		check_lane(&f, l, want, 3);
	}
	fx_free(&f);
}

/* Unread bytes are load: with lanes 0 and 2 full of unread data, requests go to lane
 * 1 once its peer read it empty, whatever the turn. */
static void test_least_unacked(void)
{
	Fx f;
	static const guint64 lane0[] = { 0 }, lane1[] = { 1, 3, 4 }, lane2[] = { 2 };

	fx_init(&f, 3, 4096, 5, FALSE, TRUE);
	for (guint k = 0; k < 3; k++)
		queue(&f, k);
	wait_done(&f, 3);
	hold(&f.peer[1], FALSE);
	wait_drained(&f, 1, 1);
	queue(&f, 3);                 /* lane 0's turn */
	wait_drained(&f, 1, 2);
	queue(&f, 4);                 /* lane 2's turn */
	wait_drained(&f, 1, 3);
	hold(&f.peer[0], FALSE);
	hold(&f.peer[2], FALSE);
	wait_drained(&f, 0, 1);
	wait_drained(&f, 2, 1);
	wait_done(&f, 5);
	check_lane(&f, 0, lane0, 1);
	check_lane(&f, 1, lane1, 3);
	check_lane(&f, 2, lane2, 1);
	fx_free(&f);
}

/* Queued bytes are load too. Pages of 256 KiB (too big to write inline) over two
 * lanes whose peers read nothing; lane 1's socket takes only a few KiB. Page 0 blocks
 * lane 0 with ~200 KiB in its socket, page 1 lane 1 with a few. Page 2 goes to lane 1,
 * the smaller socket; page 3 must then go to lane 0: lane 1 has less in its socket
 * but one page more queued. */
static void test_least_queued(void)
{
	Fx f;
	gsize ps = 256u << 10;
	int tiny = 1;
	static const guint64 lane0[] = { 0, 3 }, lane1[] = { 1, 2 };
	Want full0 = { &f, 0, 64u << 10 }, full1 = { &f, 1, 1 };

	fx_init(&f, 2, ps, 4, FALSE, TRUE);
	g_assert_cmpint(setsockopt(f.peer[1].src_fd, SOL_SOCKET, SO_SNDBUF, &tiny, sizeof(tiny)), ==, 0);
	queue(&f, 0);
	queue(&f, 1);
	/* both writers blocked in their full sockets */
	bounded_wait(outq_at_least, &full0, "lane 0's socket filling");
	bounded_wait(outq_at_least, &full1, "lane 1's socket filling");
	g_test_message("lane 0 holds %" G_GUINT64_FORMAT " bytes unread, lane 1 %" G_GUINT64_FORMAT,
		       outq(f.peer[0].src_fd), outq(f.peer[1].src_fd));
	g_assert_cmpuint(outq(f.peer[0].src_fd), >, outq(f.peer[1].src_fd) + (32u << 10));
	queue(&f, 2);
	queue(&f, 3);
	g_assert_cmpuint(done_count(&f), ==, 0);
	hold(&f.peer[0], FALSE);
	hold(&f.peer[1], FALSE);
	wait_done(&f, 4);
	wait_drained(&f, 0, 2);
	wait_drained(&f, 1, 2);
	check_lane(&f, 0, lane0, 2);
	check_lane(&f, 1, lane1, 2);
	fx_free(&f);
}

static gboolean nothing_in_flight(Fx *f) { return mig_urgent_in_flight(f->u) == 0; }

static gboolean all_read(Fx *f)
{
	guint n = 0;

	for (guint l = 0; l < f->n; l++)
		n += got_count(&f->peer[l]);
	return n == done_count(f);
}

/* Over loopback TCP, many requests with the peers reading: every page queued arrives
 * once, zero pages as ZEROS, and the byte counts agree on both ends. */
static void test_each_once_tcp(void)
{
	enum { N = 400 };
	Fx f;
	guint seen[N] = { 0 };
	guint64 bytes = 0;
	guint frames = 0;

	fx_init(&f, 3, 4096, N, TRUE, FALSE);
	for (guint p = 0; p < N; p += 7)
		memset(f.rb.host + (gsize)p * 4096, 0, 4096);
	for (guint p = 0; p < N; p++)
		queue(&f, p);
	wait_done(&f, N);
	g_assert_cmpuint(f.failed, ==, 0);
	bounded_wait(nothing_in_flight, &f, "the lanes' sockets acknowledged");
	bounded_wait(all_read, &f, "the peers reading every frame");
	for (guint l = 0; l < f.n; l++) {
		Peer *p = &f.peer[l];

		g_mutex_lock(&p->lock);
		g_assert_null(p->error);
		for (guint i = 0; i < p->got->len; i++) {
			Got *g = &g_array_index(p->got, Got, i);

			g_assert_cmpuint(g->page, <, N);
			seen[g->page]++;
			g_assert_cmpint(g->zero, ==, g->page % 7 == 0);
		}
		frames += p->got->len;
		bytes += p->bytes;
		g_assert_cmpuint(f.s->stats.x_urgent_lane_requests[l], ==, p->got->len);
		g_mutex_unlock(&p->lock);
	}
	g_assert_cmpuint(frames, ==, N);
	for (guint p = 0; p < N; p++)
		g_assert_cmpuint(seen[p], ==, 1);
	g_assert_cmpuint(mig_urgent_bytes(f.u), ==, bytes);
	g_assert_cmpuint(f.s->stats.postcopy_bytes, ==, bytes);
	fx_free(&f);
}

static gpointer stop_main(gpointer u)
{
	mig_urgent_stop(u);
	return NULL;
}

/* Stopping while a lane is blocked in a full socket with more queued behind: the
 * write fails and is reported, the rest is dropped, and stop returns. */
static void test_stop_blocked(void)
{
	Fx f;
	Want full = { &f, 0, 64u << 10 };

	fx_init(&f, 1, 256u << 10, 3, FALSE, TRUE);
	for (guint p = 0; p < 3; p++)
		queue(&f, p);
	bounded_wait(outq_at_least, &full, "the lane's socket filling");
	bounded_call_join(bounded_call_start("stop", stop_main, f.u), "stopping a blocked lane");
	g_assert_cmpuint(done_count(&f), ==, 1);
	g_assert_cmpuint(f.failed, ==, 1);
	g_assert_cmpuint(mig_urgent_bytes(f.u), ==, 0);
	fx_free(&f);
}

/* A page asked for again while it is still queued is not queued again: a destination
 * repeating one request cannot grow the source. One lane, its peer reading nothing and
 * its socket tiny: page 0 holds the sender in its write, page 1 waits in the queue and
 * 100000 more requests for it add nothing; released, page 1 goes out once. */
static void test_repeat_not_queued(void)
{
	Fx f;
	int tiny = 1;
	static const guint64 want[] = { 0, 1 };
	Want full = { &f, 0, 1 };

	fx_init(&f, 1, 256u << 10, 2, FALSE, TRUE);
	g_assert_cmpint(setsockopt(f.peer[0].src_fd, SOL_SOCKET, SO_SNDBUF, &tiny, sizeof(tiny)), ==, 0);
	queue(&f, 0);
	bounded_wait(outq_at_least, &full, "the sender blocking in its full socket");
	queue(&f, 1);
	for (guint k = 0; k < 100000; k++)
		g_assert_cmpint(mig_urgent_queue(f.u, BLOCK, &f.rb, 1), ==, 0);
	hold(&f.peer[0], FALSE);
	wait_done(&f, 2);
	wait_drained(&f, 0, 2);
	check_lane(&f, 0, want, 2);
	/* sent, so no longer pending: a new request queues it again */
	queue(&f, 1);
	wait_done(&f, 3);
	fx_free(&f);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/urgent/ties-rotate", test_ties_rotate);
	g_test_add_func("/urgent/least-unacked", test_least_unacked);
	g_test_add_func("/urgent/least-queued", test_least_queued);
	g_test_add_func("/urgent/each-once-tcp", test_each_once_tcp);
	g_test_add_func("/urgent/stop-blocked", test_stop_blocked);
	g_test_add_func("/urgent/repeat-not-queued", test_repeat_not_queued);
	return g_test_run();
}
