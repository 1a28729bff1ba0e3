/* The source's migration thread: precopy passes over dirty pages until the rest fits
 * the downtime limit, then stop-and-copy. Pages go out straight from guest memory
 * (one writev per batch); zero pages travel as offsets only. */
#include "engine/src/src_int.h"
#include "engine/src/postcopy.h"
#include "engine/src/devlane.h"
#include "engine/holes.h"
#include "engine/filelock.h"
#include "engine/dirty_int.h"
#include "engine/src/filesave.h"
#include "engine/bitmap.h"
#include "channels/frame.h"
#include "channels/hello.h"
#include "channels/io.h"
#include "channels/uri.h"
#include <errno.h>
#include <poll.h>
#include <time.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BW_MIN_SAMPLE (4u << 20)   /* bytes a pass must move to measure bandwidth */
#define IDLE_PASS_US 10000         /* pause after a pass with nothing dirty that did not converge */
#define DRAIN_MAX_MS 2000          /* the longest wait for a pass to be in place before stopping */
#define DRAIN_QUICK_US 2000        /* a pass in place this soon: stop now, no new pass first */
#define DRAIN_ROUNDS 3             /* passes drained before stopping regardless */

/* Sleeps out the rest of the window once this window's share of max-bandwidth is
 * spent; stop-and-copy is never throttled (it is downtime). */
static void rate_limit(Src *src)
{
	guint64 bw = __atomic_load_n(&src->s->params.max_bandwidth, __ATOMIC_RELAXED);
	gint64 now = g_get_monotonic_time();
	const gint64 win = 100 * G_TIME_SPAN_MILLISECOND;

	if (now - src->win_start >= win) {
		src->win_start = now;
		src->win_bytes = 0;
		return;
	}
	if (!bw || src->in_downtime || src->win_bytes < bw / 10)
		return;
	while (!mig_src_cancelled(src) && (now = g_get_monotonic_time()) < src->win_start + win)
		g_usleep((gulong)MIN(src->win_start + win - now, 5000));
	src->win_start = g_get_monotonic_time();
	src->win_bytes = 0;
}

#define RP_BEATS_PER_POLL 64   /* RP_NOPs one poll_return_path takes at most */

/* The destination beats on the return path (RP_NOP, at least every quarter of
 * x-channel-timeout): silence for the whole timeout means it stopped or its link went,
 * however full the socket buffers between us still are (their room is what the send
 * timeout waits for, and at a low max-bandwidth that takes long). An inline run's
 * destination is a harness that says nothing unless asked. */
static gboolean rp_silent(Src *src, GError **err)
{
	gint64 quiet = g_get_monotonic_time() - src->rp_heard;

	if (src->inline_run || quiet < (gint64)src->p.x_channel_timeout * G_TIME_SPAN_MILLISECOND)
		return FALSE;
	g_set_error(err, MIG_ERROR, ETIMEDOUT, "the destination said nothing on the return path for %" G_GINT64_FORMAT
		    " ms (x-channel-timeout %" G_GUINT64_FORMAT " ms): it stopped or its link went",
		    quiet / 1000, src->p.x_channel_timeout);
	return TRUE;
}

/* Reads what the destination said on the return path, if anything is pending; its
 * heartbeats are taken and not reported. Returns FALSE with *err set when the
 * destination reported an error, hung up or went silent for x-channel-timeout. */
static gboolean poll_return_path(Src *src, int timeout_ms, guint16 *got, GError **err)
{
	struct pollfd p = { .fd = src->fd, .events = POLLIN };
	MigFrameHdr h;
	g_autofree char *msg = NULL;
	guint beats = 0;
	int rc;

	*got = 0;
	if (src->no_rp)
		return TRUE;   /* a file says nothing back */
	if (timeout_ms && src->inline_run) {
		mig_src_feed(src);   /* the wait is for the destination: what it says next */
		timeout_ms = 0;
	}
	for (;;) {
		if (poll(&p, 1, timeout_ms) <= 0)
			return !rp_silent(src, err);
		rc = mig_frame_recv_hdr(src->fd, &h, 4096);
		if (rc < 0) {
			g_set_error(err, MIG_ERROR, -rc, "destination closed the connection (%s)", g_strerror(-rc));
			return FALSE;
		}
		src->rp_heard = g_get_monotonic_time();
		if (h.type != MIG_F_RP_NOP || h.len)
			break;   /* one with a payload is refused once read, as any bad frame */
		/* a beat answers no wait: take what else is there, but a flood of them
		 * (a peer gone wrong) must not hold the migration here */
		if (++beats == RP_BEATS_PER_POLL)
			return TRUE;
		timeout_ms = 0;
	}
	msg = g_malloc0(h.len + 1);
	if (h.len && (rc = mig_io_read_full(src->fd, msg, h.len)) < 0) {
		g_set_error(err, MIG_ERROR, -rc, "return path truncated: %s", g_strerror(-rc));
		return FALSE;
	}
	*got = h.type;
	if (h.type == MIG_F_RP_NOP) {
		g_set_error(err, MIG_ERROR, EPROTO, "RP_NOP with a payload of %u bytes", h.len);
		return FALSE;
	}
	if (h.type == MIG_F_RP_PASS && h.len == 8) {
		src->pass_acked = MAX(src->pass_acked, mig_get_be64((const guint8 *)msg));
		return TRUE;
	}
	if (h.type == MIG_F_RP_DEVICES)
		return mig_dev_src_loaded(src->dev, (const guint8 *)msg, h.len, err);
	if (h.type == MIG_F_RP_ERROR) {
		char text[MIG_PEER_TEXT_MAX + 4];

		g_set_error(err, MIG_ERROR, EIO, "destination failed: %s", mig_peer_text(msg, h.len, text));
		return FALSE;
	}
	if ((h.type != MIG_F_RP_RUNNING && h.type != MIG_F_RP_READY) ||
	    (h.type == MIG_F_RP_RUNNING && !__atomic_load_n(&src->go_sent, __ATOMIC_ACQUIRE))) {
		g_set_error(err, MIG_ERROR, EPROTO, "unexpected return-path frame type %u", h.type);
		return FALSE;
	}
	return TRUE;
}

