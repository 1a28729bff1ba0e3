/* A mutex-protected free list of equal-size buffers. */
#include "engine/bufpool.h"

struct MigBufPool {
	GMutex lock;
	gsize size;
	guint keep;
	GPtrArray *free;
};

MigBufPool *mig_buf_pool_new(gsize size, guint keep)
{
	MigBufPool *p = g_new0(MigBufPool, 1);

	g_mutex_init(&p->lock);
	p->size = size;
	p->keep = keep;
	p->free = g_ptr_array_new_with_free_func(g_free);
	return p;
}

guint8 *mig_buf_get(MigBufPool *p)
{
	guint8 *b = NULL;

	g_mutex_lock(&p->lock);
	if (p->free->len)
		b = g_ptr_array_steal_index_fast(p->free, p->free->len - 1);
	g_mutex_unlock(&p->lock);
	return b ? b : g_malloc(p->size);
}

void mig_buf_put(MigBufPool *p, guint8 *buf)
{
	if (!buf)
		return;
	g_mutex_lock(&p->lock);
	if (p->free->len < p->keep) {
		g_ptr_array_add(p->free, buf);
		buf = NULL;
	}
	g_mutex_unlock(&p->lock);
	g_free(buf);
}

void mig_buf_pool_free(MigBufPool *p)
{
	if (!p)
		return;
	g_ptr_array_free(p->free, TRUE);
	g_mutex_clear(&p->lock);
	g_free(p);
}
