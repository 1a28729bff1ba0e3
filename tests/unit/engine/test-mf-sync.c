/* The destination's multifd sync barrier (engine/dst/multifd.h), driven as the source
 * and the main channel's loader would drive it: real receiver threads reading frames
 * from socketpairs into a RAM block, the test writing SYNC and page frames on the other
 * ends and calling mig_mf_dst_barrier() where the loader gets PASS(n).
 *
 * A receiver that read SYNC(n) must not read on before PASS(n) and every channel's
 * SYNC(n): otherwise a page's copy of pass n + 1 on one channel can land before the
 * copy of pass n still on its way on another, and the older one wins. */
#include "bounded.h"
#include "dst-fixture.h"
#include "engine/bitmap.h"
#include "engine/dst/multifd.h"
#include "channels/frame.h"
#include "channels/wire.h"
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAXCHAN 8
#define NPAGES 64
#define QUIET_MS 50   /* how long a parked receiver is watched for reading on */

typedef struct Fx {
	MigSession *s;
	MigRamBlock *rb;
	guint n;
	int tx[MAXCHAN];      /* the source's ends */
	int rx[MAXCHAN];      /* the receivers' ends, the engine's once added */
} Fx;

/* What the loader does on the setup frame, for n channels: the received map, then
 * the receivers may go. */
static void fx_init(Fx *f, guint n)
{
	g_autoptr(GError) err = NULL;
	MigSession *s;

	g_assert_cmpuint(n, <=, MAXCHAN);
	memset(f, 0, sizeof(*f));
	f->n = n;
	f->s = s = mig_session_new("mf-sync");
	f->rb = mig_ram_block_new("ram", NPAGES * (gsize)sysconf(_SC_PAGESIZE), MIG_MEM_ANON, 0, &err);
	g_assert_no_error(err);
	mig_session_add_ram(s, f->rb);
	test_dst_new(s);
	mig_dst_received_new(s);
	s->dst->mf_expected = n;
	for (guint i = 0; i < n; i++) {
		int sv[2];

		g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), ==, 0);
		f->tx[i] = sv[0];
		f->rx[i] = sv[1];
		mig_mf_dst_add(s, i, sv[1]);
	}
	g_mutex_lock(&s->dst->mf_lock);
	s->dst->mf_setup_done = TRUE;
	g_cond_broadcast(&s->dst->mf_cond);
	g_mutex_unlock(&s->dst->mf_lock);
}

static gpointer join_main(gpointer s)
{
	mig_mf_dst_join(s);
	return NULL;
}

/* Stops and joins the receivers, which must not hang. */
static void fx_stop(Fx *f)
{
	mig_mf_dst_abort(f->s);
	bounded_call_join(bounded_call_start("mf-join", join_main, f->s), "joining the receivers");
}

static void fx_free(Fx *f)
{
	fx_stop(f);
	for (guint i = 0; i < f->n; i++)
		close(f->tx[i]);
	mig_session_free(f->s);
	mig_ram_block_free(f->rb);
}

/* One MF_PAGES frame: page filled with byte v. */
static void send_page(Fx *f, guint ch, guint page, guint8 v)
{
	gsize ps = f->rb->page_size;
	g_autofree guint8 *data = g_malloc(ps);
	MigMfHdr h = { .nnormal = 1 };
	guint8 hdr[MIG_MF_HDR_LEN], off[8];
	struct iovec iov[3] = { { hdr, sizeof(hdr) }, { off, sizeof(off) }, { data, ps } };

	mig_mf_hdr_pack(&h, hdr);
	mig_put_be64(off, (guint64)page * ps);
	memset(data, v, ps);
	g_assert_cmpint(mig_frame_send(f->tx[ch], MIG_F_MF_PAGES, 0, iov, 3), ==, 0);
}

static void send_sync(Fx *f, guint ch, guint64 pass)
{
	guint8 be[8];
	struct iovec iov = { be, sizeof(be) };

	mig_put_be64(be, pass);

	g_assert_cmpint(mig_frame_send(f->tx[ch], MIG_F_MF_SYNC, 0, &iov, 1), ==, 0);
}

/* The first byte of a page (a receiver may be writing it). */
static guint8 page_byte(Fx *f, guint page)
{
	return __atomic_load_n(f->rb->host + (gsize)page * f->rb->page_size, __ATOMIC_ACQUIRE);
}

/* Bytes the receiver of channel ch has not read yet. */
static int unread(Fx *f, guint ch)
{
	int n = -1;

	g_assert_cmpint(ioctl(f->rx[ch], FIONREAD, &n), ==, 0);
	return n;
}