/* After a send error, the destination's own explanation beats "broken pipe". */
static void explain_send_error(Src *src, GError **err)
{
	g_autoptr(GError) rp = NULL;
	guint16 got;

	if (mig_src_cancelled(src) || !err || !*err || src->go_sent)
		return;
	if (!poll_return_path(src, 200, &got, &rp) && rp && rp->code == EIO) {
		g_clear_error(err);
		g_propagate_error(err, g_steal_pointer(&rp));
	}
}

/* Right after the hello, before anything that takes time here (arming the dirty
 * trackers grows with the guest): the destination drops a main channel whose SETUP
 * does not come within x-channel-timeout of its hello. */
static gboolean send_setup(Src *src, GError **err)
{
	g_autoptr(GByteArray) p = g_byte_array_new();
	GPtrArray *ram = src->s->ram;
	guint8 w[16];
	struct iovec iov;

	mig_put_be32(w, ram->len);
	g_byte_array_append(p, w, 4);
	for (guint i = 0; i < ram->len; i++) {
		MigRamBlock *rb = g_ptr_array_index(ram, i);
		guint8 len = (guint8)strlen(rb->name);

		g_byte_array_append(p, &len, 1);
		g_byte_array_append(p, (guint8 *)rb->name, len);
		mig_put_be64(w, rb->size);
		mig_put_be64(w + 8, rb->page_size);
		g_byte_array_append(p, w, 16);
	}
	mig_put_be32(w, src->s->caps[MIG_CAP_MULTIFD] ? (guint32)src->p.multifd_channels : 0);
	mig_put_be32(w + 4, mig_preempt_channels(src->s, &src->p));
	g_byte_array_append(p, w, 8);
	mig_dev_setup_append(src->s, p);
	iov = (struct iovec){ p->data, p->len };
	return mig_src_send_frame(src, MIG_F_SETUP, &iov, 1, err);
}

/* migrate-start-postcopy, as in QEMU: taken once the pass it came in has ended, if the
 * rest is too big for the downtime limit; a migration that converges first completes
 * in precopy. */
static gboolean postcopy_wanted(Src *src)
{
	MigSession *s = src->s;

	return s->caps[MIG_CAP_POSTCOPY_RAM] && __atomic_load_n(&s->start_postcopy, __ATOMIC_ACQUIRE);
}

/* Whether the live pass stops where it is, asked between batches: migrate-start-postcopy
 * must not wait for the rest of a pass that may take minutes (17 of them for a 1 TiB
 * guest at 1 GB/s). What the pass did not reach keeps its dirty bit, as a page written since does:
 * the bitmap stays exact and postcopy sends both. Never in the downtime, whose pass
 * must be whole. */
static gboolean pass_cut(Src *src)
{
	/* the flag outlives a cut pass whose rest fitted: the stop-and-copy that follows
	 * must still send all of it */
	if (src->in_downtime)
		return FALSE;
	if (!src->pass_cut && postcopy_wanted(src))
		src->pass_cut = TRUE;
	return src->pass_cut;
}

/* Set bits of map below bit n. */
static gsize count_below(const gulong *map, gsize n)
{
	gsize c = mig_bitmap_count(map, n - n % MIG_BITS_PER_LONG);

	if (n % MIG_BITS_PER_LONG)
		c += (gsize)__builtin_popcountl(map[n / MIG_BITS_PER_LONG] & ((1ul << (n % MIG_BITS_PER_LONG)) - 1));
	return c;
}

/* x-postcopy-auto inside the first pass (autopc.h, MIG_AUTOPC_PROBES), between batches:
 * next is the first page of block bi the pass has not taken. The collection ORs what
 * the guest wrote into the pass's bitmap, as the pass's end does: a page behind the
 * cursor goes again with the next pass or postcopy, one ahead was to go with this pass
 * anyway and goes with its latest bytes; nothing is lost or left stale. A verdict cuts
 * the pass as migrate-start-postcopy does (pass_cut). Not in later passes: they are
 * short, and the judge has their whole figures. */
static gboolean auto_probe(Src *src, guint bi, gsize next, GError **err)
{
	MigSession *s = src->s;
	MigAutoPcProbe p = { 0 };
	guint64 moved, us, limit, written = 0;
	gint64 now;

	if (src->pass || src->pass_cut || src->in_downtime || !src->p.x_postcopy_auto || !s->caps[MIG_CAP_POSTCOPY_RAM])
		return TRUE;
	for (guint j = 0; j < src->nblocks; j++) {
		MigRamBlock *rb = src->blocks[j].rb;

		p.ram += rb->size;
		if (j < bi)
			p.done += rb->size;
		else if (j == bi)
			p.done += (guint64)next * rb->page_size;
	}
	/* the pass's end collects anyway */
	if (!p.ram || p.done >= p.ram || p.done * MIG_AUTOPC_PROBES < (guint64)(src->probes + 1) * p.ram)
		return TRUE;
	src->probes = (guint)(p.done * MIG_AUTOPC_PROBES / p.ram);
	now = g_get_monotonic_time();
	moved = mig_atomic_get(&s->stats.transferred) - src->pass_sent0;
	us = (guint64)MAX(now - src->pass_t0, 1);
	if (moved < BW_MIN_SAMPLE)
		return TRUE;   /* a bandwidth of nothing would make any rest look long */
	for (guint j = 0; j < src->nblocks; j++) {
		SrcBlock *b = &src->blocks[j];
		guint64 n = 0;

		/* marked: the pass and postcopy walk only the groups a collect marked */
		if (!mig_dirty_sync_marked(b->tracker, b->dirty, b->groups, b->npages, &n, err))
			return FALSE;
		written += n * b->rb->page_size;
		if (j <= bi)
			p.redirtied += (guint64)(j < bi ? mig_groups_count(b->dirty, b->groups, b->npages) : count_below(b->dirty, next)) *
				       b->rb->page_size;
	}
	p.bw = moved * G_USEC_PER_SEC / us;
	p.dirty_rate = written * G_USEC_PER_SEC / (guint64)MAX(now - src->probe_t, 1);
	src->probe_t = now;
	p.expected_ms = mig_dev_src_expected_ms(src->dev, p.redirtied, p.bw);
	limit = __atomic_load_n(&s->params.downtime_limit, __ATOMIC_RELAXED);
	mig_log(s, MIG_LOG_DEBUG, "x-postcopy-auto: pass 1 probe %u: %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT
		" bytes sent, %" G_GUINT64_FORMAT " of them dirty again, dirtied %.1f MB/s, link %.1f MB/s, their "
		"expected downtime %" G_GUINT64_FORMAT " ms", src->probes, p.done, p.ram, p.redirtied,
		(double)p.dirty_rate / 1e6, (double)p.bw / 1e6, p.expected_ms);
	if (!mig_autopc_probe(&p, limit, src->auto_why, sizeof(src->auto_why)))
		return TRUE;
	src->pass_cut = src->auto_cut = TRUE;
	return TRUE;
}

