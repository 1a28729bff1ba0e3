/* QEMU's blocktime and latency figures from known sequences of faults and placements:
 * per-vCPU blocked time, the time all vCPUs were blocked at once, averages in ns, the
 * latency histogram, and waits whose page came in between begin and end. */
#include "engine/dst/blocktime.h"

#define MS 1000000ll   /* ns */

static gint64 get_int(const MigValue *obj, const char *name)
{
	const MigValue *v = mig_value_get(obj, name);

	g_assert_nonnull(v);
	g_assert_cmpint(v->type, ==, MIG_VALUE_INT);
	return v->i;
}

static gint64 get_item(const MigValue *obj, const char *name, guint i)
{
	const MigValue *v = mig_value_get(obj, name);

	g_assert_nonnull(v);
	g_assert_cmpint(v->type, ==, MIG_VALUE_ARRAY);
	g_assert_cmpuint(i, <, v->items->len);
	return ((const MigValue *)g_ptr_array_index(v->items, i))->i;
}

static guint array_len(const MigValue *obj, const char *name)
{
	const MigValue *v = mig_value_get(obj, name);

	g_assert_nonnull(v);
	return v->items->len;
}

/* Two vCPUs (tids 101, 102) and a non-vCPU thread (900):
 *   vCPU0 waits on A from 0 to 10 ms, and on B from 12 to 20 ms
 *   vCPU1 waits on C from 5 to 15 ms
 *   thread 900 waits on A from 1 to 10 ms
 * Both vCPUs are down over [5, 10] and [12, 15]: 8 ms. */
static void test_overlap(void)
{
	const pid_t tids[2] = { 101, 102 };
	MigBlocktime *bt = mig_blocktime_new(tids, 2);
	g_autoptr(MigValue) q = mig_value_new_object();
	const guint64 A = 0x1000, B = 0x2000, C = 0x3000;

	mig_blocktime_begin(bt, A, 101, 0);
	mig_blocktime_begin(bt, A, 900, 1 * MS);
	mig_blocktime_begin(bt, C, 102, 5 * MS);
	mig_blocktime_end(bt, A, 10 * MS);
	mig_blocktime_begin(bt, B, 101, 12 * MS);
	mig_blocktime_end(bt, C, 15 * MS);
	mig_blocktime_end(bt, B, 20 * MS);
	mig_blocktime_end(bt, B, 21 * MS);   /* placed twice: no waiter left */
	mig_blocktime_query(bt, q);

	g_assert_cmpint(get_int(q, "postcopy-blocktime"), ==, 8);
	g_assert_cmpuint(array_len(q, "postcopy-vcpu-blocktime"), ==, 2);
	g_assert_cmpint(get_item(q, "postcopy-vcpu-blocktime", 0), ==, 18);
	g_assert_cmpint(get_item(q, "postcopy-vcpu-blocktime", 1), ==, 10);
	g_assert_cmpint(get_item(q, "postcopy-vcpu-latency", 0), ==, 9 * MS);   /* (10 + 8) / 2 */
	g_assert_cmpint(get_item(q, "postcopy-vcpu-latency", 1), ==, 10 * MS);
	g_assert_cmpint(get_int(q, "postcopy-non-vcpu-latency"), ==, 9 * MS);
	g_assert_cmpint(get_int(q, "postcopy-latency"), ==, (10 + 8 + 10 + 9) * MS / 4);
	/* bucket N holds [2^N, 2^(N+1)) µs: 8000 µs is in 12, 9000 and 10000 µs in 13 */
	g_assert_cmpuint(array_len(q, "postcopy-latency-dist"), ==, MIG_BLOCKTIME_BUCKETS);
	g_assert_cmpint(get_item(q, "postcopy-latency-dist", 12), ==, 1);
	g_assert_cmpint(get_item(q, "postcopy-latency-dist", 13), ==, 3);
	mig_blocktime_free(bt);
}

/* One vCPU faulting twice on the same page before it comes (a retried fault) is down
 * once, until that page; a vCPU never all-down alone unless it is the only one. */
static void test_retry_and_single(void)
{
	const pid_t tid = 7;
	MigBlocktime *bt = mig_blocktime_new(&tid, 1);
	g_autoptr(MigValue) q = mig_value_new_object();

	mig_blocktime_begin(bt, 0x5000, 7, 2 * MS);
	mig_blocktime_begin(bt, 0x5000, 7, 3 * MS);
	mig_blocktime_end(bt, 0x5000, 6 * MS);
	mig_blocktime_end(bt, 0x6000, 7 * MS);   /* never waited on */
	mig_blocktime_query(bt, q);
	g_assert_cmpint(get_int(q, "postcopy-blocktime"), ==, 4);
	g_assert_cmpint(get_item(q, "postcopy-vcpu-blocktime", 0), ==, 4);
	g_assert_cmpint(get_item(q, "postcopy-vcpu-latency", 0), ==, (4 + 3) * MS / 2);
	g_assert_cmpint(get_int(q, "postcopy-non-vcpu-latency"), ==, 0);
	mig_blocktime_free(bt);
}

/* No vCPU list (an embedder that never called mig_session_set_vcpus): every wait is a
 * non-vCPU one and the arrays are empty. */
static void test_no_vcpus(void)
{
	MigBlocktime *bt = mig_blocktime_new(NULL, 0);
	g_autoptr(MigValue) q = mig_value_new_object();

	mig_blocktime_begin(bt, 0x1000, 55, 0);
	mig_blocktime_end(bt, 0x1000, 3 * MS);
	mig_blocktime_query(bt, q);
	g_assert_cmpint(get_int(q, "postcopy-blocktime"), ==, 0);
	g_assert_cmpuint(array_len(q, "postcopy-vcpu-blocktime"), ==, 0);
	g_assert_cmpint(get_int(q, "postcopy-non-vcpu-latency"), ==, 3 * MS);
	g_assert_cmpint(get_int(q, "postcopy-latency"), ==, 3 * MS);
	mig_blocktime_free(bt);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/blocktime/overlap", test_overlap);
	g_test_add_func("/blocktime/retry-and-single", test_retry_and_single);
	g_test_add_func("/blocktime/no-vcpus", test_no_vcpus);
	return g_test_run();
}
