/* engine/urgency.c on the running kernel: a normal thread gets the short slice and
 * keeps its nice value; a batch thread is left as it was. Where the kernel has no
 * per-task slice (before 6.12 sched_runtime of a normal thread is ignored or refused)
 * the test says so and checks only that nothing else changed. */
#include "engine/urgency.h"
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

struct attr {
	uint32_t size, policy;
	uint64_t flags;
	int32_t nice;
	uint32_t priority;
	uint64_t runtime, deadline, period;
};

static struct attr get_attr(void)
{
	struct attr a;

	memset(&a, 0, sizeof(a));
	g_assert_cmpint(syscall(SYS_sched_getattr, 0, &a, sizeof(a), 0), ==, 0);
	return a;
}

static gpointer normal_thread(gpointer data)
{
	struct attr a = get_attr();
	int nice = MIN(a.nice + 1, 19);
	gboolean took;

	/* a nice value the call must not reset (raising it needs no privilege) */
	g_assert_cmpint(setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), nice), ==, 0);
	took = mig_thread_set_urgent();
	a = get_attr();
	g_assert_cmpuint(a.policy, ==, SCHED_OTHER);
	g_assert_cmpint(a.nice, ==, nice);
	if (took)
		g_assert_cmpuint(a.runtime, ==, 100000);
	else
		g_test_message("this kernel took no per-task slice");
	return NULL;
}

static void test_normal(void)
{
	g_thread_join(g_thread_new("urgency-normal", normal_thread, NULL));
}

static gpointer batch_thread(gpointer data)
{
	struct sched_param p = { 0 };
	struct attr before, after;

	g_assert_cmpint(sched_setscheduler(0, SCHED_BATCH, &p), ==, 0);
	before = get_attr();
	g_assert_false(mig_thread_set_urgent());
	after = get_attr();
	g_assert_cmpuint(after.policy, ==, SCHED_BATCH);
	g_assert_cmpuint(after.runtime, ==, before.runtime);
	return NULL;
}

static void test_batch_left_alone(void)
{
	g_thread_join(g_thread_new("urgency-batch", batch_thread, NULL));
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/urgency/normal", test_normal);
	g_test_add_func("/urgency/batch-left-alone", test_batch_left_alone);
	return g_test_run();
}