/* One batch: up to MAX_BATCH_PAGES (and MIG_BATCH_BYTES, but at least one huge page)
 * dirty pages from *pos on; their dirty bits are cleared before the data is read, so a
 * write racing the send is caught by the tracker and the page goes again. */
static gboolean send_batch(Src *src, guint bi, gsize *pos, GError **err)
{
	SrcBlock *b = &src->blocks[bi];
	guint max = (guint)MAX(1, MIN(MAX_BATCH_PAGES, MIG_BATCH_BYTES / b->rb->page_size));
	gsize pages[MAX_BATCH_PAGES];
	guint n = 0;
	gsize i = *pos;

	while (n < max) {
		i = mig_groups_next(b->dirty, b->groups, b->npages, i);
		if (i >= b->npages)
			break;
		mig_bitmap_clear(b->dirty, i);
		if (src->drop_left && !mig_mem_is_zero(b->rb->host + i * b->rb->page_size, b->rb->page_size))
			src->drop_left--;   /* lost on purpose: the destination must notice */
		else
			pages[n++] = i;
		i++;
	}
	*pos = i;
	return n ? mig_src_send_pages(src, bi, pages, n, err) : TRUE;
}

/* Legacy zero detection stays in this thread and goes on the main channel. */
static gboolean send_zeros(Src *src, guint bi, guint8 *offs, guint *n, GError **err)
{
	guint8 hdr[MIG_PAGES_HDR_LEN];
	struct iovec iov[2] = { { hdr, sizeof(hdr) }, { offs, *n * 8u } };

	if (!*n)
		return TRUE;
	mig_put_pages_hdr(hdr, bi, *n);
	if (!mig_src_send_frame(src, MIG_F_ZEROS, iov, 2, err))
		return FALSE;
	mig_atomic_add(&src->s->stats.duplicate, *n);
	*n = 0;
	return TRUE;
}

#define LEGACY_HOLES_WIN 512u   /* pages per look-up: one 4 KiB read of pagemap */

/* Legacy zero detection of page i. In the first pass, where every page is dirty, a
 * page that holds nothing (engine/holes.c, looked up a window at a time) is zero
 * without the read that would populate it, as the multifd senders do; later passes
 * send what the tracker saw written, which holds a page, so a look-up there would be
 * a read of pagemap per scattered page for nothing. */
static gboolean legacy_zero(Src *src, SrcBlock *b, gsize i, gulong *empty, gsize *win)
{
	gsize ps = b->rb->page_size;

	if (src->pass == 0 && src->holes && (*win > i || i - *win >= LEGACY_HOLES_WIN)) {
		*win = i;
		mig_holes_find(src->holes, b->rb, i, MIN((gsize)LEGACY_HOLES_WIN, b->npages - i), empty);
	}
	if (*win <= i && i - *win < LEGACY_HOLES_WIN && mig_bitmap_test(empty, i - *win))
		return TRUE;
	return mig_mem_is_zero(b->rb->host + i * ps, ps);
}

/* multifd: this thread only picks pages (clearing their dirty bits first, as on the
 * main channel) and hands batches to the senders, which do the per-byte work. */
static gboolean queue_dirty(Src *src, guint bi, GError **err)
{
	SrcBlock *b = &src->blocks[bi];
	gsize ps = b->rb->page_size;
	guint max = (guint)MAX(1, MIN(MIG_MF_MAX_PAGES, MIG_BATCH_BYTES / ps));
	gsize pages[MIG_MF_MAX_PAGES];
	guint8 zeros[MAX_BATCH_PAGES * 8];
	gulong empty[LEGACY_HOLES_WIN / (8 * sizeof(gulong))];
	gsize win = G_MAXSIZE;   /* the first page `empty` describes; none yet */
	guint n = 0, nz = 0;
	gsize i = 0;
	guint16 got;

	for (;;) {
		i = mig_groups_next(b->dirty, b->groups, b->npages, i);
		if (i < b->npages) {
			mig_bitmap_clear(b->dirty, i);
			if (src->zero_mode == 1 && legacy_zero(src, b, i, empty, &win))
				mig_put_be64(zeros + 8 * nz++, i * ps);
			else if (src->drop_left)
				src->drop_left--;   /* lost on purpose: the destination must notice */
			else
				pages[n++] = i;
			i++;
		}
		if (nz == MAX_BATCH_PAGES || (i >= b->npages && nz)) {
			if (!send_zeros(src, bi, zeros, &nz, err))
				return FALSE;
			/* a guest mostly of zeros queues no batch for long */
			if (!n && !auto_probe(src, bi, i, err))
				return FALSE;
			if (!n && pass_cut(src))
				return TRUE;
		}
		if (n == max || (i >= b->npages && n)) {
			if (mig_src_cancelled(src)) {
				g_set_error(err, MIG_ERROR, ECANCELED, "migration cancelled");
				return FALSE;
			}
			if (!mig_mf_src_queue(src->mf, bi, b->rb, pages, n, err))
				return FALSE;
			src->win_bytes += (guint64)n * ps;
			mig_atomic_set(&src->s->stats.remaining,
				       mig_atomic_get(&src->s->stats.remaining) - MIN(mig_atomic_get(&src->s->stats.remaining), (guint64)n * ps));
			n = 0;
			if (!src->in_downtime) {
				rate_limit(src);
				if (!poll_return_path(src, 0, &got, err))
					return FALSE;
			}
			if (!auto_probe(src, bi, i, err))
				return FALSE;
			/* cut: every page whose bit was cleared is queued (the pass's end waits
			 * for the senders to write it), and so are the zeros picked so far */
			if (pass_cut(src))
				return send_zeros(src, bi, zeros, &nz, err);
		}
		if (i >= b->npages)
			return TRUE;
	}
}

