/* The order in which the source's multifd senders take device-state chunks
 * (engine/src/multifd.h): first come, first sent. Real sender threads write to
 * socketpairs; save threads are stood in for by threads queueing one chunk each.
 *
 * With fewer chunks allowed in flight than devices waiting, a chunk that waited longer
 * must not be overtaken by one that came later: a device left behind finishes after
 * the others and keeps the guest stopped alone (docs/benchmarks.md, device-downtime). */
#include "bounded.h"
#include "engine/src/multifd.h"
#include "channels/wire.h"
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define NDEV 8
#define PAYLOAD 64

typedef struct Fx {
	MigSession *s;
	MfSrc *m;
	int peer;                /* the receiving end, left unread: the frames fit its buffer */
	GMutex lock;
	GCond cond;
	gboolean gate_open;      /* the first chunk's done callback waits for this */
	gboolean gate_reached;
	guint order[NDEV];       /* devices in the order their chunks were written */
	guint ndone;
	guint8 payload[PAYLOAD];
} Fx;

typedef struct Ask {
	Fx *f;
	guint dev;
	GThread *thread;
} Ask;

static void chunk_done(gpointer data, guint8 *buf, int rc)
{
	Ask *a = data;
	Fx *f = a->f;

	g_assert_cmpint(rc, ==, 0);
	g_mutex_lock(&f->lock);
	f->order[f->ndone++] = a->dev;
	if (a->dev == 0) {
		/* the one sender is held here, its chunk still counted in flight */
		f->gate_reached = TRUE;
		g_cond_broadcast(&f->cond);
		while (!f->gate_open)
			g_cond_wait(&f->cond, &f->lock);
	}
	g_mutex_unlock(&f->lock);
}

static void queue_one(Ask *a)
{
	g_autoptr(GError) err = NULL;
	guint8 hdr[MIG_DEV_HDR_LEN] = { 0 };

	hdr[0] = (guint8)a->dev;
	g_assert_true(mig_mf_src_queue_dev(a->f->m, hdr, sizeof(hdr), a->f->payload, -1, PAYLOAD, chunk_done, a, &err));
	g_assert_no_error(err);
}

static gpointer ask_main(gpointer data)
{
	queue_one(data);
	return NULL;
}

static gboolean gate_reached(Fx *f)
{
	gboolean r;

	g_mutex_lock(&f->lock);
	r = f->gate_reached;
	g_mutex_unlock(&f->lock);
	return r;
}

typedef struct Waiting { Fx *f; guint n; } Waiting;
static gboolean n_waiting(Waiting *w) { return mig_mf_src_dev_waiting(w->f->m) == w->n; }

static gboolean all_done(Fx *f)
{
	gboolean r;

	g_mutex_lock(&f->lock);
	r = f->ndone == NDEV;
	g_mutex_unlock(&f->lock);
	return r;
}

static void test_first_come_first_sent(void)
{
	Fx f = { 0 };
	Ask ask[NDEV];
	int sv[2];

	g_mutex_init(&f.lock);
	g_cond_init(&f.cond);
	g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), ==, 0);
	f.peer = sv[1];
	f.s = mig_session_new("mf-dev-order");
	f.m = mig_mf_src_adopt(f.s, &sv[0], 1, FALSE);
	mig_mf_src_limit_dev(f.m, 1);
	for (guint i = 0; i < NDEV; i++)
		ask[i] = (Ask){ &f, i, NULL };
	/* device 0's chunk takes the only place in flight and holds it */
	queue_one(&ask[0]);
	bounded_wait(gate_reached, &f, "the first chunk written");
	/* the others queue one after the other, each once the one before waits */
	for (guint i = 1; i < NDEV; i++) {
		Waiting w = { &f, i };

		ask[i].thread = g_thread_new("ask", ask_main, &ask[i]);
		bounded_wait(n_waiting, &w, "a device chunk waiting for a sender");
	}
	g_mutex_lock(&f.lock);
	f.gate_open = TRUE;
	g_cond_broadcast(&f.cond);
	g_mutex_unlock(&f.lock);
	for (guint i = 1; i < NDEV; i++)
		g_thread_join(ask[i].thread);
	bounded_wait(all_done, &f, "every chunk written");
	for (guint i = 0; i < NDEV; i++)
		g_assert_cmpuint(f.order[i], ==, i);
	mig_mf_src_free(f.m);
	mig_session_free(f.s);
	close(f.peer);
	g_mutex_clear(&f.lock);
	g_cond_clear(&f.cond);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/mf-dev-order/first-come-first-sent", test_first_come_first_sent);
	return g_test_run();
}
