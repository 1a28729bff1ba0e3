/* multifd senders. The migration thread only picks pages and hands them over; the
 * senders look for zero pages and write packets straight from guest memory, so the
 * per-byte work scales with the channels, not with one thread. */
#include "engine/src/multifd.h"
#include "engine/bitmap.h"
#include "engine/holes.h"
#include "channels/frame.h"
#include "channels/hello.h"
#include "channels/wire.h"
#include "channels/io.h"
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PREFETCH_AHEAD 4
/* a batch's pages looked up in the page tables when they lie within this many */
#define HOLES_SPAN (4u * MIG_MF_MAX_PAGES)

/* One batch (or a sync point) for a sender. */
typedef struct Job {
	guint64 sync_pass;        /* non-zero: send SYNC(pass) instead of pages */
	guint block;
	MigRamBlock *rb;
	gsize pages[MIG_MF_MAX_PAGES];
	guint npages;
	/* or, with dev_done set, a device-state chunk (devlane.c), which the done
	 * callback then owns: in dev_buf, or waiting in the pipe dev_pipe */
	guint8 dev_hdr[MIG_MF_DEV_HDR_MAX];
	guint dev_hdr_len;
	guint8 *dev_buf;
	int dev_pipe;
	guint32 dev_len;
	MigMfDoneFn dev_done;
	gpointer dev_done_data;
} Job;

/* Batches queued per sender in precopy. With one, a sender that finished a batch
 * slept until the migration thread was scheduled to hand it the next: two wakeups per
 * 512 KiB, and an idle socket in between on a busy 2-CPU host. With the next batch
 * already queued it goes straight on. Postcopy keeps one, so that little bulk waits
 * in line ahead of what the guest asks for. */
#define MF_QDEPTH 3u

typedef struct Sender {
	struct MfSrc *m;
	guint index;
	int fd;
	GThread *thread;
	GCond cond;
	gboolean sleeping;        /* waiting on cond for a job */
	/* queued jobs, jobs[head % MF_QDEPTH] first; the first stays queued until sent */
	guint head, count;
	Job jobs[MF_QDEPTH];
	guint64 last_done;        /* m->jobs_done when it last finished a job */
} Sender;

struct MfSrc {
	MigSession *s;
	GMutex lock;
	GCond idle_cond;          /* a sender finished a job, or one failed */
	gboolean waiting;         /* someone waits on idle_cond */
	gboolean quit;
	gboolean detect_zero;
	MigHoles *holes;          /* pages that hold nothing are zero without a read */
	char *error;              /* first failure */
	guint next;               /* round-robin start */
	guint dev_waiting;        /* device chunks waiting for a sender: RAM waits behind them */
	guint dev_held, dev_limit;/* device chunks queued or being sent; at most this (0: any) */
	guint64 dev_ticket;       /* device chunks that asked for a sender so far */
	guint64 dev_turn;         /* the ticket whose chunk goes next: first come, first sent */
	guint64 seq;
	guint64 jobs_done;        /* a clock for Sender.last_done */
	guint n;
	Sender *senders;
	MigYieldFn yield;         /* set: chunk huge pages (postcopy break-huge) */
	gulong **sent_maps;       /* set: mark pages written (postcopy) */
	gpointer yield_opaque;
};

static void sender_fail(Sender *sd, const char *what, int rc)
{
	MfSrc *m = sd->m;

	g_mutex_lock(&m->lock);
	if (!m->error)
		m->error = g_strdup_printf("multifd channel %u: %s: %s", sd->index, what, g_strerror(-rc));
	m->quit = TRUE;
	g_cond_broadcast(&m->idle_cond);
	for (guint i = 0; i < m->n; i++)
		g_cond_broadcast(&m->senders[i].cond);
	g_mutex_unlock(&m->lock);
}