static gboolean send_dirty(Src *src, GError **err)
{
	if (src->mf) {
		for (guint bi = 0; bi < src->nblocks && !pass_cut(src); bi++)
			if (!queue_dirty(src, bi, err))
				return FALSE;
		return TRUE;
	}
	for (guint bi = 0; bi < src->nblocks; bi++) {
		gsize pos = 0;

		while (pos < src->blocks[bi].npages) {
			guint16 got;

			if (mig_src_cancelled(src)) {
				g_set_error(err, MIG_ERROR, ECANCELED, "migration cancelled");
				return FALSE;
			}
			if (!send_batch(src, bi, &pos, err))
				return FALSE;
			if (!src->in_downtime) {
				rate_limit(src);
				if (!poll_return_path(src, 0, &got, err))
					return FALSE;
			}
			if (!auto_probe(src, bi, pos, err))
				return FALSE;
			/* the batch is sent whole: what it cleared is on the channel */
			if (pass_cut(src))
				return TRUE;
		}
	}
	return TRUE;
}

static void emit_pass(MigSession *s)
{
	if (s->caps[MIG_CAP_EVENTS])
		mig_emit(s, &(MigEvent){ .type = MIG_EVENT_MIGRATION_PASS,
					 .pass = mig_atomic_get(&s->stats.dirty_sync_count) });
}

static gboolean connect_main(Src *src, GError **err)
{
	MigSession *s = src->s;
	MigUri uri = { 0 };
	int fd;

	if (mig_uri_parse(src->uri_text, &uri) < 0) {
		g_set_error(err, MIG_ERROR, EINVAL, "invalid migration URI '%s' (expected tcp:HOST:PORT or unix:PATH)", src->uri_text);
		return FALSE;
	}
	if (uri.kind == MIG_URI_FILE) {
		/* a streamed file: the stream goes into it, nothing comes back, and no peer
		 * needs a heartbeat */
		fd = mig_chan_file_out(s, &uri, err);
		if (fd < 0)
			return FALSE;
		g_mutex_lock(&s->lock);
		src->fd = src->cancel_fd = fd;
		src->no_rp = TRUE;
		s->stats.x_file_streamed = TRUE;
		s->stats.x_file = TRUE;
		g_mutex_unlock(&s->lock);
		src->uri = uri;
		return TRUE;
	}
	if (uri.kind == MIG_URI_FD) {
		/* connected by whoever passed it (getfd): only the hello is ours */
		fd = src->given_fd;
		src->given_fd = -1;
		mig_chan_set_liveness(s, fd, src->p.x_channel_timeout);
	} else {
		fd = mig_chan_connect(src->s, &uri, &src->p, MIG_CHAN_MAIN, 0, err);
		if (fd < 0)
			return FALSE;
	}
	/* registered before the hello, so migrate_cancel can cut a stuck handshake */
	g_mutex_lock(&s->lock);
	src->cancel_fd = fd;
	src->fd = fd;
	g_mutex_unlock(&s->lock);
	if (!mig_chan_hello(s, fd, &src->p, MIG_CHAN_MAIN, 0, src->chan_flags, err))
		return FALSE;
	src->uri = uri;
	mig_src_rp_bound(src);
	mig_src_beat_start(src);
	return TRUE;
}

/* After the main channel: the destination admits multifd channels only then, so
 * they can never race it. */
static gboolean start_multifd(Src *src, GError **err)
{
	MigSession *s = src->s;
	MfSrc *mf;

	if (!s->caps[MIG_CAP_MULTIFD])
		return TRUE;
	mf = mig_mf_src_start(s, &src->uri, &src->p, (guint)src->p.multifd_channels,
			      src->zero_mode == 2, err);
	if (!mf)
		return FALSE;
	g_mutex_lock(&s->lock);
	src->mf = mf;
	src->cancel_mf = mf;
	if (s->cancel)
		mig_mf_src_abort(mf);
	g_mutex_unlock(&s->lock);
	return TRUE;
}

static gboolean setup_tracking(Src *src, GError **err)
{
	MigSession *s = src->s;

	src->nblocks = s->ram->len;
	src->blocks = g_new0(SrcBlock, src->nblocks);
	/* the first probe's rate counts from here, a little before any write is tracked */
	src->probe_t = g_get_monotonic_time();
	for (guint i = 0; i < src->nblocks; i++) {
		SrcBlock *b = &src->blocks[i];

		b->rb = g_ptr_array_index(s->ram, i);
		b->npages = mig_ram_block_pages(b->rb);
		b->dirty = mig_bitmap_new(b->npages);
		b->groups = mig_groups_new(b->npages);
		/* the first pass sends everything; tracking starts before it reads a byte */
		mig_bitmap_fill(b->dirty, b->npages);
		mig_groups_fill(b->groups, b->npages);
		b->tracker = mig_tracker_new(s, b->rb, err);
		if (!b->tracker || !b->tracker->ops->start(b->tracker, b->rb->host, b->rb->size, b->rb->page_size, err))
			return FALSE;
		/* a tracker may fall back to another kind at start (uffd-wp-log to uffd-wp) */
		mig_log(s, MIG_LOG_INFO, "RAM block '%s': dirty tracking by %s", b->rb->name,
			b->tracker->ops->name);
	}
	return TRUE;
}

static void free_tracking(Src *src)
{
	for (guint i = 0; i < src->nblocks; i++) {
		SrcBlock *b = &src->blocks[i];

		if (b->tracker) {
			b->tracker->ops->stop(b->tracker);
			mig_dirty_tracker_free(b->tracker);
		}
		g_free(b->dirty);
		g_free(b->groups);
	}
	g_free(src->blocks);
}

