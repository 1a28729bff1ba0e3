/* io_uring for file migration. Each request keeps a slot (buffer, length, offset) so a
 * short completion is resubmitted for its rest: regular files only come up short at
 * the end of the file or of the disk, and the resubmission then reports which. */
#include "engine/ring.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <liburing.h>

/* A request: one buffer (iov[0], niov 1) or a vector of pieces (readv/writev). The
 * kernel may read the iovecs until the request completes, so they live in the slot. */
typedef struct Slot {
	struct iovec iov[MIG_RING_MAX_IOV];
	guint niov;
	guint64 off;
	gboolean write;
} Slot;

/* The vectored request being gathered (mig_ring_vec_*). */
typedef struct Gather {
	struct iovec iov[MIG_RING_MAX_IOV];
	guint niov;
	gsize len;
	guint64 off;
	gboolean write, open;
} Gather;

struct MigRing {
	struct io_uring ring;
	guint depth, inflight, peak, unsubmitted;
	guint limit;             /* requests in flight at most now (<= depth) */
	gsize max_io;            /* bytes per request at most now */
	Slot *slots;
	guint *free_slots;
	guint nfree;
	guint64 bytes;
	guint64 fill_bytes;      /* of bytes: filler (mig_ring_vec_fill) */
	guint64 requests;        /* queued, a resubmitted rest not counted */
	Gather g;
	guint8 *fill_zero;       /* MIG_RING_FILL_MAX zero bytes, written in gaps; never written to */
	guint8 *fill_discard;    /* MIG_RING_FILL_MAX bytes gaps are read into, never read */
	int err;                 /* first failure (negative errno), 0 if none */
	guint64 err_off;
	gboolean err_write;
	gboolean broken;         /* the kernel refused a submission: nothing more can complete */
};

MigRing *mig_ring_new(int fd, guint depth, GError **err)
{
	MigRing *r = g_new0(MigRing, 1);
	int rc;

	r->depth = r->limit = depth;
	r->max_io = MIG_RING_MAX_IO;
	rc = io_uring_queue_init(depth, &r->ring, 0);
	if (rc < 0) {
		g_set_error(err, MIG_ERROR, -rc, "io_uring_queue_init: %s", g_strerror(-rc));
		g_free(r);
		return NULL;
	}
	rc = io_uring_register_files(&r->ring, &fd, 1);
	if (rc < 0) {
		g_set_error(err, MIG_ERROR, -rc, "io_uring_register_files: %s", g_strerror(-rc));
		io_uring_queue_exit(&r->ring);
		g_free(r);
		return NULL;
	}
	r->slots = g_new0(Slot, depth);
	r->free_slots = g_new(guint, depth);
	for (guint i = 0; i < depth; i++)
		r->free_slots[r->nfree++] = depth - 1 - i;
	return r;
}

void mig_ring_free(MigRing *r)
{
	if (!r)
		return;
	mig_ring_drain(r, NULL);
	/* the ring's own teardown is deferred in the kernel, and with it the file's last
	 * reference: a file removed right after the migration would keep its space a while */
	io_uring_unregister_files(&r->ring);
	io_uring_queue_exit(&r->ring);
	g_free(r->slots);
	g_free(r->free_slots);
	free(r->fill_zero);
	free(r->fill_discard);
	g_free(r);
}

static void prep(MigRing *r, guint slot)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
	Slot *s = &r->slots[slot];

	/* a free slot means a free SQE: the ring has as many entries as slots */
	g_assert(sqe);
	if (s->niov == 1 && s->write)
		io_uring_prep_write(sqe, 0, s->iov[0].iov_base, (unsigned)s->iov[0].iov_len, s->off);
	else if (s->niov == 1)
		io_uring_prep_read(sqe, 0, s->iov[0].iov_base, (unsigned)s->iov[0].iov_len, s->off);
	else if (s->write)
		io_uring_prep_writev(sqe, 0, s->iov, s->niov, s->off);
	else
		io_uring_prep_readv(sqe, 0, s->iov, s->niov, s->off);
	sqe->flags |= IOSQE_FIXED_FILE;
	io_uring_sqe_set_data64(sqe, slot);
	r->unsubmitted++;
}