/* Break-huge: each data page in chunks, zero pages as one ordinary packet. */
static int send_chunked(Sender *sd, const Job *j, guint64 seq)
{
	MfSrc *m = sd->m;
	gsize ps = j->rb->page_size;

	for (guint i = 0; i < j->npages; i++) {
		guint8 *p = j->rb->host + j->pages[i] * ps;
		guint64 bytes = 0;
		int rc;

		if (mig_mem_is_zero(p, ps)) {
			guint8 hdr[MIG_MF_HDR_LEN], off[8];
			struct iovec iov[2] = { { hdr, sizeof(hdr) }, { off, 8 } };

			mig_mf_hdr_pack(&(MigMfHdr){ .block = j->block, .seq = seq, .nzero = 1 }, hdr);
			mig_put_be64(off, j->pages[i] * ps);
			rc = mig_frame_send(sd->fd, MIG_F_MF_PAGES, 0, iov, 2);
			bytes = MIG_FRAME_HDR_LEN + sizeof(hdr) + 8;
			mig_atomic_add(&m->s->stats.duplicate, 1);
		} else {
			rc = mig_huge_send(sd->fd, j->block, j->rb, j->pages[i], m->yield, m->yield_opaque, &bytes);
			if (rc == 1)
				mig_atomic_add(&m->s->stats.x_break_huge_drops, 1);
			else if (rc == 0)
				mig_atomic_add(&m->s->stats.normal, 1);
		}
		if (rc < 0)
			return rc;
		mig_atomic_add(&m->s->stats.transferred, bytes);
		mig_atomic_add(&m->s->stats.multifd_bytes, bytes);
	}
	return 0;
}

static int send_pages(Sender *sd, const Job *j, guint64 seq)
{
	MfSrc *m = sd->m;
	gsize ps = j->rb->page_size;
	guint8 offs[MIG_MF_MAX_PAGES * 8];
	struct iovec iov[MIG_MF_MAX_PAGES + 2];
	guint8 hdr[MIG_MF_HDR_LEN];
	guint nn = 0, nz = 0;
	int niov = 2;
	guint64 bytes;

	gulong empty[HOLES_SPAN / (8 * sizeof(gulong))];
	gsize first = G_MAXSIZE, last = 0;
	gboolean holes = FALSE;

	/* A page never touched reads as zero, but reading it populates it (on some hosts
	 * with a page of its own, not the shared zero page): a guest's untouched RAM would
	 * cost the source its full size. The page tables tell without a read; a page
	 * written after the look-up is dirty since the tracker armed, and goes again. */
	if (m->detect_zero) {
		for (guint i = 0; i < j->npages; i++) {
			first = MIN(first, j->pages[i]);
			last = MAX(last, j->pages[i]);
		}
		holes = j->npages && last - first < HOLES_SPAN &&
			mig_holes_find(m->holes, j->rb, first, last - first + 1, empty) > 0;
	}
	/* header and offsets first: mig_iov_append looks at the entry before a page's */
	iov[0] = (struct iovec){ hdr, sizeof(hdr) };
	iov[1] = (struct iovec){ offs, 0 };
	/* normal pages fill offs from the front, zero pages from the back. The zero test is
	 * the first touch of each cold page: start the next pages' misses early */
	for (guint i = 0; i < j->npages; i++) {
		guint8 *p = j->rb->host + j->pages[i] * ps;

		if (i + PREFETCH_AHEAD < j->npages)
			__builtin_prefetch(j->rb->host + j->pages[i + PREFETCH_AHEAD] * ps);

		if (m->detect_zero && ((holes && mig_bitmap_test(empty, j->pages[i] - first)) || mig_mem_is_zero(p, ps))) {
			mig_put_be64(offs + 8 * (MIG_MF_MAX_PAGES - 1 - nz++), j->pages[i] * ps);
		} else {
			mig_put_be64(offs + 8 * nn++, j->pages[i] * ps);
			mig_iov_append(iov, &niov, p, ps);
		}
	}
	if (nz)  /* make the offsets contiguous: normal then zero */
		memmove(offs + 8 * nn, offs + 8 * (MIG_MF_MAX_PAGES - nz), nz * 8u);
	mig_mf_hdr_pack(&(MigMfHdr){ .block = j->block, .seq = seq, .nnormal = nn, .nzero = nz }, hdr);
	iov[1].iov_len = (nn + nz) * 8u;
	bytes = MIG_FRAME_HDR_LEN + sizeof(hdr) + (nn + nz) * 8u + (guint64)nn * ps;
	{
		int rc = mig_frame_send(sd->fd, MIG_F_MF_PAGES, 0, iov, niov);

		if (rc < 0)
			return rc;
	}
	mig_atomic_add(&m->s->stats.transferred, bytes);
	mig_atomic_add(&m->s->stats.multifd_bytes, bytes);
	mig_atomic_add(&m->s->stats.normal, nn);
	mig_atomic_add(&m->s->stats.normal_bytes, (guint64)nn * ps);
	mig_atomic_add(&m->s->stats.duplicate, nz);
	return 0;
}