/* x-postcopy-after-passes: postcopy once that many passes are done, even if the rest
 * would fit the downtime limit, so a benchmark or test gets its postcopy phase on a
 * link fast enough to converge. Read from the migration's snapshot: QEMU has no such
 * parameter to change mid-migration. */
static gboolean postcopy_due(Src *src)
{
	guint64 after = src->p.x_postcopy_after_passes;

	return src->s->caps[MIG_CAP_POSTCOPY_RAM] && after && src->pass >= after;
}

/* Reads what the return path has now. With multifd nothing else reads it in the live
 * phase, and an RP_PASS per pass left there would in the end fill the socket and stop
 * the destination's loader in its write. */
static gboolean drain_return_path(Src *src, GError **err)
{
	guint16 got;

	do {
		if (!poll_return_path(src, 0, &got, err))
			return FALSE;
	} while (got);
	return TRUE;
}

/* Waits (guest running) until the destination has the last pass in place, at most
 * DRAIN_MAX_MS; *waited_us says how long it took. */
static gboolean wait_pass_in_place(Src *src, gint64 *waited_us, GError **err)
{
	gint64 t0 = g_get_monotonic_time(), end = t0 + DRAIN_MAX_MS * G_TIME_SPAN_MILLISECOND;

	/* a file has the pass once it is written */
	while (!src->no_rp && src->pass_acked < src->pass) {
		gint64 now = g_get_monotonic_time();
		guint16 got;

		if (now >= end)
			break;
		if (mig_src_cancelled(src)) {
			g_set_error(err, MIG_ERROR, ECANCELED, "migration cancelled");
			return FALSE;
		}
		if (!poll_return_path(src, (int)MIN((end - now + 999) / 1000, 100), &got, err))
			return FALSE;
	}
	*waited_us = g_get_monotonic_time() - t0;
	return TRUE;
}

/* x-postcopy-auto's verdict, to query-migrate and the log: the pass in which or at
 * whose end it switched, and why. */
static void auto_switched(Src *src, const char *why)
{
	MigSession *s = src->s;

	g_mutex_lock(&s->lock);
	s->stats.x_auto_pass = src->pass;
	g_strlcpy(s->stats.x_auto_reason, why, sizeof(s->stats.x_auto_reason));
	g_mutex_unlock(&s->lock);
	mig_log(s, MIG_LOG_INFO, "x-postcopy-auto: switching to postcopy: %s", why);
}

/* x-postcopy-auto: feeds the pass to the judge (autopc.h) and says whether to switch
 * now; the reason goes to query-migrate and the log. */
static gboolean postcopy_judged(Src *src, guint64 dirty, guint64 bw, guint64 secs_us, guint64 limit)
{
	MigSession *s = src->s;
	char why[sizeof(s->stats.x_auto_reason)];
	MigAutoPcPass pass = { 0 };
	double smoothed;

	if (!src->p.x_postcopy_auto || !s->caps[MIG_CAP_POSTCOPY_RAM])
		return FALSE;
	smoothed = MAX(mig_autopc_bandwidth(&src->autopc, bw), 1.0);
	pass.expected_ms = mig_dev_src_expected_ms(src->dev, dirty, (guint64)smoothed);
	pass.dirty = dirty;
	pass.dirty_rate = dirty * G_USEC_PER_SEC / MAX(secs_us, 1u);
	for (guint i = 0; i < src->nblocks; i++)
		pass.ram += src->blocks[i].rb->size;
	/* the judge's inputs, so a verdict (or its absence) can be followed in the log */
	mig_log(s, MIG_LOG_DEBUG, "x-postcopy-auto: pass %" G_GUINT64_FORMAT ": %" G_GUINT64_FORMAT " of %"
		G_GUINT64_FORMAT " bytes dirty, dirtied %.1f MB/s, link %.1f MB/s (smoothed %.1f), expected downtime %"
		G_GUINT64_FORMAT " ms", src->pass, dirty, pass.ram, (double)pass.dirty_rate / 1e6, (double)bw / 1e6,
		smoothed / 1e6, pass.expected_ms);
	if (!mig_autopc_judge(&src->autopc, &pass, limit, why, sizeof(why)))
		return FALSE;
	auto_switched(src, why);
	return TRUE;
}

/* Live passes until the dirty rest fits downtime-limit at the measured bandwidth, or
 * until postcopy is asked for or judged needed (then *postcopy is set). */
