/* Source side of postcopy. After the switchover the guest runs on the destination;
 * every page it faults on is asked for on the return path, and the return-path thread
 * sends it at once: on the preempt channel when there is one, so it never queues
 * behind bulk bytes. Meanwhile the migration thread pushes the remaining pages,
 * continuing right after the last requested page (guests fault near where they
 * faulted before). The source's vCPUs never run again once the destination has. */
#include "engine/src/postcopy.h"
#include "engine/src/devlane.h"
#include "engine/src/breakhuge.h"
#include "engine/src/urgent.h"
#include "engine/src/recover.h"
#include "engine/bitmap.h"
#include "engine/probes.h"
#include "engine/urgency.h"
#include "channels/frame.h"
#include "channels/hello.h"
#include "channels/wire.h"
#include "channels/io.h"
#include <errno.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define DISCARD_RANGES 1024u   /* one process_madvise call takes up to 1024 (discard.h) */

static gboolean test_and_clear(gulong *map, gsize i)
{
	gulong bit = 1ul << (i % MIG_BITS_PER_LONG);

	return (__atomic_fetch_and(&map[i / MIG_BITS_PER_LONG], ~bit, __ATOMIC_ACQ_REL) & bit) != 0;
}

gboolean mig_pc_src_connect_preempt(Src *src, GError **err)
{
	guint n = mig_preempt_channels(src->s, &src->p);

	/* opened after the main channel (and multifd) were accepted, all at once, each
	 * waiting for its reply: identified by its hello, none can be mistaken for or race
	 * the main channel, and all are admitted before the first page is sent */
	if (!n || !mig_chan_batch_join(mig_chan_batch_start(src->s, &src->uri, &src->p, 0, n, src->chan_flags), NULL,
				       src->pre_fds, err))
		return n == 0;
	src->npre = n;
	return TRUE;
}

void mig_pc_src_close_preempt(Src *src)
{
	g_clear_pointer(&src->urgent, mig_urgent_free);
	for (guint i = 0; i < src->npre; i++)
		if (src->pre_fds[i] >= 0)
			mig_io_close(src->pre_fds[i]);
	src->npre = 0;
}

static void rp_signal(Src *src, gboolean *flag, char *error);
static gboolean rp_failed(Src *src, GError **err);

/* A request is done once its page is in its lane's socket (or its lane failed). */
static void urgent_done(gpointer opaque, const GError *err)
{
	Src *src = opaque;

	if (err)
		rp_signal(src, NULL, g_strdup(err->message));
	if (!__atomic_sub_fetch(&src->urgent_pending, 1, __ATOMIC_ACQ_REL))
		rp_signal(src, NULL, NULL);
}

/* *queued: the page went to an urgent lane, which ends the request (urgent_done). */
static gboolean serve_request(Src *src, const guint8 *p, guint32 len, gboolean *queued, GError **err)
{
	guint32 bi, reserved;
	guint64 off;
	SrcBlock *b;
	gsize page;
	gboolean was_dirty;

	if (len != MIG_PAGE_REQ_LEN) {
		g_set_error(err, MIG_ERROR, EPROTO, "page request of %u bytes", len);
		return FALSE;
	}
	mig_get_head16(p, &bi, &reserved, &off);
	if (bi >= src->nblocks || off % src->blocks[bi].rb->page_size || off >= src->blocks[bi].rb->size) {
		g_set_error(err, MIG_ERROR, EPROTO, "page request for block %u offset 0x%" G_GINT64_MODIFIER "x is invalid", bi, off);
		return FALSE;
	}
	b = &src->blocks[bi];
	page = off / b->rb->page_size;
	MIG_PROBE(request_received, bi, off);
	mig_atomic_add(&src->s->stats.postcopy_requests, 1);
	__atomic_store_n(&src->hint[bi], page + 1, __ATOMIC_RELEASE);
	if (!src->npre) {
		gboolean ok;

		/* without preempt the bulk copy, if sent, is already ahead of us on this
		 * socket; if we take the page, END must not overtake our copy of it */
		g_mutex_lock(&src->urgent_lock);
		was_dirty = test_and_clear(b->dirty, page);
		if (was_dirty) {
			MIG_PROBE(page_queued, bi, off);
			MIG_PROBE(page_sent, bi, off);   /* before the write, as on the preempt lane */
		}
		ok = !was_dirty || mig_src_send_pages(src, bi, &page, 1, err);
		g_mutex_unlock(&src->urgent_lock);
		return ok;
	}
	was_dirty = test_and_clear(b->dirty, page);
	if (!was_dirty && mig_bitmap_test(src->bulk_sent[bi], page)) {
		/* bulk wrote all of it already; with little unsent data per bulk socket it is
		 * about to land, and a second copy would only take link time from others */
		mig_atomic_add(&src->s->stats.x_urgent_skipped, 1);
		return TRUE;
	}
	/* a bulk lane half way through this huge page drops the rest when it sees this */
	mig_bitmap_set_atomic(src->urgent_sent[bi], page);
	MIG_PROBE(page_queued, bi, off);
	/* even if bulk sent it already: that copy may sit behind megabytes in the bulk
	 * socket, and the destination drops whichever copy comes second */
	switch (mig_urgent_queue(src->urgent, bi, b->rb, page)) {
	case 1:
		*queued = TRUE;
		break;
	case 0:
		mig_atomic_add(&src->s->stats.x_urgent_skipped, 1);   /* asked again while queued */
		break;
	default:
		g_set_error(err, MIG_ERROR, E2BIG, "the destination has more than %u page requests outstanding",
			    mig_urgent_pending_max());
		return FALSE;
	}
	return TRUE;
}