static guint synced(Fx *f)
{
	guint n;

	g_mutex_lock(&f->s->dst->mf_lock);
	n = f->s->dst->mf_synced;
	g_mutex_unlock(&f->s->dst->mf_lock);
	return n;
}

typedef struct Want {
	Fx *f;
	guint value;
} Want;

static gboolean synced_is(Want *w) { return synced(w->f) == w->value; }

typedef struct PageWant {
	Fx *f;
	guint page;
	guint8 v;
} PageWant;

static gboolean page_is(PageWant *w) { return page_byte(w->f, w->page) == w->v; }

static void wait_synced(Fx *f, guint n)
{
	Want w = { f, n };

	bounded_wait(synced_is, &w, "channels parked at the sync point");
}

static void wait_page(Fx *f, guint page, guint8 v)
{
	PageWant w = { f, page, v };

	bounded_wait(page_is, &w, "a released receiver writing its page");
}

typedef struct Left {
	Fx *f;
	guint ch;
	int left;
} Left;

static gboolean unread_at_most(Left *w) { return unread(w->f, w->ch) <= w->left; }

static int page_frame_len(Fx *f) { return (int)(MIG_FRAME_HDR_LEN + MIG_MF_HDR_LEN + 8 + f->rb->page_size); }
#define SYNC_FRAME_LEN ((int)MIG_FRAME_HDR_LEN + 8)

/* Waits until channel ch's receiver read all but left bytes, then watches that it
 * reads no further: it is parked. */
static void wait_parked(Fx *f, guint ch, int left)
{
	Left w = { f, ch, left };

	bounded_wait(unread_at_most, &w, "a receiver reading up to its sync point");
	g_usleep(QUIET_MS * 1000);
	g_assert_cmpint(unread(f, ch), ==, left);
}

typedef struct Loader {
	Fx *f;
	guint64 first, last;
} Loader;

/* The main channel's loader: PASS(first) .. PASS(last) in turn. */
static gpointer loader_main(gpointer opaque)
{
	Loader *l = opaque;

	for (guint64 p = l->first; p <= l->last; p++) {
		g_autoptr(GError) err = NULL;

		if (!mig_mf_dst_barrier(l->f->s, p, &err))
			return g_strdup(err->message);
	}
	return NULL;
}

/* Each channel sends SYNC(n) and then a page of pass n + 1. Pass 1: PASS(1) is in
 * first and every channel but the last syncs; pass 2: every channel syncs and PASS(2)
 * comes last. In neither may a page land (nor be read) before both are complete. */
static void test_no_early_release(void)
{
	Fx f;
	guint n = 4;
	Loader l = { &f, 1, 1 };
	BoundedCall *c;
	g_autoptr(GError) err = NULL;

	fx_init(&f, n);
	c = bounded_call_start("loader", loader_main, &l);
	for (guint i = 0; i + 1 < n; i++) {
		send_sync(&f, i, 1);
		send_page(&f, i, i, 0x20 + i);
	}
	for (guint i = 0; i + 1 < n; i++)
		wait_parked(&f, i, page_frame_len(&f));
	g_assert_false(bounded_call_done_within(c, 0));
	for (guint i = 0; i + 1 < n; i++)
		g_assert_cmpint(page_byte(&f, i), ==, 0);
	send_sync(&f, n - 1, 1);
	g_assert_null(bounded_call_join(c, "the loader's barrier once every channel synced"));
	for (guint i = 0; i + 1 < n; i++)
		wait_page(&f, i, 0x20 + i);

	for (guint i = 0; i < n; i++) {
		send_sync(&f, i, 2);
		send_page(&f, i, i, 0x40 + i);
	}
	for (guint i = 0; i < n; i++)
		wait_parked(&f, i, page_frame_len(&f));
	for (guint i = 0; i < n; i++)
		g_assert_cmpint(page_byte(&f, i), ==, i + 1 < n ? 0x20 + i : 0);
	g_assert_true(mig_mf_dst_barrier(f.s, 2, &err));
	g_assert_no_error(err);
	for (guint i = 0; i < n; i++)
		wait_page(&f, i, 0x40 + i);
	g_assert_cmpuint(synced(&f), ==, 0);
	fx_free(&f);
}

/* Many passes, the channels syncing in a random order each time: all park, all go
 * on together once released, and the count starts over every pass. */