static gboolean precopy(Src *src, gboolean *postcopy, GError **err)
{
	MigSession *s = src->s;
	MigStats *st = &s->stats;
	guint64 prev_expected = G_MAXUINT64;
	guint drains = 0;

	for (;;) {
		gint64 t0 = g_get_monotonic_time();
		guint64 sent0 = mig_atomic_get(&st->transferred);
		guint64 dirty, limit, bw, max_bw, expected, secs_us, moved;
		gboolean judged;

		/* A cut pass ends as any other: the multifd senders write what they were
		 * handed and sync, PASS, a dirty sync, so the switchover starts from a whole
		 * pass's state on both sides; only fewer pages went in it. */
		src->pass_cut = src->auto_cut = FALSE;
		src->pass_t0 = t0;
		src->pass_sent0 = sent0;
		if (!mig_dev_src_precopy(src->dev, err) || !send_dirty(src, err) || !mig_src_send_live(src, err) ||
		    !mig_src_pass_end(src, err) || !drain_return_path(src, err))
			return FALSE;
		if (!mig_src_sync_dirty(src, &dirty, err))
			return FALSE;
		emit_pass(s);
		secs_us = (guint64)MAX(g_get_monotonic_time() - t0, 1);
		moved = mig_atomic_get(&st->transferred) - sent0;
		if (src->pass_cut)
			mig_log(s, MIG_LOG_INFO, "%s: pass %" G_GUINT64_FORMAT " stopped early, after %"
				G_GUINT64_FORMAT " bytes in %" G_GUINT64_FORMAT " ms; %" G_GUINT64_FORMAT " bytes dirty or unsent",
				src->auto_cut ? "x-postcopy-auto" : "migrate-start-postcopy", src->pass, moved, secs_us / 1000, dirty);
		bw = moved * G_USEC_PER_SEC / secs_us;
		/* a near-empty pass says nothing about the link, and the devices' state must
		 * not look like it would crawl over it: keep the last real figure. A cut
		 * pass's few bytes do not become the figure either: postcopy would pace its
		 * bulk by it (pace_bulk), and without one it does not pace */
		if (moved < BW_MIN_SAMPLE && mig_atomic_get(&st->bandwidth))
			bw = mig_atomic_get(&st->bandwidth);
		bw = MAX(bw, 1u);
		if (!src->pass_cut || moved >= BW_MIN_SAMPLE)
			mig_atomic_set(&st->bandwidth, bw);
		max_bw = __atomic_load_n(&s->params.max_bandwidth, __ATOMIC_RELAXED);
		src->bw_capped = max_bw && bw >= max_bw / 10 * 9;
		/* a cut pass's dirty rest holds what it never reached: no rate of writes */
		if (!src->pass_cut)
			mig_atomic_set(&st->dirty_pages_rate,
				       dirty / MAX(src->blocks[0].rb->page_size, 1u) * G_USEC_PER_SEC / secs_us);
		expected = mig_dev_src_expected_ms(src->dev, dirty, bw);
		mig_atomic_set(&st->expected_downtime, expected);
		st->converging = expected < prev_expected || expected == 0;
		prev_expected = expected;
		limit = __atomic_load_n(&s->params.downtime_limit, __ATOMIC_RELAXED);
		/* the judge compares whole passes; a cut one ends precopy anyway unless its
		 * rest fits, and then completes it. A probe's cut is its verdict: the rest
		 * at the probe already did not fit */
		judged = src->auto_cut || (!src->pass_cut && postcopy_judged(src, dirty, bw, secs_us, limit));
		if (src->auto_cut && expected > limit)
			auto_switched(src, src->auto_why);
		if (postcopy_due(src)) {
			*postcopy = TRUE;
			return TRUE;
		}
		if (expected <= limit) {
			gint64 waited;

			/* A pass ends when the kernel has its bytes: what still sits in socket
			 * buffers at either end would be received in the downtime, ahead of the
			 * device state, which then waits for it. It drains here, guest running;
			 * if that took a while the guest dirtied meanwhile, and a new pass
			 * redoes the estimate. */
			if (!wait_pass_in_place(src, &waited, err))
				return FALSE;
			if (waited <= DRAIN_QUICK_US || ++drains >= DRAIN_ROUNDS)
				return TRUE;
			continue;
		}
		if (postcopy_wanted(src) || judged) {
			*postcopy = TRUE;
			return TRUE;
		}
		/* nothing dirty yet the rest (device state) does not fit: spinning on empty
		 * passes would only take CPU from the guest */
		if (!dirty)
			g_usleep(IDLE_PASS_US);
	}
}

/* Waits for the destination's answer at the switchover: x-channel-timeout, counted
 * again from every frame it sends meanwhile (RP_PASS, RP_DEVICES) and whenever it
 * took in more of the stream, since both show it working through what is still in
 * the sockets. Cancel ends it before GO. */
static gboolean wait_rp(Src *src, guint16 want, GError **err)
{
	gint64 span = (gint64)src->p.x_channel_timeout * G_TIME_SPAN_MILLISECOND;
	gint64 end = g_get_monotonic_time() + span;
	guint16 got = 0;
	int outq = G_MAXINT;

	while (got != want) {
		gint64 now = g_get_monotonic_time();

		if (mig_src_dst_draining(src, &outq))
			end = now + span;
		if (mig_src_stopping(src)) {
			g_set_error(err, MIG_ERROR, ECANCELED, "migration cancelled");
			return FALSE;
		}
		if (now >= end) {
			g_set_error(err, MIG_ERROR, ETIMEDOUT, "no %s from the destination within %" G_GUINT64_FORMAT
				    " ms (x-channel-timeout)", want == MIG_F_RP_READY ? "RP_READY" : "RP_RUNNING",
				    src->p.x_channel_timeout);
			return FALSE;
		}
		if (!poll_return_path(src, (int)MIN((end - now + 999) / 1000, 100), &got, err))
			return FALSE;
		if (got == MIG_F_RP_READY && want != MIG_F_RP_READY) {
			g_set_error(err, MIG_ERROR, EPROTO, "RP_READY sent twice");
			return FALSE;
		}
		if (got && got != want)
			end = g_get_monotonic_time() + span;
	}
	return TRUE;
}

/* A streamed file ends with COMPLETE, on disk: nobody answers, and the guest stays
 * stopped here (postmigrate) as after any completed migration. */
static gboolean file_complete(Src *src, GError **err)
{
	if (!mig_src_send_frame(src, MIG_F_COMPLETE, NULL, 0, err))
		return FALSE;
	if (fdatasync(src->fd) < 0) {
		g_set_error(err, MIG_ERROR, errno, "flushing '%s': %s", src->uri.file, g_strerror(errno));
		return FALSE;
	}
	src->s->stats.downtime_us = g_get_monotonic_time() - src->s->stats.t_stop;
	return TRUE;
}