static void rp_signal(Src *src, gboolean *flag, char *error)
{
	g_mutex_lock(&src->rp_lock);
	if (flag)
		*flag = TRUE;
	if (error && !src->rp_error)
		src->rp_error = error;
	else
		g_free(error);
	g_cond_broadcast(&src->rp_cond);
	g_mutex_unlock(&src->rp_lock);
}

static gboolean rp_take_frame(Src *src);

/* One frame of the return path, read and acted on; FALSE once it said its last
 * (RP_DONE) or failed (rp_error says why). Once GO may have left, a failure also cuts
 * the main channel: mig/src/main may be waiting for room in it (a stopped destination
 * leaves its buffers full) and must go to the pause now, not a send timeout later. */
static gboolean rp_take(Src *src)
{
	gboolean more = rp_take_frame(src);

	if (!more && !src->inline_run && __atomic_load_n(&src->go_sent, __ATOMIC_ACQUIRE) && rp_failed(src, NULL))
		shutdown(src->fd, SHUT_RDWR);
	return more;
}

static gboolean rp_take_frame(Src *src)
{
	guint8 buf[4096];
	g_autoptr(GError) err = NULL;
	MigFrameHdr h;
	int rc = mig_frame_recv_hdr(src->fd, &h, sizeof(buf));

	if (rc == -ETIMEDOUT) {
		/* the destination beats (RP_NOP) at least every quarter of the timeout */
		rp_signal(src, NULL, g_strdup_printf("return path: the destination said nothing for %" G_GUINT64_FORMAT
						     " ms (x-channel-timeout): it stopped or its link went",
						     src->p.x_channel_timeout));
		return FALSE;
	}
	if (rc < 0) {
		rp_signal(src, NULL, g_strdup_printf("return path: %s", rc == -EPIPE ?
			  "the destination closed the connection" : g_strerror(-rc)));
		return FALSE;
	}
	memset(buf, 0, sizeof(buf));
	if (h.len && (rc = mig_io_read_full(src->fd, buf, h.len)) < 0) {
		rp_signal(src, NULL, g_strdup_printf("return path truncated: %s", g_strerror(-rc)));
		return FALSE;
	}
	switch (h.type) {
	case MIG_F_RP_NOP:   /* the heartbeat: that the destination lives is all it says */
		if (h.len) {
			rp_signal(src, NULL, g_strdup_printf("RP_NOP with a payload of %u bytes", h.len));
			return FALSE;
		}
		break;
	case MIG_F_RP_READY:
		if (src->dst_ready) {
			rp_signal(src, NULL, g_strdup("RP_READY sent twice"));
			return FALSE;
		}
		rp_signal(src, &src->dst_ready, NULL);
		break;
	case MIG_F_RP_RUNNING:
		if (!__atomic_load_n(&src->go_sent, __ATOMIC_ACQUIRE)) {
			rp_signal(src, NULL, g_strdup("RP_RUNNING before GO"));
			return FALSE;
		}
		rp_signal(src, &src->dst_running, NULL);
		break;
	case MIG_F_RP_PASS:   /* precopy's; postcopy does not wait for passes */
		break;
	case MIG_F_RP_DEVICES:
		if (!mig_dev_src_loaded(src->dev, buf, h.len, &err)) {
			rp_signal(src, NULL, g_strdup(err->message));
			return FALSE;
		}
		break;
	case MIG_F_RP_DONE:
		if (!src->dst_running) {
			rp_signal(src, NULL, g_strdup("RP_DONE before RP_RUNNING"));
			return FALSE;
		}
		rp_signal(src, &src->dst_done, NULL);
		return FALSE;
	case MIG_F_RP_ERROR: {
		char text[MIG_PEER_TEXT_MAX + 4];

		rp_signal(src, NULL, g_strdup_printf("destination failed: %s", mig_peer_text(buf, h.len, text)));
		return FALSE;
	}
	case MIG_F_RP_REQ_PAGE: {
		gboolean ok, queued = FALSE;

		/* the push pauses while this is non-zero (see push_block) */
		__atomic_add_fetch(&src->urgent_pending, 1, __ATOMIC_ACQ_REL);
		ok = serve_request(src, buf, h.len, &queued, &err);
		if (!queued && !__atomic_sub_fetch(&src->urgent_pending, 1, __ATOMIC_ACQ_REL))
			rp_signal(src, NULL, NULL);
		if (!ok) {
			rp_signal(src, NULL, g_strdup(err->message));
			return FALSE;
		}
		break;
	}
	default:
		rp_signal(src, NULL, g_strdup_printf("unexpected return-path frame type %u", h.type));
		return FALSE;
	}
	return TRUE;
}

