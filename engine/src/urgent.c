/* Urgent lanes at the source: see urgent.h. A lane's load is what it has queued plus
 * what its socket still holds unacknowledged (SIOCOUTQ): a 2 MiB page handed to the
 * kernel is still 16.8 ms of a 1 Gbit/s link, and the next request should not queue
 * behind it when another lane is empty. */
#include "engine/src/urgent.h"
#include "engine/probes.h"
#include "engine/urgency.h"
#include "channels/frame.h"
#include "channels/wire.h"
#include <errno.h>
#include <linux/sockios.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

/* Pages up to this size may be written by the return-path thread itself (send_inline),
 * when their lane has at most this much unacknowledged. */
#define INLINE_MAX (64u << 10)
#define INLINE_UNACKED_MAX (64u << 10)
/* Requests queued at once. A destination asks for a page only while a vCPU waits on
 * it, so a few per vCPU at most; one that asks for far more is broken or hostile, and
 * each queued request costs the source memory. */
#define PENDING_MAX 65536u

typedef struct UrgentReq {
	MigRamBlock *rb;
	guint bi;
	gsize page;
} UrgentReq;

typedef struct Lane {
	MigUrgent *u;
	guint index;
	int fd;
	GThread *thread;
	GMutex lock;
	GCond cond;
	GQueue queue;          /* UrgentReq*, under lock */
	guint64 queued;        /* bytes queued or being written (atomic) */
	gboolean quit;         /* under lock */
} Lane;

struct MigUrgent {
	MigSession *s;
	MigUrgentDoneFn done;
	gpointer opaque;
	guint n;
	guint rt_priority;     /* x-postcopy-rt-priority, for the senders */
	guint next;            /* where the search for the least busy lane starts (ties rotate) */
	guint64 bytes;         /* written, all lanes (atomic) */
	/* pages queued and not yet taken by a sender: a page asked for again meanwhile
	 * is not queued twice (a destination repeating one request cannot grow us) */
	GMutex pend_lock;
	GHashTable *pending;   /* key: pend_key() */
	Lane lanes[MIG_PREEMPT_MAX];
};

static gpointer pend_key(guint bi, gsize page)
{
	/* +1: never the NULL key */
	return GSIZE_TO_POINTER((((gsize)bi << 40) | page) + 1);
}

static void pend_drop(MigUrgent *u, const UrgentReq *r)
{
	g_mutex_lock(&u->pend_lock);
	g_hash_table_remove(u->pending, pend_key(r->bi, r->page));
	g_mutex_unlock(&u->pend_lock);
}

static guint64 unacked(int fd)
{
	int outq = 0;

	return ioctl(fd, SIOCOUTQ, &outq) == 0 && outq > 0 ? (guint64)outq : 0;
}

/* One urgent page: the same PAGES/ZEROS frame the main channel uses. */
static int send_page(Lane *l, const UrgentReq *r)
{
	MigSession *s = l->u->s;
	gsize ps = r->rb->page_size;
	guint8 *p = r->rb->host + r->page * ps;
	gboolean zero = mig_mem_is_zero(p, ps);
	guint8 hdr[MIG_PAGES_HDR_LEN + 8];
	struct iovec iov[2] = { { hdr, sizeof(hdr) }, { p, ps } };
	int rc;

	mig_put_pages_hdr(hdr, r->bi, 1);
	mig_put_be64(hdr + MIG_PAGES_HDR_LEN, (guint64)r->page * ps);
	/* before the write: on loopback the write itself may run the destination's receive
	 * and placement, and a stage must not be stamped after the ones it causes */
	MIG_PROBE(page_sent, r->bi, (guint64)r->page * ps);
	rc = mig_frame_send(l->fd, zero ? MIG_F_ZEROS : MIG_F_PAGES, 0, iov, zero ? 1 : 2);
	if (rc == 0) {
		guint64 bytes = MIG_FRAME_HDR_LEN + sizeof(hdr) + (zero ? 0 : ps);

		mig_atomic_add(&s->stats.transferred, bytes);
		mig_atomic_add(&s->stats.postcopy_bytes, bytes);
		mig_atomic_add(&l->u->bytes, bytes);
		mig_atomic_add(&s->stats.x_urgent_lane_requests[l->index], 1);
	}
	return rc;
}

/* Sends r (counted in l->queued), frees it and tells the owner; the write's result. */
static int send_and_report(Lane *l, UrgentReq *r)
{
	MigUrgent *u = l->u;
	int rc;

	pend_drop(u, r);
	rc = send_page(l, r);

	__atomic_sub_fetch(&l->queued, r->rb->page_size, __ATOMIC_RELEASE);
	g_free(r);
	if (rc < 0) {
		g_autoptr(GError) err = g_error_new(MIG_ERROR, -rc, "preempt channel %u: %s", l->index, g_strerror(-rc));

		u->done(u->opaque, err);
	} else {
		u->done(u->opaque, NULL);
	}
	return rc;
}

static gpointer lane_main(gpointer opaque)
{
	Lane *l = opaque;
	char name[16];

	g_snprintf(name, sizeof(name), "mig/src/urg/%u", l->index);
	mig_thread_set_urgent_for(l->u->s, l->u->rt_priority, name);
	for (;;) {
		UrgentReq *r;

		g_mutex_lock(&l->lock);
		while (!l->quit && g_queue_is_empty(&l->queue))
			g_cond_wait(&l->cond, &l->lock);
		r = l->quit ? NULL : g_queue_pop_head(&l->queue);
		g_mutex_unlock(&l->lock);
		if (!r)
			return NULL;
		if (send_and_report(l, r) < 0)
			return NULL;
	}
}

