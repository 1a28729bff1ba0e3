/* uffd/uffd.c: opening, the feature handshake, the /dev/userfaultfd fallback, and the
 * argument checks of the WP tracker. */
#include <glib.h>
#include <linux/capability.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "uffd/wp_tracker.h"
#include "uffd/testmem.h"

static void test_probe(void)
{
	uint64_t f = mig_uffd_probe_features();
	g_autoptr(GString) s = g_string_new(NULL);

	/* Every kernel with userfaultfd reports at least PAGEFAULT_FLAG_WP (4.3+). */
	g_assert_cmpuint(f, !=, 0);
	for (int i = 0; i < 64; i++) {
		const char *n;

		if (!(f & (1ULL << i)))
			continue;
		n = tm_feature_name(1ULL << i);
		if (n)
			g_string_append_printf(s, " %s", n);
		else
			g_string_append_printf(s, " bit%d", i);
	}
	g_test_message("features 0x%" G_GINT64_MODIFIER "x:%s", (guint64)f, s->str);
}

static void test_open_plain(void)
{
	struct uffdio_api again = { .api = UFFD_API };
	MigUffdInfo info = { 0 };
	int fd = mig_uffd_open(0, 0, &info);

	g_assert_cmpint(fd, >=, 0);
	g_assert_true(info.ioctls & (1ULL << _UFFDIO_REGISTER));
	g_assert_true(info.ioctls & (1ULL << _UFFDIO_API));
	g_assert_cmpuint(info.features, ==, 0);	/* nothing asked, nothing enabled */
	g_assert_cmpint(fcntl(fd, F_GETFD) & FD_CLOEXEC, !=, 0);
	/* The reason mig_uffd_open probes on a second fd: the handshake is one-shot. */
	g_assert_cmpint(ioctl(fd, UFFDIO_API, &again), <, 0);
	g_assert_cmpint(errno, ==, EINVAL);
	close(fd);
}

static void test_open_missing_feature(void)
{
	MigUffdInfo info = { 0 };
	uint64_t have = mig_uffd_probe_features();
	/* Bit 62 is unassigned; no kernel offers it. */
	int fd = mig_uffd_open(UFFD_FEATURE_PAGEFAULT_FLAG_WP | (1ULL << 62), 0, &info);

	g_assert_cmpint(fd, ==, -EOPNOTSUPP);
	g_assert_cmpuint(info.features, ==, have);
	g_assert_cmpuint(info.ioctls, !=, 0);
}

static void test_open_wp_async(void)
{
	const uint64_t want = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED;
	MigUffdInfo info = { 0 };
	int fd = mig_uffd_open(want, O_NONBLOCK, &info);

	if (fd == -EOPNOTSUPP) {
		g_test_skip("kernel lacks UFFD_FEATURE_WP_ASYNC");
		return;
	}
	g_assert_cmpint(fd, >=, 0);
	g_assert_cmpuint(info.features & want, ==, want);
	g_assert_cmpint(fcntl(fd, F_GETFL) & O_NONBLOCK, !=, 0);
	close(fd);
}

/* Synchronous WP round trip through the plain wrappers. */
static void test_register_wp(void)
{
	uint64_t ioctls = 0;
	TmMem m;
	int fd;

	g_assert_cmpint(tm_map(TM_ANON, 1 << 20, &m), ==, 0);
	fd = mig_uffd_open(UFFD_FEATURE_PAGEFAULT_FLAG_WP, 0, NULL);
	g_assert_cmpint(fd, >=, 0);
	memset(m.base, 1, m.len);
	g_assert_cmpint(mig_uffd_register(fd, m.base, m.len, UFFDIO_REGISTER_MODE_WP, &ioctls), ==, 0);
	g_assert_true(ioctls & (1ULL << _UFFDIO_WRITEPROTECT));
	g_assert_cmpint(mig_uffd_wp(fd, m.base, m.len, 1), ==, 0);
	g_assert_cmpint(mig_uffd_wp(fd, m.base, m.len, 0), ==, 0);
	m.base[0] = 2;	/* unprotected: must not block */
	g_assert_cmpint(mig_uffd_register(fd, m.base + 1, 4096, UFFDIO_REGISTER_MODE_WP, NULL), ==,
			-EINVAL);
	g_assert_cmpint(mig_uffd_unregister(fd, m.base, m.len), ==, 0);
	close(fd);
	tm_unmap(&m);
}