static int send_dev(Sender *sd, const Job *j)
{
	MfSrc *m = sd->m;
	struct iovec iov[2] = { { (void *)j->dev_hdr, j->dev_hdr_len }, { j->dev_buf, j->dev_len } };
	int rc = j->dev_buf ? mig_frame_send(sd->fd, MIG_F_MF_DEV, 0, iov, 2) :
		 mig_frame_send_spliced(sd->fd, MIG_F_MF_DEV, 0, j->dev_hdr, j->dev_hdr_len, j->dev_pipe, j->dev_len);

	if (rc == 0) {
		guint64 bytes = MIG_FRAME_HDR_LEN + j->dev_hdr_len + (guint64)j->dev_len;

		mig_atomic_add(&m->s->stats.transferred, bytes);
		mig_atomic_add(&m->s->stats.multifd_bytes, bytes);
	}
	return rc;
}

/* Wakes whoever waits for a sender to finish; the flag saves a futex call per batch
 * when nobody does. */
static void wake_waiters(MfSrc *m)
{
	if (m->waiting) {
		m->waiting = FALSE;
		g_cond_broadcast(&m->idle_cond);
	}
}

static gpointer sender_main(gpointer opaque)
{
	Sender *sd = opaque;
	MfSrc *m = sd->m;

	mig_io_block_sigpipe();   /* device chunks are spliced into the socket */
	g_mutex_lock(&m->lock);
	for (;;) {
		Job *j;
		guint64 seq;
		gboolean dev;
		int rc;

		while (!sd->count && !m->quit) {
			sd->sleeping = TRUE;
			g_cond_wait(&sd->cond, &m->lock);
			sd->sleeping = FALSE;
		}
		if (m->quit)
			break;
		/* the queue only grows at its tail while we send its head */
		j = &sd->jobs[sd->head % MF_QDEPTH];
		seq = ++m->seq;
		dev = j->dev_done != NULL;
		g_mutex_unlock(&m->lock);
		if (j->sync_pass) {
			guint8 pass[8];
			struct iovec iov = { pass, sizeof(pass) };

			mig_put_be64(pass, j->sync_pass);
			rc = mig_frame_send(sd->fd, MIG_F_MF_SYNC, 0, &iov, 1);
		} else if (j->dev_done) {
			MigMfDoneFn done = j->dev_done;

			rc = send_dev(sd, j);
			j->dev_done = NULL;   /* handed back: free() must not hand it back again */
			done(j->dev_done_data, g_steal_pointer(&j->dev_buf), rc);
		} else if (m->yield && j->rb->page_size > MIG_CHUNK_SIZE) {
			rc = send_chunked(sd, j, seq);
		} else {
			rc = send_pages(sd, j, seq);
		}
		if (rc == 0 && j->npages && m->sent_maps)
			for (guint i = 0; i < j->npages; i++)
				mig_bitmap_set_atomic(m->sent_maps[j->block], j->pages[i]);
		if (rc < 0) {
			sender_fail(sd, j->sync_pass ? "sending sync" : j->npages ? "sending pages" : "sending device state", rc);
			g_mutex_lock(&m->lock);
			break;
		}
		g_mutex_lock(&m->lock);
		m->dev_held -= dev;
		sd->head++;
		sd->count--;
		sd->last_done = ++m->jobs_done;
		wake_waiters(m);
	}
	g_mutex_unlock(&m->lock);
	return NULL;
}