static gsize slot_len(const Slot *s)
{
	gsize len = 0;

	for (guint i = 0; i < s->niov; i++)
		len += s->iov[i].iov_len;
	return len;
}

/* The rest of a request that came up short: its pieces from byte done on. */
static void advance(Slot *s, gsize done)
{
	guint k = 0;

	while (k < s->niov && done >= s->iov[k].iov_len)
		done -= s->iov[k++].iov_len;
	memmove(s->iov, s->iov + k, (s->niov - k) * sizeof(s->iov[0]));
	s->niov -= k;
	s->iov[0].iov_base = (guint8 *)s->iov[0].iov_base + done;
	s->iov[0].iov_len -= done;
}

static void complete(MigRing *r, guint slot, int res)
{
	Slot *s = &r->slots[slot];
	gsize len = slot_len(s);

	if (res < 0 || (res == 0 && len)) {
		if (!r->err) {
			/* nothing written and no error: the disk has no room left */
			r->err = res < 0 ? res : (s->write ? -ENOSPC : -ENODATA);
			r->err_off = s->off;
			r->err_write = s->write;
		}
	} else {
		r->bytes += (guint64)res;
		if ((gsize)res < len && !r->err) {
			advance(s, (gsize)res);
			s->off += (guint64)res;
			prep(r, slot);
			return;
		}
	}
	r->inflight--;
	r->free_slots[r->nfree++] = slot;
}

/* Submits what is queued and reaps every completion there is, waiting for at least
 * want of them. */
static void reap(MigRing *r, guint want)
{
	struct io_uring_cqe *cqes[64];

	for (;;) {
		unsigned n;
		int rc;

		if (r->broken)
			return;
		if (r->unsubmitted || want) {
			rc = io_uring_submit_and_wait(&r->ring, MIN(want, r->inflight));
			if (rc >= 0) {
				r->unsubmitted = 0;
			} else if (rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
				if (!r->err)
					r->err = rc;
				r->broken = TRUE;
				return;
			}
		}
		n = io_uring_peek_batch_cqe(&r->ring, cqes, G_N_ELEMENTS(cqes));
		for (unsigned i = 0; i < n; i++)
			complete(r, (guint)io_uring_cqe_get_data64(cqes[i]), cqes[i]->res);
		io_uring_cq_advance(&r->ring, n);
		want = n >= want ? 0 : want - n;
		if (!want && !r->unsubmitted)
			return;
		if (!r->inflight)
			return;
	}
}

static gboolean report(MigRing *r, GError **err)
{
	if (!r->err)
		return TRUE;
	g_set_error(err, MIG_ERROR, -r->err, "%s the file at offset %" G_GUINT64_FORMAT ": %s",
		    r->err_write ? "writing" : "reading", r->err_off,
		    r->err == -ENODATA ? "the file ends there (truncated)" : g_strerror(-r->err));
	return FALSE;
}

/* A free slot (reaping for one when none is, or when the limit is reached), or NULL
 * once the ring failed. */
static Slot *take_slot(MigRing *r)
{
	for (;;) {
		if (r->err || r->broken)
			return NULL;
		if (!r->nfree || r->inflight >= r->limit)
			reap(r, r->inflight >= r->limit ? r->inflight - r->limit + 1 : 1);
		if (r->broken)
			return NULL;
		if (r->nfree && r->inflight < r->limit)
			return &r->slots[r->free_slots[r->nfree - 1]];
	}
}

static void push_slot(MigRing *r)
{
	prep(r, r->free_slots[--r->nfree]);
	r->inflight++;
	r->requests++;
	r->peak = MAX(r->peak, r->inflight);
	/* submitted in batches: one syscall per few requests, not per request; at a low
	 * limit (a fault is waiting) at once */
	if (r->unsubmitted >= MIN(8u, r->limit))
		reap(r, 0);
}

static gboolean queue(MigRing *r, guint8 *buf, gsize len, guint64 off, gboolean write, GError **err)
{
	while (len) {
		gsize n = MIN(len, r->max_io);
		Slot *s = take_slot(r);

		if (!s)
			return report(r, err);
		s->iov[0] = (struct iovec){ buf, n };
		s->niov = 1;
		s->off = off;
		s->write = write;
		push_slot(r);
		buf += n;
		off += n;
		len -= n;
	}
	return report(r, err);
}