static gboolean stop_and_copy(Src *src, GError **err)
{
	MigStats *st = &src->s->stats;
	g_autoptr(GError) why = NULL;
	guint64 dirty;

	if (!mig_src_stop_vm(src, err))
		return FALSE;
	/* with the lane, the devices stream on the senders while this thread adds RAM
	 * behind them */
	if (!mig_dev_src_stop_copy_begin(src->dev, err))
		return FALSE;
	st->t_vm_stopped = g_get_monotonic_time();
	if (!mig_src_sync_dirty(src, &dirty, err))
		return FALSE;
	st->t_synced = g_get_monotonic_time();
	if (!send_dirty(src, err))
		return FALSE;
	/* the rest of the RAM is with the senders (or on the main channel) by now: the
	 * pass's sync below waits for the devices' chunks too, which ram-ms must not count */
	st->t_ram_done = g_get_monotonic_time();
	/* before the pass's sync: a receiver parks at its SYNC until the main channel's
	 * PASS, so a device chunk behind a SYNC would wait for the very sync waiting on it */
	if (!mig_dev_src_stop_copy_end(src->dev, err) || !mig_src_pass_end(src, err))
		return FALSE;
	st->t_pass_done = g_get_monotonic_time();
	if (!mig_src_send_state(src, err))
		return FALSE;
	st->t_state_sent = g_get_monotonic_time();
	mig_src_beat_stop(src);
	if (src->no_rp)
		return file_complete(src, err);
	if (!mig_src_send_frame(src, MIG_F_COMPLETE, NULL, 0, err) || !wait_rp(src, MIG_F_RP_READY, err))
		return FALSE;
	st->t_ready = g_get_monotonic_time();
	/* the destination has everything and waits: past this point the guest is theirs */
	if (!mig_src_send_go(src, &why) || !wait_rp(src, MIG_F_RP_RUNNING, &why)) {
		g_set_error(err, MIG_ERROR, EIO, "the destination may be running: GO was sent but no RP_RUNNING came "
			    "(%s); the guest stays stopped here: check the destination, then `cont` the guest on one "
			    "side only", why->message);
		return FALSE;
	}
	return TRUE;
}

static void finish(Src *src, GError *error)
{
	MigSession *s = src->s;

	g_mutex_lock(&s->lock);
	/* a streamed file, before its end is announced: a dup from an fd set shares the
	 * set's lock, which closing the dup would not let go (filelock.h) */
	if (src->no_rp && src->uri.kind == MIG_URI_FILE && src->cancel_fd >= 0)
		mig_file_unlock(src->cancel_fd, src->uri.offset);
	s->stats.t_end = g_get_monotonic_time();
	if (!error) {
		mig_set_runstate_locked(s, MIG_RUN_POSTMIGRATE);
		mig_set_status_locked(s, MIG_STATUS_COMPLETED);
	} else {
		/* the source keeps running whatever went wrong, unless the destination's guest
		 * has run: then resuming here would split the guest in two */
		if (src->postcopy || src->go_sent) {
			mig_set_runstate_locked(s, MIG_RUN_POSTMIGRATE);
		} else if (src->stopped && src->vm_was_running) {
			s->vm->cont(s->vm_opaque);
			mig_set_runstate_locked(s, MIG_RUN_RUNNING);
		} else if (src->stopped) {
			mig_set_runstate_locked(s, MIG_RUN_PAUSED);
		}
		if (s->cancel && !src->go_sent) {
			mig_set_status_locked(s, MIG_STATUS_CANCELLED);
		} else {
			g_free(s->error);
			s->error = g_strdup(error->message);
			mig_log(s, MIG_LOG_ERROR, "migration failed: %s", error->message);
			mig_set_status_locked(s, MIG_STATUS_FAILED);
		}
	}
	g_cond_broadcast(&src->end_cond);
	if (src->cancel_fd >= 0) {
		mig_io_close(src->cancel_fd);
		src->cancel_fd = -1;
	}
	g_mutex_unlock(&s->lock);
}

static gpointer src_thread(gpointer opaque)
{
	Src *src = opaque;
	MigSession *s = src->s;
	g_autoptr(GError) err = NULL;
	gboolean ok, file, postcopy = FALSE;

	src->zero_mode = (guint)src->p.zero_page_detection;
	src->holes = mig_holes_new();
	/* every migration, to a file too: what an earlier one handed out is not there */
	if (s->vm_live)
		s->vm_live->save_begin(s->vm_opaque);
	file = mig_uri_parse(src->uri_text, &src->uri) == 0 && src->uri.kind == MIG_URI_FILE &&
	       s->caps[MIG_CAP_MAPPED_RAM];
	if (file)   /* mapped-ram: no peer, no channels; filesave.c does the passes */
		ok = setup_tracking(src, &err) && mig_file_src_run(src, &err);
	else
		ok = connect_main(src, &err) && send_setup(src, &err) && setup_tracking(src, &err) &&
		     start_multifd(src, &err) && mig_pc_src_connect_preempt(src, &err) &&
		     (src->dev = mig_dev_src_new(src, &err)) != NULL;
	if (ok && !file) {
		g_mutex_lock(&s->lock);
		s->stats.t_setup_done = g_get_monotonic_time();
		if (!s->cancel)
			mig_set_status_locked(s, MIG_STATUS_ACTIVE);
		g_mutex_unlock(&s->lock);
		src->win_start = g_get_monotonic_time();
		src->drop_left = src->p.x_debug_drop_pages;
		ok = precopy(src, &postcopy, &err) &&
		     (postcopy ? mig_pc_src_run(src, &err) : stop_and_copy(src, &err));
	}
	if (!ok && !src->postcopy && !file)
		explain_send_error(src, &err);
	mig_src_beat_stop(src);   /* before finish closes the channel it writes on */
	{
		struct timespec ts;

		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
		s->stats.src_thread_cpu_us = (gint64)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
	}
	/* Success: the destination runs the guest, so the migration is over. Tearing down
	 * write-protection over all of RAM takes ~150 ms per 2 GiB here and is neither
	 * transfer nor downtime (QEMU too stops the clock before its cleanup); the next
	 * migrate joins this thread, so nothing can start before the teardown is done. On
	 * failure the teardown comes first, as the guest may resume. */
	if (ok)
		finish(src, NULL);
	if (src->mf) {
		g_mutex_lock(&s->lock);
		src->cancel_mf = NULL;
		g_mutex_unlock(&s->lock);
		if (!ok)
			mig_mf_src_abort(src->mf);
		/* save threads may wait on a sender: they see the abort and go first */
		mig_dev_src_join(src->dev);
		mig_mf_src_free(src->mf);
	}
	/* the source keeps running on failure (see finish), and so do its devices */
	mig_dev_src_free(src->dev, !ok && !src->postcopy && !src->go_sent && (!src->stopped || src->vm_was_running));
	free_tracking(src);
	mig_pc_src_close_preempt(src);   /* precopy finished, or failed, with them open */
	if (!ok)
		finish(src, err);
	return NULL;
}