MfSrc *mig_mf_src_adopt(MigSession *s, const int *fds, guint n, gboolean detect_zero)
{
	MfSrc *m = g_new0(MfSrc, 1);

	m->s = s;
	m->n = n;
	m->detect_zero = detect_zero;
	m->holes = mig_holes_new();
	g_mutex_init(&m->lock);
	g_cond_init(&m->idle_cond);
	m->senders = g_new0(Sender, n);
	for (guint i = 0; i < n; i++) {
		Sender *sd = &m->senders[i];

		g_cond_init(&sd->cond);
		sd->m = m;
		sd->index = i;
		sd->fd = fds[i];
	}
	for (guint i = 0; i < n; i++) {
		g_autofree char *name = g_strdup_printf("mig/src/send/%u", i);

		m->senders[i].thread = g_thread_new(name, sender_main, &m->senders[i]);
	}
	return m;
}

MfSrc *mig_mf_src_start(MigSession *s, const MigUri *uri, const MigParams *p, guint n, gboolean detect_zero,
			 GError **err)
{
	g_autofree int *fds = g_new(int, n);

	if (!mig_chan_batch_join(mig_chan_batch_start(s, uri, p, n, 0, 0), fds, NULL, err))
		return NULL;
	return mig_mf_src_adopt(s, fds, n, detect_zero);
}

static gboolean failed(MfSrc *m, GError **err)
{
	if (!m->quit)
		return FALSE;
	g_set_error(err, MIG_ERROR, EIO, "%s", m->error ? m->error : "migration cancelled");
	return TRUE;
}

/* Precopy keeps a few batches queued per sender; postcopy (pages marked as sent) one. */
static guint depth(MfSrc *m)
{
	return m->sent_maps ? 1u : MF_QDEPTH;
}

/* Caller holds the lock and found room in sd's queue. */
static void push_job(Sender *sd, guint64 sync_pass, guint block, MigRamBlock *rb, const gsize *pages, guint n)
{
	Job *j = &sd->jobs[(sd->head + sd->count) % MF_QDEPTH];

	j->sync_pass = sync_pass;
	j->block = block;
	j->rb = rb;
	if (n)
		memcpy(j->pages, pages, n * sizeof(*pages));
	j->npages = n;
	j->dev_done = NULL;
	sd->count++;
	if (sd->sleeping)
		g_cond_signal(&sd->cond);
}

static void wait_idle_cond(MfSrc *m)
{
	m->waiting = TRUE;
	g_cond_wait(&m->idle_cond, &m->lock);
}

/* The least loaded sender with fewer than limit jobs. Among equals, round-robin (every
 * channel keeps work), or with warm the one that finished a job last: its thread, its
 * socket and the receiver at the other end are still running. Device chunks are few
 * in flight (x-device-chunks-in-flight); round-robin over 32 channels woke a cold
 * sender and receiver for each (docs/benchmarks.md, device-downtime). */
static Sender *least_loaded(MfSrc *m, guint limit, gboolean warm)
{
	Sender *sd = NULL;

	for (guint k = 0; k < m->n; k++) {
		Sender *c = &m->senders[(m->next + k) % m->n];

		if (c->count < limit || (warm && sd && c->count == limit && c->last_done > sd->last_done)) {
			sd = c;
			limit = c->count;
		}
	}
	return sd;
}

