/* Postcopy blocktime and latency (blocktime.h). A vCPU is down from its first pending
 * fault to the placement that ends its last one; the "all down" time runs from the
 * moment the last vCPU went down to the first placement that brings one back. */
#include "engine/dst/blocktime.h"

typedef struct Waiter {
	gint64 t_ns;
	gint cpu;                  /* vCPU index, -1: not a vCPU */
} Waiter;

typedef struct Vcpu {
	guint pending;             /* faults not yet ended (a retried fault counts again) */
	gint64 down_since;
	guint64 blocked_ns, lat_ns, faults;
} Vcpu;

struct MigBlocktime {
	GMutex lock;
	GHashTable *cpu_of;        /* tid -> vCPU index + 1 */
	GHashTable *waiting;       /* page key -> GArray of Waiter */
	Vcpu *vcpus;
	guint nvcpus, down;
	gint64 all_down_since;
	guint64 all_down_ns;
	guint64 lat_ns, faults, non_vcpu_lat_ns, non_vcpu_faults;
	guint64 dist[MIG_BLOCKTIME_BUCKETS];
};

MigBlocktime *mig_blocktime_new(const pid_t *tids, guint ntids)
{
	MigBlocktime *bt = g_new0(MigBlocktime, 1);

	g_mutex_init(&bt->lock);
	bt->cpu_of = g_hash_table_new(g_direct_hash, g_direct_equal);
	bt->waiting = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, (GDestroyNotify)g_array_unref);
	bt->vcpus = g_new0(Vcpu, MAX(ntids, 1u));
	bt->nvcpus = ntids;
	for (guint i = 0; i < ntids; i++)
		g_hash_table_insert(bt->cpu_of, GINT_TO_POINTER(tids[i]), GUINT_TO_POINTER(i + 1));
	return bt;
}

void mig_blocktime_free(MigBlocktime *bt)
{
	if (!bt)
		return;
	g_hash_table_unref(bt->cpu_of);
	g_hash_table_unref(bt->waiting);
	g_free(bt->vcpus);
	g_mutex_clear(&bt->lock);
	g_free(bt);
}

void mig_blocktime_begin(MigBlocktime *bt, guint64 key, pid_t tid, gint64 t_ns)
{
	gint cpu = (gint)GPOINTER_TO_UINT(g_hash_table_lookup(bt->cpu_of, GINT_TO_POINTER(tid))) - 1;
	Waiter w = { t_ns, cpu };
	GArray *list;

	g_mutex_lock(&bt->lock);
	list = g_hash_table_lookup(bt->waiting, &key);
	if (!list) {
		list = g_array_sized_new(FALSE, FALSE, sizeof(Waiter), 1);
		g_hash_table_insert(bt->waiting, g_memdup2(&key, sizeof(key)), list);
	}
	g_array_append_val(list, w);
	if (cpu >= 0 && bt->vcpus[cpu].pending++ == 0) {
		bt->vcpus[cpu].down_since = t_ns;
		if (++bt->down == bt->nvcpus)
			bt->all_down_since = t_ns;
	}
	g_mutex_unlock(&bt->lock);
}

static void end_one(MigBlocktime *bt, const Waiter *w, gint64 t_ns)
{
	guint64 ns = (guint64)MAX(t_ns - w->t_ns, 0), us = ns / 1000;

	bt->dist[us ? MIN((guint)g_bit_nth_msf(us, -1), MIG_BLOCKTIME_BUCKETS - 1u) : 0]++;
	bt->lat_ns += ns;
	bt->faults++;
	if (w->cpu < 0) {
		bt->non_vcpu_lat_ns += ns;
		bt->non_vcpu_faults++;
		return;
	}
	Vcpu *v = &bt->vcpus[w->cpu];

	v->lat_ns += ns;
	v->faults++;
	if (--v->pending)
		return;
	v->blocked_ns += (guint64)MAX(t_ns - v->down_since, 0);
	if (bt->down-- == bt->nvcpus)
		bt->all_down_ns += (guint64)MAX(t_ns - bt->all_down_since, 0);
}

void mig_blocktime_end(MigBlocktime *bt, guint64 key, gint64 t_ns)
{
	gpointer k, v;

	g_mutex_lock(&bt->lock);
	if (g_hash_table_steal_extended(bt->waiting, &key, &k, &v)) {
		GArray *list = v;

		for (guint i = 0; i < list->len; i++)
			end_one(bt, &g_array_index(list, Waiter, i), t_ns);
		g_free(k);
		g_array_unref(list);
	}
	g_mutex_unlock(&bt->lock);
}

void mig_blocktime_query(MigBlocktime *bt, MigValue *obj)
{
	MigValue *blocked, *lat, *dist;

	g_mutex_lock(&bt->lock);
	/* QEMU reports milliseconds as uint32 and latencies as averages in ns */
	mig_value_add_int(obj, "postcopy-blocktime", (gint64)MIN(bt->all_down_ns / 1000000, G_MAXUINT32));
	blocked = mig_value_add_array(obj, "postcopy-vcpu-blocktime");
	lat = mig_value_add_array(obj, "postcopy-vcpu-latency");
	for (guint i = 0; i < bt->nvcpus; i++) {
		const Vcpu *v = &bt->vcpus[i];

		mig_value_add_int(blocked, NULL, (gint64)MIN(v->blocked_ns / 1000000, G_MAXUINT32));
		mig_value_add_int(lat, NULL, v->faults ? (gint64)(v->lat_ns / v->faults) : 0);
	}
	mig_value_add_int(obj, "postcopy-latency", bt->faults ? (gint64)(bt->lat_ns / bt->faults) : 0);
	mig_value_add_int(obj, "postcopy-non-vcpu-latency",
			  bt->non_vcpu_faults ? (gint64)(bt->non_vcpu_lat_ns / bt->non_vcpu_faults) : 0);
	dist = mig_value_add_array(obj, "postcopy-latency-dist");
	for (guint i = 0; i < MIG_BLOCKTIME_BUCKETS; i++)
		mig_value_add_int(dist, NULL, (gint64)bt->dist[i]);
	g_mutex_unlock(&bt->lock);
}