MigUrgent *mig_urgent_new(MigSession *s, const int *fds, guint n, guint rt_priority, MigUrgentDoneFn done,
			  gpointer opaque)
{
	MigUrgent *u = g_new0(MigUrgent, 1);

	g_assert(n >= 1 && n <= MIG_PREEMPT_MAX);
	u->s = s;
	u->done = done;
	u->opaque = opaque;
	u->n = n;
	u->rt_priority = rt_priority;
	g_mutex_init(&u->pend_lock);
	u->pending = g_hash_table_new(g_direct_hash, g_direct_equal);
	for (guint i = 0; i < n; i++) {
		Lane *l = &u->lanes[i];
		char name[16];

		l->u = u;
		l->index = i;
		l->fd = fds[i];
		g_mutex_init(&l->lock);
		g_cond_init(&l->cond);
		g_queue_init(&l->queue);
		g_snprintf(name, sizeof(name), "mig/src/urg/%u", i);
		l->thread = g_thread_new(name, lane_main, l);
	}
	return u;
}

static guint64 lane_load(Lane *l)
{
	return __atomic_load_n(&l->queued, __ATOMIC_RELAXED) + unacked(l->fd);
}

/* A small page for an idle lane goes out from the calling (return-path) thread: handing
 * it over costs a thread wakeup, on a busy host the largest hop a request has left.
 * Idle means nothing queued or being written, which only the caller can change, and
 * little unacknowledged, so the socket has room and the write cannot hold up the return
 * path. Takes r when it sent it. */
static gboolean send_inline(Lane *l, guint64 load, UrgentReq *r)
{
	/* load (lane_load) was read just before: queued only shrinks meanwhile */
	if (r->rb->page_size > INLINE_MAX || __atomic_load_n(&l->queued, __ATOMIC_ACQUIRE) ||
	    load > INLINE_UNACKED_MAX)
		return FALSE;
	/* in_flight counts it while it is written, as if queued */
	__atomic_add_fetch(&l->queued, r->rb->page_size, __ATOMIC_RELAXED);
	send_and_report(l, r);
	return TRUE;
}

/* Only the return-path thread queues, so u->next needs no lock. */
int mig_urgent_queue(MigUrgent *u, guint bi, MigRamBlock *rb, gsize page)
{
	UrgentReq *r;
	Lane *best = &u->lanes[u->next];
	guint64 best_load;
	int rc = 1;

	g_mutex_lock(&u->pend_lock);
	if (g_hash_table_contains(u->pending, pend_key(bi, page)))
		rc = 0;
	else if (g_hash_table_size(u->pending) >= PENDING_MAX)
		rc = -E2BIG;
	else
		g_hash_table_add(u->pending, pend_key(bi, page));
	g_mutex_unlock(&u->pend_lock);
	if (rc <= 0)
		return rc;
	r = g_new(UrgentReq, 1);
	best_load = lane_load(best);   /* one SIOCOUTQ: the choice and send_inline */

	for (guint k = 1; k < u->n && best_load; k++) {
		Lane *l = &u->lanes[(u->next + k) % u->n];
		guint64 load = lane_load(l);

		if (load < best_load) {
			best = l;
			best_load = load;
		}
	}
	u->next = (best->index + 1) % u->n;
	*r = (UrgentReq){ .rb = rb, .bi = bi, .page = page };
	if (send_inline(best, best_load, r))
		return 1;
	__atomic_add_fetch(&best->queued, rb->page_size, __ATOMIC_RELAXED);
	g_mutex_lock(&best->lock);
	g_queue_push_tail(&best->queue, r);
	g_cond_signal(&best->cond);
	g_mutex_unlock(&best->lock);
	return 1;
}

guint mig_urgent_pending_max(void)
{
	return PENDING_MAX;
}

guint64 mig_urgent_bytes(MigUrgent *u)
{
	return mig_atomic_get(&u->bytes);
}

guint64 mig_urgent_in_flight(MigUrgent *u)
{
	guint64 sum = 0;

	for (guint i = 0; i < u->n; i++)
		sum += lane_load(&u->lanes[i]);
	return sum;
}

void mig_urgent_stop(MigUrgent *u)
{
	for (guint i = 0; i < u->n; i++) {
		Lane *l = &u->lanes[i];

		g_mutex_lock(&l->lock);
		l->quit = TRUE;
		g_cond_signal(&l->cond);
		g_mutex_unlock(&l->lock);
		/* a sender blocked in a full socket (the destination stopped reading) */
		if (l->thread)
			shutdown(l->fd, SHUT_RDWR);
	}
	for (guint i = 0; i < u->n; i++) {
		Lane *l = &u->lanes[i];

		if (l->thread)
			g_thread_join(l->thread);
		l->thread = NULL;
		g_mutex_lock(&l->lock);
		g_queue_clear_full(&l->queue, g_free);
		g_mutex_unlock(&l->lock);
		__atomic_store_n(&l->queued, 0, __ATOMIC_RELAXED);
	}
	g_mutex_lock(&u->pend_lock);
	g_hash_table_remove_all(u->pending);
	g_mutex_unlock(&u->pend_lock);
}

void mig_urgent_free(MigUrgent *u)
{
	if (!u)
		return;
	mig_urgent_stop(u);
	for (guint i = 0; i < u->n; i++) {
		g_mutex_clear(&u->lanes[i].lock);
		g_cond_clear(&u->lanes[i].cond);
	}
	g_hash_table_destroy(u->pending);
	g_mutex_clear(&u->pend_lock);
	g_free(u);
}