static Src *src_new(MigSession *s, const char *uri, int fd)
{
	Src *src = g_new0(Src, 1);

	src->s = s;
	src->fd = src->cancel_fd = -1;
	src->given_fd = fd;
	src->uri_text = g_strdup(uri);
	mig_params_copy(&src->p, &s->params);
	g_mutex_init(&src->wlock);
	g_mutex_init(&src->rp_lock);
	g_mutex_init(&src->urgent_lock);
	g_cond_init(&src->rp_cond);
	g_cond_init(&src->resume_cond);
	g_cond_init(&src->end_cond);
	mig_beat_init(&src->beat);
	src->inl.resume_fd = -1;
	return src;
}

struct Src *mig_src_start(MigSession *s, const char *uri, int fd)
{
	Src *src = src_new(s, uri, fd);

	src->thread = g_thread_new("mig/src/main", src_thread, src);
	return src;
}

struct Src *mig_src_new_inline(MigSession *s, const char *uri, int fd, const MigSrcInline *in)
{
	Src *src = src_new(s, uri, fd);

	src->inline_run = TRUE;
	src->inl = *in;
	return src;
}

void mig_src_run_inline(struct Src *src)
{
	src_thread(src);
}

/* Wakes whatever waits on the return path's news (rp_wait). */
static void wake_rp(struct Src *src)
{
	g_mutex_lock(&src->rp_lock);
	g_cond_broadcast(&src->rp_cond);
	g_mutex_unlock(&src->rp_lock);
}

void mig_src_cancel(struct Src *src)
{
	if (src->cancel_fd >= 0)
		shutdown(src->cancel_fd, SHUT_RDWR);
	if (src->cancel_mf)
		mig_mf_src_abort(src->cancel_mf);
	wake_rp(src);
}

void mig_src_quit(struct Src *src)
{
	__atomic_store_n(&src->quit, TRUE, __ATOMIC_RELEASE);
	g_cond_broadcast(&src->resume_cond);   /* a paused postcopy waits for a resume */
	g_cond_broadcast(&src->end_cond);      /* and `cont` for its end */
	/* postcopy refuses a cancel, but a session going away cuts the main channel and
	 * the senders all the same; a preempt lane's blocked write ends within
	 * x-channel-timeout (its send timeout) */
	mig_src_cancel(src);
}

void mig_src_yank(struct Src *src)
{
	if (src->cancel_fd >= 0)
		shutdown(src->cancel_fd, SHUT_RDWR);
	if (src->cancel_mf)
		mig_mf_src_yank(src->cancel_mf);
}

gboolean mig_src_has_channels(struct Src *src)
{
	return src->cancel_fd >= 0;
}

void mig_src_pause(struct Src *src)
{
	src->pause_req = TRUE;
	if (src->cancel_fd >= 0)
		shutdown(src->cancel_fd, SHUT_RDWR);
	if (src->cancel_mf)
		mig_mf_src_abort(src->cancel_mf);
}

void mig_src_resume(struct Src *src, const char *uri)
{
	MigSession *s = src->s;

	g_free(src->resume_uri);
	src->resume_uri = g_strdup(uri);
	/* the migration thread first: building the event under s->lock kept it from its
	 * connect (a traced resume, smoke: part of 0.28 ms from the command to it) */
	s->status = MIG_STATUS_POSTCOPY_RECOVER_SETUP;
	src->setup_unannounced = s->caps[MIG_CAP_EVENTS];
	g_cond_broadcast(&src->resume_cond);
}

void mig_src_resume_announce(struct Src *src)
{
	MigSession *s = src->s;
	gboolean due;

	g_mutex_lock(&s->lock);
	due = src->setup_unannounced;
	g_mutex_unlock(&s->lock);
	if (!due)
		return;
	mig_emit(s, &(MigEvent){ .type = MIG_EVENT_MIGRATION, .status = MIG_STATUS_POSTCOPY_RECOVER_SETUP });
	g_mutex_lock(&s->lock);
	src->setup_unannounced = FALSE;
	g_cond_broadcast(&src->resume_cond);
	g_mutex_unlock(&s->lock);
}

gboolean mig_src_abandon(struct Src *src, GError **err)
{
	/* RP_RUNNING, or a recovery's answer, says the guest ran there: it has pages only
	 * the destination has now */
	if (__atomic_load_n(&src->dst_running, __ATOMIC_ACQUIRE)) {
		g_set_error(err, MIG_ERROR, EBUSY, "The guest ran on the destination: recover the migration "
			    "(migrate-recover there, migrate with resume: true here)");
		return FALSE;
	}
	src->abandon = TRUE;
	g_cond_broadcast(&src->resume_cond);
	return TRUE;
}

void mig_src_wait_abandoned(struct Src *src, gint64 end)
{
	MigSession *s = src->s;

	while (s->status == MIG_STATUS_POSTCOPY_PAUSED && !__atomic_load_n(&src->quit, __ATOMIC_ACQUIRE) &&
	       g_cond_wait_until(&src->end_cond, &s->lock, end))
		;
}

void mig_src_free(struct Src *src)
{
	/* a paused postcopy waits for a resume that will not come now */
	g_mutex_lock(&src->s->lock);
	src->quit = TRUE;
	g_cond_broadcast(&src->resume_cond);
	g_cond_broadcast(&src->end_cond);
	g_mutex_unlock(&src->s->lock);
	if (src->thread)
		g_thread_join(src->thread);
	if (src->given_fd >= 0)
		close(src->given_fd);
	if (src->inl.resume_fd >= 0)
		close(src->inl.resume_fd);
	g_free(src->resume_uri);
	mig_holes_free(src->holes);
	g_cond_clear(&src->resume_cond);
	g_cond_clear(&src->end_cond);
	mig_params_clear(&src->p);
	g_free(src->uri_text);
	g_mutex_clear(&src->wlock);
	g_mutex_clear(&src->rp_lock);
	g_mutex_clear(&src->urgent_lock);
	g_cond_clear(&src->rp_cond);
	mig_beat_clear(&src->beat);
	g_free(src);
}