static gpointer rp_main(gpointer opaque)
{
	Src *src = opaque;

	mig_thread_set_urgent_for(src->s, (guint)src->p.x_postcopy_rt_priority, "mig/src/return");
	while (rp_take(src))
		;
	return NULL;
}

/* An inline run's return path (no thread): the destination's next frame, read and
 * acted on here; once it said its last, nothing more. */
static void rp_step(Src *src)
{
	if (src->rp_ended)
		return;
	mig_src_feed(src);
	src->rp_ended = !rp_take(src);
}

static gboolean rp_failed(Src *src, GError **err)
{
	gboolean failed;

	g_mutex_lock(&src->rp_lock);
	failed = src->rp_error != NULL;
	if (failed)
		g_set_error(err, MIG_ERROR, EIO, "%s", src->rp_error);
	g_mutex_unlock(&src->rp_lock);
	return failed;
}

/* Waits until *flag, a return-path error, cancel or quit (mig_src_cancel and
 * mig_src_quit wake it), or x-channel-timeout without *flag nor the destination
 * taking in more of the stream (it may still be working through it). */
static gboolean rp_wait(Src *src, gboolean *flag, const char *what, GError **err)
{
	gint64 span = (gint64)src->p.x_channel_timeout * G_TIME_SPAN_MILLISECOND;
	gint64 end = g_get_monotonic_time() + span;
	gboolean ok, timed_out = FALSE;
	int outq = G_MAXINT;

	/* inline: what the return-path thread would have read meanwhile */
	while (src->inline_run && !*flag && !src->rp_ended && !rp_failed(src, NULL))
		rp_step(src);
	g_mutex_lock(&src->rp_lock);
	while (!*flag && !src->rp_error && !mig_src_stopping(src) && !timed_out && !src->rp_ended) {
		gint64 now = g_get_monotonic_time();

		if (mig_src_dst_draining(src, &outq))
			end = now + span;
		/* a look at the socket every 100 ms */
		g_cond_wait_until(&src->rp_cond, &src->rp_lock, MIN(end, now + 100 * G_TIME_SPAN_MILLISECOND));
		timed_out = g_get_monotonic_time() >= end;
	}
	ok = *flag;
	if (ok)
		;
	else if (src->rp_error)
		g_set_error(err, MIG_ERROR, EIO, "%s", src->rp_error);
	else if (mig_src_stopping(src))
		g_set_error(err, MIG_ERROR, ECANCELED, "migration cancelled");
	else if (src->rp_ended)
		g_set_error(err, MIG_ERROR, EPROTO, "no %s from the destination: its return path ended", what);
	else
		g_set_error(err, MIG_ERROR, ETIMEDOUT, "no %s from the destination within %" G_GUINT64_FORMAT
			    " ms (x-channel-timeout)", what, src->p.x_channel_timeout);
	g_mutex_unlock(&src->rp_lock);
	return ok;
}

/* Everything still dirty after the final sync was sent but changed since, or never
 * sent: the destination drops it and will fault on it. */
static gboolean send_discards(Src *src, GError **err)
{
	for (guint bi = 0; bi < src->nblocks; bi++) {
		SrcBlock *b = &src->blocks[bi];
		guint8 ranges[16 * DISCARD_RANGES];
		guint n = 0;
		gsize i = 0;

		for (;;) {
			gsize start = mig_groups_next(b->dirty, b->groups, b->npages, i), end = start;

			while (end < b->npages && mig_bitmap_test(b->dirty, end))
				end++;
			if (start < b->npages) {
				mig_put_be64(ranges + 16 * n, start);
				mig_put_be64(ranges + 16 * n + 8, end - start);
				n++;
			}
			if (n && (n == DISCARD_RANGES || start >= b->npages)) {
				guint8 hdr[MIG_PAGES_HDR_LEN];
				struct iovec iov[2] = { { hdr, sizeof(hdr) }, { ranges, n * 16u } };

				mig_put_pages_hdr(hdr, bi, n);
				if (!mig_src_send_frame(src, MIG_F_PC_DISCARD, iov, 2, err))
					return FALSE;
				n = 0;
			}
			if (start >= b->npages)
				break;
			i = end;
		}
	}
	return TRUE;
}

/* Of every YIELD_WINDOW_US, bulk spends at most YIELD_BUDGET_US waiting for urgent
 * pages (summed over the threads that push). A wait's own bound did not stop a stream
 * of requests from starving the push: with several preempt channels, or a loaded
 * host, one request was nearly always out, every 64 KiB batch waited its 50 ms, the
 * push crawled at ~1.3 MB/s, and the destination came to ask for nearly every page. */
#define YIELD_WINDOW_US 100000
#define YIELD_BUDGET_US 50000

/* The yield budget left in the current window (µs; <= 0: none), a new window begun
 * when the last has passed. Racy between pushing threads by a window's edge at most. */
