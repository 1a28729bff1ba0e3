/* io_uring for file migration. Each request keeps a slot (buffer, length, offset) so a
 * short completion is resubmitted for its rest: regular files only come up short at
 * the end of the file or of the disk, and the resubmission then reports which. */
#include "engine/ring.h"
#include <errno.h>
#include <liburing.h>

typedef struct Slot {
	guint8 *buf;
	gsize len;
	guint64 off;
	gboolean write;
} Slot;

struct MigRing {
	struct io_uring ring;
	guint depth, inflight, peak, unsubmitted;
	Slot *slots;
	guint *free_slots;
	guint nfree;
	guint64 bytes;
	guint64 requests;        /* queued, a resubmitted rest not counted */
	int err;                 /* first failure (negative errno), 0 if none */
	guint64 err_off;
	gboolean err_write;
	gboolean broken;         /* the kernel refused a submission: nothing more can complete */
};

MigRing *mig_ring_new(int fd, guint depth, GError **err)
{
	MigRing *r = g_new0(MigRing, 1);
	int rc;

	r->depth = depth;
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
	g_free(r);
}

static void prep(MigRing *r, guint slot)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
	Slot *s = &r->slots[slot];

	/* a free slot means a free SQE: the ring has as many entries as slots */
	g_assert(sqe);
	if (s->write)
		io_uring_prep_write(sqe, 0, s->buf, (unsigned)s->len, s->off);
	else
		io_uring_prep_read(sqe, 0, s->buf, (unsigned)s->len, s->off);
	sqe->flags |= IOSQE_FIXED_FILE;
	io_uring_sqe_set_data64(sqe, slot);
	r->unsubmitted++;
}

static void complete(MigRing *r, guint slot, int res)
{
	Slot *s = &r->slots[slot];

	if (res < 0 || (res == 0 && s->len)) {
		if (!r->err) {
			/* nothing written and no error: the disk has no room left */
			r->err = res < 0 ? res : (s->write ? -ENOSPC : -ENODATA);
			r->err_off = s->off;
			r->err_write = s->write;
		}
	} else {
		r->bytes += (guint64)res;
		if ((gsize)res < s->len && !r->err) {
			s->buf += res;
			s->len -= (gsize)res;
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

static gboolean queue(MigRing *r, guint8 *buf, gsize len, guint64 off, gboolean write, GError **err)
{
	while (len) {
		gsize n = MIN(len, MIG_RING_MAX_IO);
		guint slot;

		if (r->err)
			return report(r, err);
		if (!r->nfree)
			reap(r, 1);
		if (r->broken)
			return report(r, err);
		if (!r->nfree)
			continue;
		slot = r->free_slots[--r->nfree];
		r->slots[slot] = (Slot){ buf, n, off, write };
		prep(r, slot);
		r->inflight++;
		r->requests++;
		r->peak = MAX(r->peak, r->inflight);
		/* submitted in batches: one syscall per few requests, not per request */
		if (r->unsubmitted >= 8)
			reap(r, 0);
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