static void test_release_together(void)
{
	Fx f;
	guint n = MAXCHAN;
	GRand *rnd = g_rand_new_with_seed(13);

	fx_init(&f, n);
	for (guint64 pass = 1; pass <= 20; pass++) {
		guint order[MAXCHAN];
		g_autoptr(GError) err = NULL;

		for (guint i = 0; i < n; i++)
			order[i] = i;
		for (guint i = n - 1; i > 0; i--) {
			guint j = (guint)g_rand_int_range(rnd, 0, (gint32)i + 1), t = order[i];

			order[i] = order[j];
			order[j] = t;
		}
		for (guint k = 0; k < n; k++) {
			/* the page each channel writes after this sync point */
			send_sync(&f, order[k], pass);
			send_page(&f, order[k], order[k], (guint8)pass);
		}
		wait_synced(&f, n);
		for (guint i = 0; i < n; i++)
			g_assert_cmpint(page_byte(&f, i), ==, (guint8)(pass - 1));
		g_assert_true(mig_mf_dst_barrier(f.s, pass, &err));
		g_assert_no_error(err);
		for (guint i = 0; i < n; i++)
			wait_page(&f, i, (guint8)pass);
	}
	g_rand_free(rnd);
	fx_free(&f);
}

/* One page, copy A in pass 1 on channel 0 (slow), copy B in pass 2 on channel 1: B
 * must be what stays, however late A arrives. */
static void test_older_copy_loses(void)
{
	Fx f;
	guint n = 3, page = 7;
	Loader l = { &f, 1, 2 };
	BoundedCall *c;
	char *failed;

	fx_init(&f, n);
	c = bounded_call_start("loader", loader_main, &l);
	send_sync(&f, 1, 1);
	send_page(&f, 1, page, 0xbb);
	send_sync(&f, 1, 2);
	send_sync(&f, 2, 1);
	send_sync(&f, 2, 2);
	/* (and room for a receiver released too early to write B before A comes) */
	wait_parked(&f, 1, page_frame_len(&f) + SYNC_FRAME_LEN);
	g_assert_cmpint(page_byte(&f, page), ==, 0);
	send_page(&f, 0, page, 0xaa);
	send_sync(&f, 0, 1);
	send_sync(&f, 0, 2);
	failed = bounded_call_join(c, "the loader's barriers");
	g_assert_null(failed);
	wait_page(&f, page, 0xbb);
	/* A's receiver has nothing left to write after its SYNC(1) */
	g_usleep(QUIET_MS * 1000);
	g_assert_cmpint(page_byte(&f, page), ==, 0xbb);
	fx_free(&f);
}

/* Receivers parked at a sync point and a loader waiting at the barrier are woken by
 * an abort (cancel, or another part of the destination failing) or, by_error, by a
 * channel that breaks the protocol (a SYNC for a pass not due) and so fails the
 * migration. The receivers are joined without a further abort. */
static void wake_case(gboolean by_error)
{
	Fx f;
	guint n = 4;
	Loader l = { &f, 1, 1 };
	BoundedCall *c;
	g_autofree char *failed = NULL;

	fx_init(&f, n);
	c = bounded_call_start("loader", loader_main, &l);
	for (guint i = 0; i + 1 < n; i++)
		send_sync(&f, i, 1);
	wait_synced(&f, n - 1);
	g_assert_false(bounded_call_done_within(c, QUIET_MS));
	if (by_error)
		send_sync(&f, n - 1, 3);
	else
		mig_mf_dst_abort(f.s);
	failed = bounded_call_join(c, "the loader's barrier");
	g_assert_nonnull(failed);
	bounded_call_join(bounded_call_start("mf-join", join_main, f.s), "joining the woken receivers");
	if (by_error) {
		g_assert_cmpint(mig_session_status(f.s), ==, MIG_STATUS_FAILED);
		g_mutex_lock(&f.s->lock);
		g_assert_nonnull(strstr(f.s->error, "multifd channel 3: sync for pass 3 while pass 1 is due"));
		g_mutex_unlock(&f.s->lock);
	} else {
		g_assert_nonnull(strstr(failed, "multifd channel failed"));
	}
	fx_free(&f);
}

static void test_quit_wakes(void) { wake_case(FALSE); }
static void test_error_wakes(void) { wake_case(TRUE); }

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/mf-sync/no-early-release", test_no_early_release);
	g_test_add_func("/mf-sync/release-together", test_release_together);
	g_test_add_func("/mf-sync/older-copy-loses", test_older_copy_loses);
	g_test_add_func("/mf-sync/quit-wakes", test_quit_wakes);
	g_test_add_func("/mf-sync/error-wakes", test_error_wakes);
	return g_test_run();
}