static gint64 yield_budget(Src *src, gint64 now)
{
	gint64 start = __atomic_load_n(&src->yield_window, __ATOMIC_RELAXED);

	if (now - start >= YIELD_WINDOW_US &&
	    __atomic_compare_exchange_n(&src->yield_window, &start, now, FALSE, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		__atomic_store_n(&src->yield_spent, 0, __ATOMIC_RELAXED);
	return YIELD_BUDGET_US - __atomic_load_n(&src->yield_spent, __ATOMIC_RELAXED);
}

/* Bulk waits while a request is being served and until its page is delivered, so the
 * urgent page has the link (and the CPUs) to itself; within the window's budget, so a
 * stream of requests cannot starve the push. */
static void yield_to_urgent(Src *src)
{
	gint64 t0, end, left;

	if (!src->pre_fd_paced)
		return;
	if (!__atomic_load_n(&src->urgent_pending, __ATOMIC_ACQUIRE) && !mig_urgent_in_flight(src->urgent))
		return;   /* the common case: nothing to wait for, no clock read */
	t0 = g_get_monotonic_time();
	left = yield_budget(src, t0);
	if (left <= 0)
		return;
	end = t0 + left;
	for (;;) {
		if (__atomic_load_n(&src->urgent_pending, __ATOMIC_ACQUIRE)) {
			g_mutex_lock(&src->rp_lock);
			while (__atomic_load_n(&src->urgent_pending, __ATOMIC_ACQUIRE) && !src->rp_error &&
			       g_cond_wait_until(&src->rp_cond, &src->rp_lock, end))
				;
			g_mutex_unlock(&src->rp_lock);
		}
		/* a request is served once its page is in a preempt socket, not on the wire:
		 * a 2 MiB page is still 16.8 ms of a 1 Gbit/s link, which bulk would share */
		if (!mig_urgent_in_flight(src->urgent) || g_get_monotonic_time() >= end || src->rp_error)
			break;
		g_usleep(50);
	}
	__atomic_add_fetch(&src->yield_spent, g_get_monotonic_time() - t0, __ATOMIC_RELAXED);
}

static gboolean yield_for_chunk(gpointer opaque, guint block, gsize page)
{
	Src *src = opaque;

	yield_to_urgent(src);
	return mig_bitmap_test(src->urgent_sent[block], page);
}

/* Huge pages on the main channel, in chunks (break-huge). */
static gboolean push_chunked(Src *src, guint bi, const gsize *pages, guint n, GError **err)
{
	SrcBlock *b = &src->blocks[bi];

	for (guint k = 0; k < n; k++) {
		guint64 bytes = 0;
		int rc;

		if (mig_mem_is_zero(b->rb->host + pages[k] * b->rb->page_size, b->rb->page_size)) {
			if (!mig_src_send_pages(src, bi, &pages[k], 1, err))
				return FALSE;
			mig_bitmap_set_atomic(src->bulk_sent[bi], pages[k]);
			continue;
		}
		g_mutex_lock(&src->wlock);
		rc = mig_huge_send(src->fd, bi, b->rb, pages[k], yield_for_chunk, src, &bytes);
		g_mutex_unlock(&src->wlock);
		if (rc < 0) {
			g_set_error(err, MIG_ERROR, -rc, "sending to destination: %s", g_strerror(-rc));
			return FALSE;
		}
		mig_atomic_add(&src->s->stats.transferred, bytes);
		mig_atomic_add(rc == 1 ? &src->s->stats.x_break_huge_drops : &src->s->stats.normal, 1);
		if (rc == 0)
			mig_bitmap_set_atomic(src->bulk_sent[bi], pages[k]);
	}
	return TRUE;
}

/* Every bulk socket at an equal part of the total rate. */
static void set_bulk_rate(Src *src, guint64 total)
{
	guint nsock = src->mf ? mig_mf_src_channels(src->mf) : 1;
	guint64 rate = MAX(total / nsock, 1);

	setsockopt(src->fd, SOL_SOCKET, SO_MAX_PACING_RATE, &rate, sizeof(rate));
	if (src->mf)
		mig_mf_src_setsockopt(src->mf, SOL_SOCKET, SO_MAX_PACING_RATE, &rate, sizeof(rate));
	mig_atomic_set(&src->s->stats.x_bulk_pacing, rate * nsock);
}

/* No pacing at all (max-postcopy-bandwidth lifted in the middle of postcopy). */
static void unset_bulk_rate(Src *src)
{
	guint64 rate = ~0ull;

	setsockopt(src->fd, SOL_SOCKET, SO_MAX_PACING_RATE, &rate, sizeof(rate));
	if (src->mf)
		mig_mf_src_setsockopt(src->mf, SOL_SOCKET, SO_MAX_PACING_RATE, &rate, sizeof(rate));
	mig_atomic_set(&src->s->stats.x_bulk_pacing, 0);
}

/* With preempt, bulk must not fill the queues an urgent page then waits in: only a
 * little unsent data per bulk socket, and the bulk sockets together paced under what
 * the link has left after the urgent pages (bulkpace.h), so the bottleneck's queue
 * stays near empty. */
static void pace_bulk(Src *src)
{
	MigSession *s = src->s;
	int lowat = 64 << 10;
	guint64 bw = mig_atomic_get(&s->stats.bandwidth);
	guint64 pc_cap = __atomic_load_n(&s->params.max_postcopy_bandwidth, __ATOMIC_RELAXED);

	/* max-postcopy-bandwidth is the user's word for the postcopy phase (QEMU's): a
	 * fixed rate, with or without preempt (without, the requested pages share it) */
	src->pc_cap = pc_cap;
	if (pc_cap)
		set_bulk_rate(src, pc_cap);
	if (!src->npre)
		return;
	src->pre_fd_paced = TRUE;
	src->break_huge = src->p.x_postcopy_preempt_break_huge;
	if (src->break_huge && src->mf)
		mig_mf_src_break_huge(src->mf, yield_for_chunk, src);
	setsockopt(src->fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof(lowat));
	if (src->mf)
		mig_mf_src_setsockopt(src->mf, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof(lowat));
	/* a bandwidth measured under a max-bandwidth cap says nothing about the link, so
	 * nothing to pace against then */
	if (pc_cap || src->bw_capped || !bw || !src->p.x_postcopy_pace)
		return;
	mig_bulk_pace_init(&src->pace, bw, mig_urgent_bytes(src->urgent), g_get_monotonic_time());
	src->pace_adapt = TRUE;
	set_bulk_rate(src, src->pace.rate);
}

/* Bulk's share follows the urgent traffic: called between bulk batches. And
 * max-postcopy-bandwidth applies live, as max-bandwidth does in precopy (QEMU's
 * meaning): a new cap takes over from the next batch on, and lifting it (0) lifts the
 * pacing. */
static void repace_bulk(Src *src)
{
	guint64 cap = __atomic_load_n(&src->s->params.max_postcopy_bandwidth, __ATOMIC_RELAXED);
	gboolean changed;
	guint64 rate;

	if (cap != src->pc_cap) {
		src->pc_cap = cap;
		src->pace_adapt = FALSE;   /* the user's word from now on */
		if (cap)
			set_bulk_rate(src, cap);
		else
			unset_bulk_rate(src);
		mig_log(src->s, MIG_LOG_INFO, "max-postcopy-bandwidth now %" G_GUINT64_FORMAT " B/s%s", cap,
			cap ? "" : " (unpaced)");
		return;
	}
	if (!src->pace_adapt)
		return;
	rate = mig_bulk_pace_update(&src->pace, mig_urgent_bytes(src->urgent), g_get_monotonic_time(), &changed);
	if (changed)
		set_bulk_rate(src, rate);
}

/* The background push: every page still dirty, once, from the hint on. */
static gboolean push_block(Src *src, guint bi, GError **err)
{
	SrcBlock *b = &src->blocks[bi];
	gsize ps = b->rb->page_size;
	/* with preempt, small batches: bulk checks for urgent work every 64 KiB */
	guint max = (guint)MAX(1, MIN(MAX_BATCH_PAGES, (src->pre_fd_paced ? MIG_CHUNK_SIZE : MIG_BATCH_BYTES) / ps));
	gsize pages[MAX_BATCH_PAGES];

	for (;;) {
		gsize from = __atomic_exchange_n(&src->hint[bi], (gsize)-1, __ATOMIC_ACQ_REL);
		gsize i = from == (gsize)-1 ? 0 : from;
		guint n = 0;

		if (from == (gsize)-1)
			i = mig_bitmap_next(b->dirty, b->npages, 0);
		/* wrap once: the hint may point past the last dirty page */
		i = mig_bitmap_next(b->dirty, b->npages, i);
		if (i >= b->npages)
			i = mig_bitmap_next(b->dirty, b->npages, 0);
		if (i >= b->npages)
			return TRUE;
		while (n < max && i < b->npages) {
			if (test_and_clear(b->dirty, i))
				pages[n++] = i;
			i = mig_bitmap_next(b->dirty, b->npages, i + 1);
		}
		/* carry on from here unless a request moves us */
		{
			gsize expect = (gsize)-1;

			__atomic_compare_exchange_n(&src->hint[bi], &expect, i, FALSE, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
		}
		if (!n)
			continue;
		repace_bulk(src);
		yield_to_urgent(src);
		if (src->inline_run)
			rp_step(src);   /* a request among the batches, as the thread would serve it */
		if (mig_src_cancelled(src) || rp_failed(src, err)) {
			if (err && !*err)
				g_set_error(err, MIG_ERROR, ECANCELED, "migration cancelled");
			return FALSE;
		}
		if (src->mf) {
			if (!mig_mf_src_queue(src->mf, bi, b->rb, pages, n, err))
				return FALSE;
		} else if (src->break_huge && ps > MIG_CHUNK_SIZE) {
			if (!push_chunked(src, bi, pages, n, err))
				return FALSE;
		} else {
			if (!mig_src_send_pages(src, bi, pages, n, err))
				return FALSE;
			for (guint k = 0; k < n; k++)
				mig_bitmap_set_atomic(src->bulk_sent[bi], pages[k]);
		}
		mig_atomic_add(&src->s->stats.postcopy_bytes, (guint64)n * ps);
	}
}

static gboolean switchover(Src *src, GError **err)
{
	guint64 dirty;

	if (!mig_src_stop_vm(src, err) || !mig_dev_src_stop_copy_begin(src->dev, err) ||
	    !mig_src_sync_dirty(src, &dirty, err))
		return FALSE;
	src->hint = g_new0(gsize, src->nblocks);
	src->urgent_sent = g_new0(gulong *, src->nblocks);
	src->bulk_sent = g_new0(gulong *, src->nblocks);
	for (guint i = 0; i < src->nblocks; i++) {
		src->hint[i] = (gsize)-1;
		src->urgent_sent[i] = mig_bitmap_new(src->blocks[i].npages);
		src->bulk_sent[i] = mig_bitmap_new(src->blocks[i].npages);
	}
	if (src->mf)
		mig_mf_src_mark_sent(src->mf, src->bulk_sent);
	/* the devices load before the guest runs there: RUN follows their end */
	if (!mig_src_send_frame(src, MIG_F_PC_LISTEN, NULL, 0, err) || !send_discards(src, err))
		return FALSE;
	src->s->stats.t_ram_done = g_get_monotonic_time();
	if (!mig_dev_src_stop_copy_end(src->dev, err) || !mig_src_send_state(src, err))
		return FALSE;
	mig_src_beat_stop(src);
	return mig_src_send_frame(src, MIG_F_PC_RUN, NULL, 0, err);
}

/* Joins the return-path thread (shut: cutting its read first), then stops the lanes:
 * nothing queues on them any more (freed with the channels, once the bulk senders that
 * yield to them are gone). */
static void stop_return_path(Src *src, gboolean shut)
{
	if (src->rp_thread) {
		if (shut && src->fd >= 0)
			shutdown(src->fd, SHUT_RDWR);
		g_thread_join(src->rp_thread);
		src->rp_thread = NULL;
	}
	if (src->urgent) {
		mig_urgent_stop(src->urgent);
		/* what the lanes dropped will never be done: nothing may wait for it */
		__atomic_store_n(&src->urgent_pending, 0, __ATOMIC_RELEASE);
	}
}

/* The channels and threads of a postcopy that broke: shut, joined, closed. The guest
 * stays stopped and every page stays here; what was in flight is found missing in the
 * destination's received bitmap and sent again. */
static void teardown(Src *src)
{
	MigSession *s = src->s;

	mig_src_beat_stop(src);   /* it writes on the main channel, closed below */
	stop_return_path(src, TRUE);
	if (src->mf) {
		g_mutex_lock(&s->lock);
		src->cancel_mf = NULL;
		g_mutex_unlock(&s->lock);
		mig_mf_src_abort(src->mf);
		mig_mf_src_free(g_steal_pointer(&src->mf));
	}
	/* after the senders: they may have been yielding to the lanes */
	mig_pc_src_close_preempt(src);
	g_mutex_lock(&s->lock);
	if (src->fd >= 0)
		mig_io_close(src->fd);
	src->fd = src->cancel_fd = -1;
	g_mutex_unlock(&s->lock);
	g_mutex_lock(&src->rp_lock);
	g_clear_pointer(&src->rp_error, g_free);
	src->dst_done = FALSE;
	src->rp_ended = FALSE;
	g_mutex_unlock(&src->rp_lock);
	src->pace_adapt = FALSE;
}

static guint recover_nmf(Src *src)
{
	return src->s->caps[MIG_CAP_MULTIFD] ? (guint)src->p.multifd_channels : 0;
}

/* A recovery's other channels. Their threads start when postcopy pauses and wait for
 * the resume's address: created at the resume, they were on its path, before the main
 * channel's connect (0.05 to 0.3 ms a thread on a busy host). */
static MigChanBatch *recover_lanes(Src *src)
{
	return mig_chan_batch_start_gated(src->s, &src->p, recover_nmf(src), mig_preempt_channels(src->s, &src->p),
					  MIG_HELLO_F_RESUME);
}

/* One try at recovery, after `migrate resume:true` (docs/protocol.md, Postcopy
 * recovery); lanes (recover_lanes) is joined here whatever happens. On failure the
 * caller tears down whatever came up and pauses again. The multifd and preempt
 * channels connect once the main channel has, while it has its hello answered (the
 * destination admits them only after it), then say hello all at
 * once while the destination answers PC_RECOVER and PC_RESUME (it acks once they are
 * in). The answer is read before they are joined, so that their replies and the join
 * overlap the bitmaps' transfer; one that fails shuts the main channel, which ends
 * the read here and the destination's wait; the status
 * changes before the return path's and the lanes' threads start, which takes a while
 * on a busy host (requests wait in the socket). */
static gboolean recover(Src *src, MigChanBatch *lanes, GError **err)
{
	MigSession *s = src->s;
	guint nmf = recover_nmf(src);
	guint npre = mig_preempt_channels(s, &src->p);
	g_autofree int *mf_fds = g_new(int, nmf + 1);
	g_autoptr(GError) lanes_err = NULL, end_err = NULL;
	guint64 missing = 0;
	gboolean paused, main_ok, end_ok = FALSE;

	main_ok = mig_src_recover_uri(src, err) && mig_src_recover_begin(src, lanes, err);
	if (!main_ok) {
		mig_chan_batch_gate(lanes, FALSE, -1);
	} else {
		/* whatever bulk or the lanes had written went down with the channels: the
		 * received bitmap says what arrived, and nothing counts as sent any more */
		for (guint i = 0; i < src->nblocks; i++) {
			gsize longs = mig_bitmap_longs(src->blocks[i].npages);

			memset(src->urgent_sent[i], 0, longs * sizeof(gulong));
			memset(src->bulk_sent[i], 0, longs * sizeof(gulong));
			src->hint[i] = (gsize)-1;
		}
		/* the answer while the other channels say hello (one that fails shuts the
		 * main channel, which ends this read): it comes once they are all in */
		end_ok = mig_src_recover_end(src, &missing, &end_err);
	}
	/* the main channel's failure is the cause; the lanes then only close. A lane's
	 * failure is the cause of the answer's, which it cut */
	if (!mig_chan_batch_join(lanes, mf_fds, src->pre_fds, main_ok ? err : &lanes_err) || !main_ok)
		return FALSE;
	src->npre = npre;
	if (nmf) {
		MfSrc *mf = mig_mf_src_adopt(s, mf_fds, nmf, src->zero_mode == 2);

		mig_mf_src_mark_sent(mf, src->bulk_sent);
		g_mutex_lock(&s->lock);
		src->mf = src->cancel_mf = mf;
		if (src->pause_req)
			mig_mf_src_abort(mf);
		g_mutex_unlock(&s->lock);
	}
	/* the teardown closes the channels */
	if (!end_ok) {
		g_propagate_error(err, g_steal_pointer(&end_err));
		return FALSE;
	}
	/* a destination that resumed is in postcopy: it ran, whether or not its RP_RUNNING
	 * got here before the link went (RP_DONE needs it) */
	g_mutex_lock(&src->rp_lock);
	src->dst_running = TRUE;
	g_mutex_unlock(&src->rp_lock);
	g_mutex_lock(&s->lock);
	paused = src->pause_req;
	if (!paused) {
		g_clear_pointer(&s->error, g_free);
		mig_set_status_locked(s, MIG_STATUS_POSTCOPY_ACTIVE);
	}
	g_mutex_unlock(&s->lock);
	if (paused) {
		g_set_error(err, MIG_ERROR, EINTR, "postcopy recovery interrupted by migrate-pause");
		return FALSE;
	}
	if (src->npre)
		src->urgent = mig_urgent_new(s, src->pre_fds, src->npre, (guint)src->p.x_postcopy_rt_priority, urgent_done, src);
	if (!src->inline_run)
		src->rp_thread = g_thread_new("mig/src/return", rp_main, src);
	mig_src_beat_start(src);
	mig_log(s, MIG_LOG_INFO, "postcopy recovery: the destination lacks %" G_GUINT64_FORMAT " bytes", missing);
	pace_bulk(src);
	return TRUE;
}

gboolean mig_src_postcopy_lost(Src *src, const GError *why, GError **err)
{
	MigSession *s = src->s;
	g_autoptr(GError) again = NULL;
	g_autofree char *cause = NULL;

	/* a failed return path is the cause: it cuts the main channel (rp_take), and the
	 * write that then fails would only say "broken pipe" */
	g_mutex_lock(&src->rp_lock);
	cause = g_strdup(src->rp_error);
	g_mutex_unlock(&src->rp_lock);
	g_mutex_lock(&s->lock);
	if (src->pause_req || !cause) {
		g_free(cause);
		cause = src->pause_req ? g_strdup("paused by migrate-pause")
				       : g_strdup(why ? why->message : "a postcopy channel was lost");
	}
	g_mutex_unlock(&s->lock);
	for (;;) {
		MigChanBatch *lanes;

		teardown(src);
		lanes = recover_lanes(src);
		g_mutex_lock(&s->lock);
		g_free(s->error);
		/* before RP_RUNNING the operator may take the guest back (mig_src_abandon) */
		if (__atomic_load_n(&src->dst_running, __ATOMIC_ACQUIRE))
			s->error = g_strdup(cause);
		else
			s->error = g_strdup_printf("the destination may be running: GO was sent but no RP_RUNNING came (%s); "
						   "if the destination failed and never ran the guest (query-status "
						   "inmigrate), `cont` runs the guest here, else recover", cause);
		src->pause_req = FALSE;
		mig_log(s, MIG_LOG_WARNING, "postcopy paused: %s", s->error);
		mig_src_setup_announced(src);   /* a resume that failed before its connect */
		mig_set_status_locked(s, MIG_STATUS_POSTCOPY_PAUSED);
		if (src->inline_run && src->inl.resume_fd >= 0 && !src->resume_uri) {
			/* the harness's resumed channel, once: as migrate resume would */
			src->resume_uri = g_strdup(src->uri_text);
			mig_set_status_locked(s, MIG_STATUS_POSTCOPY_RECOVER_SETUP);
		}
		while (!src->quit && !src->abandon && !src->resume_uri && !src->inline_run)
			g_cond_wait(&src->resume_cond, &s->lock);
		if (src->quit || src->abandon || !src->resume_uri) {
			gboolean abandon = src->abandon && !src->quit;

			mig_src_setup_announced(src);
			g_mutex_unlock(&s->lock);
			mig_chan_batch_gate(lanes, FALSE, -1);
			mig_chan_batch_join(lanes, NULL, NULL, NULL);
			if (abandon)
				g_set_error(err, MIG_ERROR, ECANCELED, "postcopy paused (%s) before the destination ran the "
					    "guest; `cont` ended the migration and runs the guest here", cause);
			else
				g_set_error(err, MIG_ERROR, ECANCELED, "postcopy paused (%s) when the session ended", cause);
			return FALSE;
		}
		g_free(src->uri_text);
		src->uri_text = g_steal_pointer(&src->resume_uri);
		g_mutex_unlock(&s->lock);
		g_clear_error(&again);
		if (recover(src, lanes, &again))
			return TRUE;
		g_free(cause);
		g_mutex_lock(&s->lock);
		cause = src->pause_req ? g_strdup_printf("paused by migrate-pause (%s)", again->message)
				       : g_strdup(again->message);
		g_mutex_unlock(&s->lock);
	}
}

/* From postcopy-active to completion: the push, END, and the destination's DONE. */
static gboolean push_rest(Src *src, GError **err)
{
	gboolean ok = TRUE;

	/* the destination bounds its main channel's reads until PC_END, so that it pauses
	 * when this side goes silent: beat while bulk is paced, rides multifd or waits */
	mig_src_beat_start(src);
	for (guint bi = 0; ok && bi < src->nblocks; bi++)
		ok = push_block(src, bi, err);
	/* every page is taken; wait out a request that took one and is sending it */
	g_mutex_lock(&src->urgent_lock);
	g_mutex_unlock(&src->urgent_lock);
	if (!ok || !mig_src_pass_end(src, err))
		return FALSE;
	/* the destination reads nothing after END: a NOP behind it would stay unread */
	mig_src_beat_stop(src);
	return mig_src_send_frame(src, MIG_F_PC_END, NULL, 0, err) && rp_wait(src, &src->dst_done, "RP_DONE", err);
}

gboolean mig_pc_src_run(Src *src, GError **err)
{
	MigSession *s = src->s;
	gboolean ok;

	ok = switchover(src, err);
	if (ok && src->npre)
		src->urgent = mig_urgent_new(s, src->pre_fds, src->npre, (guint)src->p.x_postcopy_rt_priority, urgent_done, src);
	if (ok) {
		if (!src->inline_run)
			src->rp_thread = g_thread_new("mig/src/return", rp_main, src);
		/* GO only once the destination has checked everything and waits */
		ok = rp_wait(src, &src->dst_ready, "RP_READY", err) && mig_src_send_go(src, err) &&
		     rp_wait(src, &src->dst_running, "RP_RUNNING", err);
	}
	/* once GO may have left, the guest may run there on pages only we have: never
	 * resume here, pause (the destination paused too, if it runs) */
	if (!ok && src->go_sent) {
		g_autoptr(GError) lost = NULL;

		/* mig_src_postcopy_lost says the destination may be running, RP_RUNNING not come */
		lost = err && *err ? g_error_copy(*err) : g_error_new(MIG_ERROR, EIO, "the switchover failed after GO");
		g_clear_error(err);
		ok = mig_src_postcopy_lost(src, lost, err);
	}
	if (ok) {
		g_mutex_lock(&s->lock);
		if (!src->postcopy)
			s->stats.downtime_us = g_get_monotonic_time() - s->stats.t_stop;
		src->postcopy = TRUE;
		src->in_downtime = FALSE;
		mig_set_runstate_locked(s, MIG_RUN_POSTMIGRATE);
		mig_set_status_locked(s, MIG_STATUS_POSTCOPY_ACTIVE);
		g_mutex_unlock(&s->lock);
		/* the guest runs there: its main channel's reads are bounded again, and the
		 * push may leave that channel idle (bulk on multifd, or done) */
		mig_src_beat_start(src);
		pace_bulk(src);
		for (;;) {
			g_autoptr(GError) lost = NULL;

			if (push_rest(src, &lost))
				break;
			/* the guest runs there: whatever broke, it waits for its pages */
			if (!mig_src_postcopy_lost(src, lost, err)) {
				ok = FALSE;
				break;
			}
		}
	}
	stop_return_path(src, !ok);
	g_free(src->rp_error);
	src->rp_error = NULL;
	g_clear_pointer(&src->hint, g_free);
	if (src->mf)
		mig_mf_src_mark_sent(src->mf, NULL);
	for (guint i = 0; src->urgent_sent && i < src->nblocks; i++) {
		g_free(src->urgent_sent[i]);
		g_free(src->bulk_sent[i]);
	}
	g_clear_pointer(&src->urgent_sent, g_free);
	g_clear_pointer(&src->bulk_sent, g_free);
	return ok;
}