/* With vm.unprivileged_userfaultfd=0, a process without CAP_SYS_PTRACE gets EPERM from
 * the syscall (for kernel-mode faults) and must come in through /dev/userfaultfd. */
static void test_devnode_fallback(void)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct cap[2];
	int status;
	pid_t pid;

	if (tm_read_long("/proc/sys/vm/unprivileged_userfaultfd") != 0) {
		g_test_skip("vm.unprivileged_userfaultfd=1: the syscall never says EPERM");
		return;
	}
	if (access("/dev/userfaultfd", R_OK | W_OK) < 0) {
		g_test_skip("no usable /dev/userfaultfd");
		return;
	}
	if (syscall(SYS_capget, &hdr, cap) < 0 || !(cap[0].effective & (1U << CAP_SYS_PTRACE))) {
		g_test_skip("needs CAP_SYS_PTRACE to drop");
		return;
	}

	pid = fork();
	g_assert_cmpint(pid, >=, 0);
	if (pid == 0) {
		int fd;

		/* Child: no GLib asserts, just distinct exit codes. */
		cap[0].effective &= ~(1U << CAP_SYS_PTRACE);
		if (syscall(SYS_capset, &hdr, cap) < 0)
			_exit(10);
		fd = (int)syscall(__NR_userfaultfd, O_CLOEXEC);
		if (fd >= 0 || errno != EPERM)
			_exit(11);
		fd = mig_uffd_open(UFFD_FEATURE_PAGEFAULT_FLAG_WP, 0, NULL);
		_exit(fd >= 0 ? 0 : 12);
	}
	g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
	g_assert_true(WIFEXITED(status));
	g_assert_cmpint(WEXITSTATUS(status), ==, 0);
}

static void test_tracker_args(void)
{
	MigWpTracker *t = (MigWpTracker *)1;
	unsigned long map[1] = { 0 };
	TmMem m;
	int ret;

	g_assert_cmpint(tm_map(TM_ANON, 1 << 20, &m), ==, 0);
	g_assert_cmpint(mig_wp_tracker_new(m.base + 1, 4096, 4096, &t), ==, -EINVAL);
	g_assert_null(t);
	g_assert_cmpint(mig_wp_tracker_new(m.base, 4097, 4096, &t), ==, -EINVAL);
	g_assert_cmpint(mig_wp_tracker_new(m.base, 4096 * 3, 4096 * 3, &t), ==, -EINVAL);
	g_assert_cmpint(mig_wp_tracker_new(m.base, 0, 4096, &t), ==, -EINVAL);
	/* A 2 MiB page size on 4 KiB memory is legal (coarser bitmap), just aligned. */

	ret = mig_wp_tracker_new(m.base, 64 * 4096, 4096, &t);
	if (ret == -EOPNOTSUPP) {
		tm_unmap(&m);
		g_test_skip("kernel lacks UFFD_FEATURE_WP_ASYNC or PAGEMAP_SCAN");
		return;
	}
	g_assert_cmpint(ret, ==, 0);
	/* Collect before arm has no defined answer. */
	g_assert_cmpint(mig_wp_tracker_collect(t, map, NULL), ==, -EINVAL);
	mig_wp_tracker_free(t);
	mig_wp_tracker_free(NULL);
	tm_unmap(&m);
}

/* Memory the process never mapped cannot be tracked: the register fails, no leak. */
static void test_tracker_unmapped(void)
{
	MigWpTracker *t = NULL;
	TmMem m;

	g_assert_cmpint(tm_map(TM_ANON, 1 << 20, &m), ==, 0);
	munmap(m.base, m.len);
	g_assert_cmpint(mig_wp_tracker_new(m.base, m.len, 4096, &t), <, 0);
	g_assert_null(t);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/uffd/open/probe", test_probe);
	g_test_add_func("/uffd/open/plain", test_open_plain);
	g_test_add_func("/uffd/open/missing-feature", test_open_missing_feature);
	g_test_add_func("/uffd/open/wp-async", test_open_wp_async);
	g_test_add_func("/uffd/open/register-wp", test_register_wp);
	g_test_add_func("/uffd/open/devnode-fallback", test_devnode_fallback);
	g_test_add_func("/uffd/tracker/args", test_tracker_args);
	g_test_add_func("/uffd/tracker/unmapped", test_tracker_unmapped);
	return g_test_run();
}
