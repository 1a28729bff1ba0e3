/* Where a lazy restore's fault thread sleeps on its reads (engine/dst/diskcpu.h): an fd
 * on no block device (a pipe, a tmpfs file) gives nothing; a file on a disk gives
 * either nothing or CPUs that narrow the allowed set, never all of them nor any outside
 * it; and a set the disk's CPUs cannot narrow (those CPUs alone, or none of them) gives
 * nothing. Real fds; the disk is whatever /var/tmp is on. */
#include "engine/dst/diskcpu.h"
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

static void all_cpus(cpu_set_t *set)
{
	g_assert_cmpint(sched_getaffinity(0, sizeof(*set), set), ==, 0);
}

static void test_no_disk(void)
{
	int p[2];
	cpu_set_t allowed, got;

	all_cpus(&allowed);
	g_assert_cmpint(pipe(p), ==, 0);
	g_assert_false(mig_disk_irq_cpus(p[0], &allowed, &got));
	close(p[0]);
	close(p[1]);
	if (g_file_test("/dev/shm", G_FILE_TEST_IS_DIR)) {
		int fd = open("/dev/shm", O_RDONLY | O_DIRECTORY);

		g_assert_cmpint(fd, >=, 0);
		g_assert_false(mig_disk_irq_cpus(fd, &allowed, &got));
		close(fd);
	}
}

static void test_disk(void)
{
	char dir[] = "/var/tmp/mig-diskcpu-XXXXXX";
	cpu_set_t allowed, got, rest, none;
	int fd;

	g_assert_nonnull(mkdtemp(dir));
	fd = open(dir, O_RDONLY | O_DIRECTORY);
	g_assert_cmpint(fd, >=, 0);
	all_cpus(&allowed);
	if (!mig_disk_irq_cpus(fd, &allowed, &got)) {
		g_test_message("/var/tmp's disk reaches every CPU (or cannot be told): nothing to narrow");
		goto out;
	}
	g_assert_cmpint(CPU_COUNT(&got), >, 0);
	g_assert_cmpint(CPU_COUNT(&got), <, CPU_COUNT(&allowed));
	CPU_AND(&none, &got, &allowed);
	g_assert_true(CPU_EQUAL(&none, &got));
	/* those CPUs alone cannot be narrowed further */
	rest = got;
	g_assert_false(mig_disk_irq_cpus(fd, &rest, &got));
	/* nor a set without any of them */
	CPU_XOR(&rest, &allowed, &rest);
	g_assert_false(mig_disk_irq_cpus(fd, &rest, &got));
out:
	close(fd);
	rmdir(dir);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/diskcpu/no-disk", test_no_disk);
	g_test_add_func("/diskcpu/disk", test_disk);
	return g_test_run();
}
