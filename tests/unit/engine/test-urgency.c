/* engine/urgency.c on the running kernel: a normal thread gets the short slice and
 * keeps its nice value; a batch thread is left as it was, real-time asked or not. Where
 * the kernel has no per-task slice (before 6.12 sched_runtime of a normal thread is
 * ignored or refused) the test says so and checks only that nothing else changed.
 * With a real-time priority asked, a thread that may (root) becomes SCHED_FIFO at it;
 * one whose RLIMIT_RTPRIO is 0 and that lacks CAP_SYS_NICE gets the slice and EPERM. */
#include "engine/urgency.h"
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
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

/* The test may run under SCHED_IDLE (chrt -i 0 on a shared host), which the code
 * under test rightly leaves alone: each case starts from a normal thread. */
static void make_normal(void)
{
	struct sched_param p = { 0 };

	if (get_attr().policy != SCHED_OTHER)
		g_assert_cmpint(sched_setscheduler(0, SCHED_OTHER, &p), ==, 0);
}

static gpointer normal_thread(gpointer data)
{
	struct attr a;

	make_normal();
	a = get_attr();
	int nice = MIN(a.nice + 1, 19);
	gboolean took;

	/* a nice value the call must not reset (raising it needs no privilege) */
	g_assert_cmpint(setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), nice), ==, 0);
	took = mig_thread_set_urgent(0, NULL) == MIG_URGENCY_SLICE;
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
	g_assert_cmpint(mig_thread_set_urgent(0, NULL), ==, MIG_URGENCY_NONE);
	g_assert_cmpint(mig_thread_set_urgent(5, NULL), ==, MIG_URGENCY_NONE);
	after = get_attr();
	g_assert_cmpuint(after.policy, ==, SCHED_BATCH);
	g_assert_cmpuint(after.runtime, ==, before.runtime);
	return NULL;
}

static void test_batch_left_alone(void)
{
	g_thread_join(g_thread_new("urgency-batch", batch_thread, NULL));
}

static gboolean may_rt(void)
{
	struct rlimit rl;

	return geteuid() == 0 || (getrlimit(RLIMIT_RTPRIO, &rl) == 0 && rl.rlim_cur >= 3);
}

static gpointer rt_thread(gpointer data)
{
	int why = -1;
	MigUrgency u;
	struct attr a;

	make_normal();
	u = mig_thread_set_urgent(3, &why);
	a = get_attr();

	g_assert_cmpint(u, ==, MIG_URGENCY_RT);
	g_assert_cmpint(why, ==, 0);
	g_assert_cmpuint(a.policy, ==, SCHED_FIFO);
	g_assert_cmpuint(a.priority, ==, 3);
	/* once real-time, placed so on purpose: a second call changes nothing */
	g_assert_cmpint(mig_thread_set_urgent(0, NULL), ==, MIG_URGENCY_NONE);
	g_assert_cmpuint(get_attr().policy, ==, SCHED_FIFO);
	return NULL;
}

static void test_rt(void)
{
	if (!may_rt()) {
		g_test_skip("this process may not use SCHED_FIFO (not root, RLIMIT_RTPRIO < 3)");
		return;
	}
	g_thread_join(g_thread_new("urgency-rt", rt_thread, NULL));
}

/* Without the right to real-time: the fallback is the slice, and why is said. Run in a
 * child that drops every capability it may have and sets RLIMIT_RTPRIO to 0, so the
 * test process keeps its own. */
static void test_rt_refused(void)
{
	pid_t pid = fork();
	int status;

	g_assert_cmpint(pid, >=, 0);
	if (pid == 0) {
		struct rlimit rl = { 0, 0 };
		int why = 0;
		MigUrgency u;
		struct attr a;

		make_normal();
		if (setrlimit(RLIMIT_RTPRIO, &rl) < 0 || (geteuid() == 0 && setresuid(65534, 65534, 65534) < 0))
			_exit(3);
		u = mig_thread_set_urgent(3, &why);
		a = get_attr();
		if (a.policy != SCHED_OTHER || why != EPERM)
			_exit(1);
		if (u != MIG_URGENCY_SLICE && u != MIG_URGENCY_NONE)
			_exit(2);
		_exit(0);
	}
	g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
	g_assert_true(WIFEXITED(status));
	g_assert_cmpint(WEXITSTATUS(status), ==, 0);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/urgency/normal", test_normal);
	g_test_add_func("/urgency/batch-left-alone", test_batch_left_alone);
	g_test_add_func("/urgency/rt", test_rt);
	g_test_add_func("/urgency/rt-refused", test_rt_refused);
	return g_test_run();
}
