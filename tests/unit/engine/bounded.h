/* Bounded waits for the engine's threaded unit tests: a test that would hang fails
 * instead, naming what it waited for. Header-only, each test is one executable. */
#pragma once
#include <glib.h>

/* Generous for a loaded 2-CPU host, short next to meson's timeout. */
#define BOUNDED_MS 10000

typedef gboolean (*BoundedPred)(gpointer data);

/* Polls pred every millisecond for up to ms; its last answer. */
static inline gboolean bounded_poll(BoundedPred pred, gpointer data, guint ms)
{
	gint64 end = g_get_monotonic_time() + (gint64)ms * 1000;

	while (!pred(data)) {
		if (g_get_monotonic_time() > end)
			return pred(data);
		g_usleep(1000);
	}
	return TRUE;
}

#define bounded_wait(pred, data, what) \
	do { \
		if (!bounded_poll((BoundedPred)(pred), (data), BOUNDED_MS)) \
			g_error("%s: still not true after %d ms", (what), BOUNDED_MS); \
	} while (0)

/* A call run on its own thread so that the test can wait for it with a bound. */
typedef struct BoundedCall {
	GThread *thread;
	GMutex lock;
	GCond cond;
	gboolean done;
	gpointer (*fn)(gpointer);
	gpointer arg;
	gpointer ret;
} BoundedCall;

static inline gpointer bounded_call_main(gpointer opaque)
{
	BoundedCall *c = opaque;
	gpointer ret = c->fn(c->arg);

	g_mutex_lock(&c->lock);
	c->ret = ret;
	c->done = TRUE;
	g_cond_broadcast(&c->cond);
	g_mutex_unlock(&c->lock);
	return NULL;
}

static inline BoundedCall *bounded_call_start(const char *name, gpointer (*fn)(gpointer), gpointer arg)
{
	BoundedCall *c = g_new0(BoundedCall, 1);

	g_mutex_init(&c->lock);
	g_cond_init(&c->cond);
	c->fn = fn;
	c->arg = arg;
	c->thread = g_thread_new(name, bounded_call_main, c);
	return c;
}

/* Whether the call returned within ms; does not wait longer. */
static inline gboolean bounded_call_done_within(BoundedCall *c, guint ms)
{
	gint64 end = g_get_monotonic_time() + (gint64)ms * 1000;
	gboolean done;

	g_mutex_lock(&c->lock);
	while (!c->done && g_cond_wait_until(&c->cond, &c->lock, end))
		;
	done = c->done;
	g_mutex_unlock(&c->lock);
	return done;
}

/* Joins the call (it must end within BOUNDED_MS, else the test aborts) and returns
 * what fn returned. */
static inline gpointer bounded_call_join(BoundedCall *c, const char *what)
{
	gpointer ret;

	if (!bounded_call_done_within(c, BOUNDED_MS))
		g_error("%s: did not return within %d ms", what, BOUNDED_MS);
	g_thread_join(c->thread);
	ret = c->ret;
	g_mutex_clear(&c->lock);
	g_cond_clear(&c->cond);
	g_free(c);
	return ret;
}
