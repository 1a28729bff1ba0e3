/* The engine's threads, reused from one fuzz input to the next. Each input runs a
 * whole session, whose channels, postcopy and QMP server each start a thread, and
 * under ASan a thread's creation and exit cost about 0.6 ms of CPU, more than the
 * rest of an input. The engine-level harnesses are linked with
 * -Wl,--wrap=g_thread_new,--wrap=g_thread_join,--wrap=g_thread_self (the wrapping
 * applies to the engine's static libraries, not to libglib's own calls): the
 * engine's g_thread_new hands its function to a parked thread of this pool, named as
 * asked; g_thread_join waits for the function to return and parks the thread again;
 * and g_thread_self, inside a pooled function, is the handle its g_thread_new
 * returned (what the QMP server compares it with). The engine's code and its
 * concurrency are unchanged: every function still runs on a thread of its own from
 * its g_thread_new to its join. */
#include <glib.h>
#include <pthread.h>

GThread *__real_g_thread_new(const gchar *name, GThreadFunc func, gpointer data);
gpointer __real_g_thread_join(GThread *thread);
GThread *__real_g_thread_self(void);
GThread *__wrap_g_thread_new(const gchar *name, GThreadFunc func, gpointer data);
gpointer __wrap_g_thread_join(GThread *thread);
GThread *__wrap_g_thread_self(void);

typedef struct Pooled {
	GMutex lock;
	GCond cond;
	GThreadFunc fn;        /* the job, NULL while parked or once it returned */
	gpointer data, ret;
	gboolean done;         /* fn returned, not yet joined */
	char name[16];
	struct Pooled *next;   /* in the idle list */
} Pooled;

static GMutex pool_lock;
static Pooled *idle;            /* parked threads, under pool_lock */
static __thread Pooled *self;   /* the pooled thread this is */

static gpointer worker(gpointer opaque)
{
	Pooled *p = opaque;

	self = p;
	g_mutex_lock(&p->lock);
	for (;;) {
		GThreadFunc fn;
		gpointer data, ret;

		while (!p->fn)
			g_cond_wait(&p->cond, &p->lock);
		fn = p->fn;
		data = p->data;
		g_mutex_unlock(&p->lock);
		pthread_setname_np(pthread_self(), p->name);
		ret = fn(data);
		g_mutex_lock(&p->lock);
		p->fn = NULL;
		p->ret = ret;
		p->done = TRUE;
		g_cond_broadcast(&p->cond);
	}
	return NULL;
}

GThread *__wrap_g_thread_new(const gchar *name, GThreadFunc func, gpointer data)
{
	Pooled *p;

	g_mutex_lock(&pool_lock);
	p = idle;
	if (p)
		idle = p->next;
	g_mutex_unlock(&pool_lock);
	if (!p) {
		p = g_new0(Pooled, 1);
		g_mutex_init(&p->lock);
		g_cond_init(&p->cond);
		/* never joined: it parks between jobs until the process exits */
		__real_g_thread_new("fuzz/pool", worker, p);
	}
	g_mutex_lock(&p->lock);
	g_strlcpy(p->name, name ? name : "fuzz/pool", sizeof(p->name));
	p->next = NULL;
	p->done = FALSE;
	p->data = data;
	p->fn = func;
	g_cond_broadcast(&p->cond);
	g_mutex_unlock(&p->lock);
	return (GThread *)p;
}

gpointer __wrap_g_thread_join(GThread *thread)
{
	Pooled *p = (Pooled *)thread;
	gpointer ret;

	g_mutex_lock(&p->lock);
	while (!p->done)
		g_cond_wait(&p->cond, &p->lock);
	p->done = FALSE;
	ret = p->ret;
	g_mutex_unlock(&p->lock);
	g_mutex_lock(&pool_lock);
	p->next = idle;
	idle = p;
	g_mutex_unlock(&pool_lock);
	return ret;
}

GThread *__wrap_g_thread_self(void)
{
	return self ? (GThread *)self : __real_g_thread_self();
}