gboolean mig_mf_src_queue(MfSrc *m, guint block, MigRamBlock *rb, const gsize *pages, guint n, GError **err)
{
	Sender *sd = NULL;

	g_assert(n > 0 && n <= MIG_MF_MAX_PAGES);
	g_mutex_lock(&m->lock);
	while (!sd) {
		guint best = depth(m);

		if (failed(m, err)) {
			g_mutex_unlock(&m->lock);
			return FALSE;
		}
		sd = m->dev_waiting ? NULL : least_loaded(m, best, FALSE);
		if (!sd)
			wait_idle_cond(m);
	}
	m->next = (sd->index + 1) % m->n;
	push_job(sd, 0, block, rb, pages, n);
	g_mutex_unlock(&m->lock);
	return TRUE;
}

void mig_mf_src_limit_dev(MfSrc *m, guint max)
{
	g_mutex_lock(&m->lock);
	m->dev_limit = max;
	g_cond_broadcast(&m->idle_cond);
	g_mutex_unlock(&m->lock);
}

gboolean mig_mf_src_queue_dev(MfSrc *m, const void *hdr, guint hdr_len, guint8 *buf, int pipe_fd,
			      guint32 len, MigMfDoneFn done, gpointer done_data, GError **err)
{
	Sender *sd = NULL;
	Job *j;
	guint64 ticket;

	g_assert(hdr_len <= MIG_MF_DEV_HDR_MAX && done);
	g_mutex_lock(&m->lock);
	ticket = m->dev_ticket++;
	m->dev_waiting++;
	while (!sd) {
		if (failed(m, err)) {
			m->dev_waiting--;
			g_cond_broadcast(&m->idle_cond);
			g_mutex_unlock(&m->lock);
			return FALSE;
		}
		/* first come, first sent: with fewer chunks in flight than devices, a chunk
		 * that just came would otherwise often overtake those woken with it, and a
		 * device left behind loads its last chunks alone while the guest stays
		 * stopped (docs/benchmarks.md, device-downtime). A failure ends every
		 * waiter, so a ticket that leaves without its turn holds nobody up. */
		if (ticket != m->dev_turn || (m->dev_limit && m->dev_held >= m->dev_limit) ||
		    !(sd = least_loaded(m, depth(m), TRUE)))
			wait_idle_cond(m);
	}
	m->dev_turn++;
	m->dev_waiting--;
	m->dev_held++;
	mig_atomic_set(&m->s->stats.x_device_in_flight_peak,
		       MAX(mig_atomic_get(&m->s->stats.x_device_in_flight_peak), (guint64)m->dev_held));
	m->next = (sd->index + 1) % m->n;
	/* appended at the tail: a channel carries its device chunks in the order they
	 * were handed out, which the destination's reordering relies on (devlane.h) */
	push_job(sd, 0, 0, NULL, NULL, 0);
	j = &sd->jobs[(sd->head + sd->count - 1) % MF_QDEPTH];
	memcpy(j->dev_hdr, hdr, hdr_len);
	j->dev_hdr_len = hdr_len;
	j->dev_buf = buf;
	j->dev_pipe = pipe_fd;
	j->dev_len = len;
	j->dev_done_data = done_data;
	j->dev_done = done;
	/* RAM batches held back by device chunks may go now, or the next ticket's chunk
	 * if there is still a place for it (else the next chunk written wakes it) */
	if (!m->dev_waiting || !m->dev_limit || m->dev_held < m->dev_limit)
		g_cond_broadcast(&m->idle_cond);
	g_mutex_unlock(&m->lock);
	return TRUE;
}

guint mig_mf_src_dev_waiting(MfSrc *m)
{
	guint n;

	g_mutex_lock(&m->lock);
	n = m->dev_waiting;
	g_mutex_unlock(&m->lock);
	return n;
}

