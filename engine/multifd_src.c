/* multifd senders. The migration thread only picks pages and hands them over; the
 * senders look for zero pages and write packets straight from guest memory, so the
 * per-byte work scales with the channels, not with one thread. */
#include "engine/multifd.h"
#include "engine/unit.h"
#include "channels/frame.h"
#include "channels/hello.h"
#include "channels/io.h"
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PREFETCH_AHEAD 4

typedef struct Sender {
	struct MfSrc *m;
	guint index;
	int fd;
	GThread *thread;
	GCond cond;
	/* the job, valid while busy */
	gboolean busy;
	guint64 sync_pass;        /* non-zero: send SYNC(pass) instead of pages */
	guint block;
	MigRamBlock *rb;
	gsize pages[MIG_MF_MAX_PAGES];
	guint npages;
	/* or a device-state chunk (devlane.c), which the done callback then owns */
	guint8 dev_hdr[MIG_MF_DEV_HDR_MAX];
	guint dev_hdr_len;
	guint8 *dev_buf;
	int dev_pipe;             /* with dev_buf NULL: the chunk waits in this pipe */
	guint32 dev_len;
	MigMfDoneFn dev_done;
	gpointer dev_done_data;
} Sender;

struct MfSrc {
	MigSession *s;
	GMutex lock;
	GCond idle_cond;          /* a sender became idle, or one failed */
	gboolean quit;
	gboolean detect_zero;
	char *error;              /* first failure */
	guint next;               /* round-robin start */
	guint dev_waiting;        /* device chunks waiting for a sender: RAM waits behind them */
	guint64 seq;
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
static int send_chunked(Sender *sd, guint64 seq)
{
	MfSrc *m = sd->m;
	gsize ps = sd->rb->page_size;

	for (guint i = 0; i < sd->npages; i++) {
		guint8 *p = sd->rb->host + sd->pages[i] * ps;
		guint64 bytes = 0;
		int rc;

		if (mig_mem_is_zero(p, ps)) {
			guint32 hdr[6] = { GUINT32_TO_BE(sd->block), 0, GUINT32_TO_BE((guint32)(seq >> 32)),
					   GUINT32_TO_BE((guint32)seq), 0, GUINT32_TO_BE(1) };
			guint64 off = GUINT64_TO_BE(sd->pages[i] * ps);
			struct iovec iov[2] = { { hdr, sizeof(hdr) }, { &off, 8 } };

			rc = mig_frame_send(sd->fd, MIG_F_MF_PAGES, 0, iov, 2);
			bytes = MIG_FRAME_HDR_LEN + sizeof(hdr) + 8;
			mig_atomic_add(&m->s->stats.duplicate, 1);
		} else {
			rc = mig_huge_send(sd->fd, sd->block, sd->rb, sd->pages[i], m->yield, m->yield_opaque, &bytes);
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

static int send_pages(Sender *sd, guint64 seq)
{
	MfSrc *m = sd->m;
	gsize ps = sd->rb->page_size;
	guint64 offs[MIG_MF_MAX_PAGES];
	struct iovec iov[MIG_MF_MAX_PAGES + 2];
	guint32 hdr[6];
	guint nn = 0, nz = 0;
	guint64 bytes;

	/* normal pages fill offs from the front, zero pages from the back. The zero test is
	 * the first touch of each cold page: start the next pages' misses early */
	for (guint i = 0; i < sd->npages; i++) {
		guint8 *p = sd->rb->host + sd->pages[i] * ps;

		if (i + PREFETCH_AHEAD < sd->npages)
			__builtin_prefetch(sd->rb->host + sd->pages[i + PREFETCH_AHEAD] * ps);

		if (m->detect_zero && mig_mem_is_zero(p, ps)) {
			offs[MIG_MF_MAX_PAGES - 1 - nz++] = GUINT64_TO_BE(sd->pages[i] * ps);
		} else {
			offs[nn] = GUINT64_TO_BE(sd->pages[i] * ps);
			iov[2 + nn] = (struct iovec){ p, ps };
			nn++;
		}
	}
	if (nz)  /* make the offsets contiguous: normal then zero */
		memmove(&offs[nn], &offs[MIG_MF_MAX_PAGES - nz], nz * sizeof(offs[0]));
	hdr[0] = GUINT32_TO_BE(sd->block);
	hdr[1] = 0;
	hdr[2] = GUINT32_TO_BE((guint32)(seq >> 32));
	hdr[3] = GUINT32_TO_BE((guint32)seq);
	hdr[4] = GUINT32_TO_BE(nn);
	hdr[5] = GUINT32_TO_BE(nz);
	iov[0] = (struct iovec){ hdr, sizeof(hdr) };
	iov[1] = (struct iovec){ offs, (nn + nz) * 8u };
	bytes = MIG_FRAME_HDR_LEN + sizeof(hdr) + (nn + nz) * 8u + (guint64)nn * ps;
	{
		int rc = mig_frame_send(sd->fd, MIG_F_MF_PAGES, 0, iov, (int)nn + 2);

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

static int send_dev(Sender *sd)
{
	MfSrc *m = sd->m;
	struct iovec iov[2] = { { sd->dev_hdr, sd->dev_hdr_len }, { sd->dev_buf, sd->dev_len } };
	int rc = sd->dev_buf ? mig_frame_send(sd->fd, MIG_F_MF_DEV, 0, iov, 2) :
		 mig_frame_send_spliced(sd->fd, MIG_F_MF_DEV, 0, sd->dev_hdr, sd->dev_hdr_len, sd->dev_pipe, sd->dev_len);

	if (rc == 0) {
		guint64 bytes = MIG_FRAME_HDR_LEN + sd->dev_hdr_len + (guint64)sd->dev_len;

		mig_atomic_add(&m->s->stats.transferred, bytes);
		mig_atomic_add(&m->s->stats.multifd_bytes, bytes);
	}
	return rc;
}

static gpointer sender_main(gpointer opaque)
{
	Sender *sd = opaque;
	MfSrc *m = sd->m;

	mig_io_block_sigpipe();   /* device chunks are spliced into the socket */
	g_mutex_lock(&m->lock);
	for (;;) {
		guint64 seq, pass;
		int rc;

		while (!sd->busy && !m->quit)
			g_cond_wait(&sd->cond, &m->lock);
		if (m->quit)
			break;
		pass = sd->sync_pass;
		seq = ++m->seq;
		g_mutex_unlock(&m->lock);
		if (pass) {
			guint64 be = GUINT64_TO_BE(pass);
			struct iovec iov = { &be, sizeof(be) };

			rc = mig_frame_send(sd->fd, MIG_F_MF_SYNC, 0, &iov, 1);
		} else if (sd->dev_done) {
			MigMfDoneFn done = g_steal_pointer(&sd->dev_done);

			rc = send_dev(sd);
			done(sd->dev_done_data, g_steal_pointer(&sd->dev_buf), rc);
		} else if (m->yield && sd->rb->page_size > MIG_CHUNK_SIZE) {
			rc = send_chunked(sd, seq);
		} else {
			rc = send_pages(sd, seq);
		}
		if (rc == 0 && !pass && sd->npages && m->sent_maps)
			for (guint i = 0; i < sd->npages; i++)
				mig_bitmap_set_atomic(m->sent_maps[sd->block], sd->pages[i]);
		if (rc < 0) {
			sender_fail(sd, pass ? "sending sync" : "sending pages", rc);
			g_mutex_lock(&m->lock);
			break;
		}
		g_mutex_lock(&m->lock);
		sd->busy = FALSE;
		sd->sync_pass = 0;
		sd->npages = 0;
		g_cond_broadcast(&m->idle_cond);
	}
	g_mutex_unlock(&m->lock);
	return NULL;
}

MfSrc *mig_mf_src_start(MigSession *s, const MigUri *uri, guint n, gboolean detect_zero, GError **err)
{
	MfSrc *m = g_new0(MfSrc, 1);

	m->s = s;
	m->n = n;
	m->detect_zero = detect_zero;
	g_mutex_init(&m->lock);
	g_cond_init(&m->idle_cond);
	m->senders = g_new0(Sender, n);
	for (guint i = 0; i < n; i++) {
		m->senders[i].fd = -1;
		g_cond_init(&m->senders[i].cond);
	}
	for (guint i = 0; i < n; i++) {
		Sender *sd = &m->senders[i];
		int fd = mig_chan_open(s, uri, MIG_CHAN_MULTIFD, i, err);

		if (fd < 0) {
			mig_mf_src_free(m);
			return NULL;
		}
		g_mutex_lock(&m->lock);
		sd->m = m;
		sd->index = i;
		sd->fd = fd;
		g_mutex_unlock(&m->lock);
	}
	for (guint i = 0; i < n; i++) {
		g_autofree char *name = g_strdup_printf("mig/src/send/%u", i);

		m->senders[i].thread = g_thread_new(name, sender_main, &m->senders[i]);
	}
	return m;
}

static gboolean failed(MfSrc *m, GError **err)
{
	if (!m->quit)
		return FALSE;
	g_set_error(err, MIG_ERROR, EIO, "%s", m->error ? m->error : "migration cancelled");
	return TRUE;
}

static Sender *idle_sender(MfSrc *m)
{
	for (guint k = 0; k < m->n; k++) {
		Sender *c = &m->senders[(m->next + k) % m->n];

		if (!c->busy)
			return c;
	}
	return NULL;
}

gboolean mig_mf_src_queue(MfSrc *m, guint block, MigRamBlock *rb, const gsize *pages, guint n, GError **err)
{
	Sender *sd = NULL;

	g_assert(n > 0 && n <= MIG_MF_MAX_PAGES);
	g_mutex_lock(&m->lock);
	while (!sd) {
		if (failed(m, err)) {
			g_mutex_unlock(&m->lock);
			return FALSE;
		}
		sd = m->dev_waiting ? NULL : idle_sender(m);
		if (!sd)
			g_cond_wait(&m->idle_cond, &m->lock);
	}
	m->next = (sd->index + 1) % m->n;
	sd->block = block;
	sd->rb = rb;
	memcpy(sd->pages, pages, n * sizeof(*pages));
	sd->npages = n;
	sd->sync_pass = 0;
	sd->busy = TRUE;
	g_cond_signal(&sd->cond);
	g_mutex_unlock(&m->lock);
	return TRUE;
}

gboolean mig_mf_src_queue_dev(MfSrc *m, const void *hdr, guint hdr_len, guint8 *buf, int pipe_fd,
			      guint32 len, MigMfDoneFn done, gpointer done_data, GError **err)
{
	Sender *sd = NULL;

	g_assert(hdr_len <= MIG_MF_DEV_HDR_MAX && done);
	g_mutex_lock(&m->lock);
	m->dev_waiting++;
	while (!sd) {
		if (failed(m, err)) {
			m->dev_waiting--;
			g_cond_broadcast(&m->idle_cond);
			g_mutex_unlock(&m->lock);
			return FALSE;
		}
		if (!(sd = idle_sender(m)))
			g_cond_wait(&m->idle_cond, &m->lock);
	}
	m->dev_waiting--;
	m->next = (sd->index + 1) % m->n;
	memcpy(sd->dev_hdr, hdr, hdr_len);
	sd->dev_hdr_len = hdr_len;
	sd->dev_buf = buf;
	sd->dev_pipe = pipe_fd;
	sd->dev_len = len;
	sd->dev_done = done;
	sd->dev_done_data = done_data;
	sd->npages = 0;
	sd->sync_pass = 0;
	sd->busy = TRUE;
	g_cond_signal(&sd->cond);
	/* RAM batches held back by this chunk may go now */
	if (!m->dev_waiting)
		g_cond_broadcast(&m->idle_cond);
	g_mutex_unlock(&m->lock);
	return TRUE;
}

static gboolean wait_all_idle(MfSrc *m, GError **err)
{
	for (;;) {
		gboolean busy = FALSE;

		if (failed(m, err))
			return FALSE;
		for (guint i = 0; i < m->n; i++)
			busy |= m->senders[i].busy;
		if (!busy)
			return TRUE;
		g_cond_wait(&m->idle_cond, &m->lock);
	}
}

gboolean mig_mf_src_sync(MfSrc *m, guint64 pass, GError **err)
{
	gboolean ok;

	g_mutex_lock(&m->lock);
	ok = wait_all_idle(m, err);
	if (ok) {
		for (guint i = 0; i < m->n; i++) {
			m->senders[i].sync_pass = pass;
			m->senders[i].busy = TRUE;
			g_cond_signal(&m->senders[i].cond);
		}
		ok = wait_all_idle(m, err);
	}
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
		if (sd->dev_done)   /* a device chunk handed over but never sent */
			sd->dev_done(sd->dev_done_data, g_steal_pointer(&sd->dev_buf), -ECANCELED);
		if (sd->fd >= 0)
			close(sd->fd);
		g_cond_clear(&sd->cond);
	}
	g_free(m->senders);
	g_free(m->error);
	g_cond_clear(&m->idle_cond);
	g_mutex_clear(&m->lock);
	g_free(m);
}