gboolean mig_ring_write(MigRing *r, const void *buf, gsize len, guint64 off, GError **err)
{
	return queue(r, (guint8 *)buf, len, off, TRUE, err);
}

gboolean mig_ring_read(MigRing *r, void *buf, gsize len, guint64 off, GError **err)
{
	return queue(r, buf, len, off, FALSE, err);
}

gboolean mig_ring_reserve(MigRing *r, GError **err)
{
	take_slot(r);
	return report(r, err);
}

gboolean mig_ring_drain(MigRing *r, GError **err)
{
	while (r->inflight && !r->broken)
		reap(r, r->inflight);
	return report(r, err);
}

guint mig_ring_depth_peak(const MigRing *r)
{
	return r->peak;
}

guint64 mig_ring_bytes(const MigRing *r)
{
	return r->bytes;
}

guint64 mig_ring_requests(const MigRing *r)
{
	return r->requests;
}

guint64 mig_ring_fill_bytes(const MigRing *r)
{
	return r->fill_bytes;
}

void mig_ring_throttle(MigRing *r, guint limit, gsize max_io)
{
	r->limit = CLAMP(limit, 1u, r->depth);
	r->max_io = CLAMP(max_io, MIG_RING_ALIGN, (gsize)MIG_RING_MAX_IO);
}

/* Queues the gathered request, if any. */
static gboolean vec_flush(MigRing *r, GError **err)
{
	Gather *g = &r->g;
	Slot *s;

	if (!g->open || !g->niov) {
		g->open = FALSE;
		return report(r, err);
	}
	g->open = FALSE;
	if (!(s = take_slot(r)))
		return report(r, err);
	memcpy(s->iov, g->iov, g->niov * sizeof(g->iov[0]));
	s->niov = g->niov;
	s->off = g->off;
	s->write = g->write;
	push_slot(r);
	return report(r, err);
}

/* fill: the filler buffer (buf, its start, repeated); gap: counted as filler */
static gboolean vec_piece(MigRing *r, guint8 *buf, gsize len, gboolean fill, gboolean gap, GError **err)
{
	Gather *g = &r->g;

	g_assert(g->open);
	while (len) {
		gsize n = MIN(len, r->max_io - g->len);
		struct iovec *last = g->niov ? &g->iov[g->niov - 1] : NULL;

		if (fill)
			n = MIN(n, MIG_RING_FILL_MAX);
		if (last && !fill && (guint8 *)last->iov_base + last->iov_len == buf) {
			last->iov_len += n;
		} else {
			g->iov[g->niov++] = (struct iovec){ buf, n };
		}
		g->len += n;
		if (gap)
			r->fill_bytes += n;
		len -= n;
		if (!fill)
			buf += n;
		if (g->len == r->max_io || g->niov == MIG_RING_MAX_IOV) {
			guint64 next = g->off + g->len;

			if (!vec_flush(r, err))
				return FALSE;
			*g = (Gather){ .off = next, .write = g->write, .open = TRUE };
		}
	}
	return TRUE;
}

void mig_ring_vec_begin(MigRing *r, guint64 off, gboolean write)
{
	g_assert(!r->g.open);
	r->g = (Gather){ .off = off, .write = write, .open = TRUE };
}

gboolean mig_ring_vec_add(MigRing *r, void *buf, gsize len, gboolean gap, GError **err)
{
	return vec_piece(r, buf, len, FALSE, gap, err);
}

gboolean mig_ring_vec_fill(MigRing *r, gsize len, GError **err)
{
	guint8 **fill = r->g.write ? &r->fill_zero : &r->fill_discard;

	if (!*fill) {
		if (posix_memalign((void **)fill, MIG_RING_ALIGN, MIG_RING_FILL_MAX))
			g_error("out of memory for an I/O filler");
		memset(*fill, 0, MIG_RING_FILL_MAX);
	}
	return vec_piece(r, *fill, len, TRUE, TRUE, err);
}

gboolean mig_ring_vec_end(MigRing *r, GError **err)
{
	return vec_flush(r, err);
}