static gboolean wait_all_idle(MfSrc *m, GError **err)
{
	for (;;) {
		gboolean busy = FALSE;

		if (failed(m, err))
			return FALSE;
		for (guint i = 0; i < m->n; i++)
			busy |= m->senders[i].count > 0;
		if (!busy)
			return TRUE;
		wait_idle_cond(m);
	}
}

/* Each channel is a FIFO, so a SYNC queued behind a channel's batches follows them
 * onto the wire; the pass is over once every queue has drained. */
gboolean mig_mf_src_sync(MfSrc *m, guint64 pass, GError **err)
{
	gboolean ok = TRUE;

	g_mutex_lock(&m->lock);
	for (guint i = 0; i < m->n && ok; i++) {
		Sender *sd = &m->senders[i];

		while ((ok = !failed(m, err)) && sd->count >= MF_QDEPTH)
			wait_idle_cond(m);
		if (ok)
			push_job(sd, pass, 0, NULL, NULL, 0);
	}
	if (ok)
		ok = wait_all_idle(m, err);
	g_mutex_unlock(&m->lock);
	return ok;
}

void mig_mf_src_setsockopt(MfSrc *m, int level, int opt, const void *val, socklen_t len)
{
	g_mutex_lock(&m->lock);
	for (guint i = 0; i < m->n; i++)
		if (m->senders[i].fd >= 0)
			setsockopt(m->senders[i].fd, level, opt, val, len);
	g_mutex_unlock(&m->lock);
}

void mig_mf_src_break_huge(MfSrc *m, MigYieldFn yield, gpointer opaque)
{
	g_mutex_lock(&m->lock);
	m->yield = yield;
	m->yield_opaque = opaque;
	g_mutex_unlock(&m->lock);
}

void mig_mf_src_mark_sent(MfSrc *m, gulong **maps)
{
	g_mutex_lock(&m->lock);
	m->sent_maps = maps;
	g_mutex_unlock(&m->lock);
}

guint mig_mf_src_channels(MfSrc *m)
{
	return m->n;
}

void mig_mf_src_abort(MfSrc *m)
{
	g_mutex_lock(&m->lock);
	if (!m->error)
		m->error = g_strdup("migration cancelled");
	m->quit = TRUE;
	for (guint i = 0; i < m->n; i++) {
		if (m->senders[i].fd >= 0)
			shutdown(m->senders[i].fd, SHUT_RDWR);
		g_cond_broadcast(&m->senders[i].cond);
	}
	g_cond_broadcast(&m->idle_cond);
	g_mutex_unlock(&m->lock);
}

void mig_mf_src_yank(MfSrc *m)
{
	g_mutex_lock(&m->lock);
	for (guint i = 0; i < m->n; i++)
		if (m->senders[i].fd >= 0)
			shutdown(m->senders[i].fd, SHUT_RDWR);
	g_mutex_unlock(&m->lock);
}

void mig_mf_src_free(MfSrc *m)
{
	if (!m)
		return;
	g_mutex_lock(&m->lock);
	m->quit = TRUE;
	for (guint i = 0; i < m->n; i++)
		g_cond_broadcast(&m->senders[i].cond);
	g_mutex_unlock(&m->lock);
	for (guint i = 0; i < m->n; i++) {
		Sender *sd = &m->senders[i];

		if (sd->thread)
			g_thread_join(sd->thread);
		/* device chunks handed over but never sent go back to their owner */
		for (guint k = 0; k < sd->count; k++) {
			Job *j = &sd->jobs[(sd->head + k) % MF_QDEPTH];

			if (j->dev_done)
				j->dev_done(j->dev_done_data, g_steal_pointer(&j->dev_buf), -ECANCELED);
		}
		if (sd->fd >= 0)
			mig_io_close(sd->fd);
		g_cond_clear(&sd->cond);
	}
	mig_holes_free(m->holes);
	g_free(m->senders);
	g_free(m->error);
	g_cond_clear(&m->idle_cond);
	g_mutex_clear(&m->lock);
	g_free(m);
}
