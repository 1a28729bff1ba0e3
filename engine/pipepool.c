/* A mutex-protected free list of pipes of one capacity. */
#include "engine/pipepool.h"
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

struct MigPipePool {
	GMutex lock;
	gsize capacity;
	guint keep;
	GArray *free;        /* MigPipe */
};

MigPipePool *mig_pipe_pool_new(gsize capacity, guint keep)
{
	MigPipePool *p = g_new0(MigPipePool, 1);

	g_mutex_init(&p->lock);
	p->capacity = capacity;
	p->keep = keep;
	p->free = g_array_new(FALSE, FALSE, sizeof(MigPipe));
	return p;
}

static void close_pipe(MigPipe *pp)
{
	if (pp->r >= 0)
		close(pp->r);
	if (pp->w >= 0)
		close(pp->w);
	pp->r = pp->w = -1;
}

int mig_pipe_get(MigPipePool *p, MigPipe *out)
{
	int fds[2];

	g_mutex_lock(&p->lock);
	if (p->free->len) {
		*out = g_array_index(p->free, MigPipe, p->free->len - 1);
		g_array_set_size(p->free, p->free->len - 1);
		g_mutex_unlock(&p->lock);
		return 0;
	}
	g_mutex_unlock(&p->lock);
	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	/* a chunk that does not fit would block the thread that is also to drain it */
	if (fcntl(fds[1], F_SETPIPE_SZ, (int)p->capacity) < (int)p->capacity) {
		int err = errno ? errno : ENOSPC;

		close(fds[0]);
		close(fds[1]);
		return -err;
	}
	out->r = fds[0];
	out->w = fds[1];
	return 0;
}

void mig_pipe_put(MigPipePool *p, MigPipe *pp, gboolean empty)
{
	if (pp->r < 0 && pp->w < 0)
		return;
	g_mutex_lock(&p->lock);
	if (empty && p->free->len < p->keep) {
		g_array_append_val(p->free, *pp);
		pp->r = pp->w = -1;
	}
	g_mutex_unlock(&p->lock);
	close_pipe(pp);
}

void mig_pipe_pool_free(MigPipePool *p)
{
	if (!p)
		return;
	for (guint i = 0; i < p->free->len; i++)
		close_pipe(&g_array_index(p->free, MigPipe, i));
	g_array_free(p->free, TRUE);
	g_mutex_clear(&p->lock);
	g_free(p);
}
