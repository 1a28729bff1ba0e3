/* The shaped-network test bed of migbench; see netns.h. */
#include "tools/bench/netns.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define NETNS_DIR "/var/run/netns"   /* where ip(8) keeps named namespaces */
#define CMD_TIMEOUT_MS 10000         /* one ip/tc command; they take milliseconds */
#define CMD_OUTPUT_MAX 4096          /* what we keep of a command's output for errors */
#define STALE_MAX 1000               /* namespaces looked at per reap */
#define ADDR_SRC "169.254.77.1"
#define ADDR_DST "169.254.77.2"
#define ADDR_PREFIX "/30"

#define NET_ERROR (net_error_quark())
static G_DEFINE_QUARK(bench-net-error, net_error)

/* Runs argv (argv[0] a path) with stdout and stderr collected, waiting at most
 * CMD_TIMEOUT_MS; a command still running then is killed and reaped. The child gets an
 * empty signal mask and SIGPIPE at its default: migbench blocks signals for its sigwait
 * thread and ignores SIGPIPE, and both would be inherited. */
static gboolean run_cmd(const char *const *argv, GError **err)
{
	gint64 end = g_get_monotonic_time() + (gint64)CMD_TIMEOUT_MS * 1000;
	g_autofree char *cmdline = g_strjoinv(" ", (char **)argv);
	GString *out = g_string_new(NULL);
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, dflt;
	int pipefd[2], status = 0, rc;
	gboolean exited = FALSE, ok = FALSE;
	pid_t pid;

	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		g_set_error(err, NET_ERROR, 0, "pipe: %s", g_strerror(errno));
		g_string_free(out, TRUE);
		return FALSE;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
	posix_spawnattr_init(&attr);
	sigemptyset(&none);
	sigemptyset(&dflt);
	sigaddset(&dflt, SIGPIPE);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &dflt);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	rc = posix_spawn(&pid, argv[0], &fa, &attr, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(pipefd[1]);
	if (rc) {
		g_set_error(err, NET_ERROR, 0, "%s: %s", cmdline, g_strerror(rc));
		close(pipefd[0]);
		g_string_free(out, TRUE);
		return FALSE;
	}
	/* read until EOF (the command and anything it forked are done with the pipe) or
	 * the deadline; each round either reads, sees EOF, or waits out part of the time */
	for (int i = 0; i < CMD_TIMEOUT_MS; i++) {
		gint64 left_ms = (end - g_get_monotonic_time()) / 1000;
		struct pollfd pfd = { .fd = pipefd[0], .events = POLLIN };
		char buf[512];
		ssize_t n;

		if (left_ms <= 0 || poll(&pfd, 1, (int)MIN(left_ms, 100)) < 0)
			break;
		if (!pfd.revents)
			continue;
		n = read(pipefd[0], buf, sizeof(buf));
		if (n <= 0)
			break;
		if (out->len < CMD_OUTPUT_MAX)
			g_string_append_len(out, buf, MIN((gsize)n, CMD_OUTPUT_MAX - out->len));
	}
	close(pipefd[0]);
	for (int i = 0; i <= CMD_TIMEOUT_MS / 5 && !exited; i++) {
		exited = waitpid(pid, &status, WNOHANG) == pid;
		if (!exited && g_get_monotonic_time() >= end)
			break;
		if (!exited)
			g_usleep(5000);
	}
	if (!exited) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);   /* SIGKILLed and never stopped: returns */
		g_set_error(err, NET_ERROR, 0, "%s: no answer in %d s", cmdline, CMD_TIMEOUT_MS / 1000);
	} else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		g_strchomp(out->str);
		g_set_error(err, NET_ERROR, 0, "%s: %s %d%s%s", cmdline,
			    WIFEXITED(status) ? "exit status" : "killed by signal",
			    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), out->len ? ": " : "", out->str);
	} else {
		ok = TRUE;
	}
	g_string_free(out, TRUE);
	return ok;
}

static gboolean run_v(GError **err, const char *first, ...) G_GNUC_NULL_TERMINATED;
static gboolean run_v(GError **err, const char *first, ...)
{
	g_autoptr(GPtrArray) argv = g_ptr_array_new();
	va_list ap;

	va_start(ap, first);
	for (const char *a = first; a; a = va_arg(ap, const char *))
		g_ptr_array_add(argv, (gpointer)a);
	va_end(ap);
	g_ptr_array_add(argv, NULL);
	return run_cmd((const char *const *)argv->pdata, err);
}

static gboolean ns_exists(const char *name)
{
	g_autofree char *path = g_build_filename(NETNS_DIR, name, NULL);

	return g_file_test(path, G_FILE_TEST_EXISTS);
}

/* The pid in "mig-WORD-PID", or 0 when the name is not one of ours. */
static pid_t stale_pid(const char *name)
{
	const char *dash;
	guint64 pid;

	if (!g_str_has_prefix(name, "mig-") || !(dash = strrchr(name, '-')) || dash == name + 3)
		return 0;
	for (const char *p = name + 4; p < dash; p++)
		if (!g_ascii_isalnum(*p))
			return 0;
	if (!g_ascii_string_to_unsigned(dash + 1, 10, 1, G_MAXINT32, &pid, NULL))
		return 0;
	return (pid_t)pid;
}

static gboolean pid_gone(pid_t pid)
{
	return kill(pid, 0) < 0 && errno == ESRCH;
}

guint bench_net_reap_stale(void)
{
	g_autofree char *ip = g_find_program_in_path("ip");
	g_autoptr(GDir) d = g_dir_open(NETNS_DIR, 0, NULL);
	g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
	const char *name;
	guint reaped = 0;

	if (!ip || !d)
		return 0;
	/* names first: deleting while reading the directory could skip entries */
	for (int i = 0; i < STALE_MAX && (name = g_dir_read_name(d)) != NULL; i++) {
		pid_t pid = stale_pid(name);

		if (pid && pid_gone(pid))
			g_ptr_array_add(names, g_strdup(name));
	}
	for (guint i = 0; i < names->len; i++) {
		g_autoptr(GError) err = NULL;

		if (run_v(&err, ip, "netns", "del", (char *)g_ptr_array_index(names, i), NULL)) {
			g_printerr("migbench: deleted the stale network namespace %s (its process is gone)\n",
				   (char *)g_ptr_array_index(names, i));
			reaped++;
		} else {
			g_printerr("migbench: could not delete the stale network namespace %s: %s\n",
				   (char *)g_ptr_array_index(names, i), err->message);
		}
	}
	return reaped;
}

/* Inside namespace ns: `ip -n NS ...` or `tc -n NS ...` with the rest of the words. */
static gboolean in_ns(const char *tool, const char *ns, GError **err, const char *const *words)
{
	g_autoptr(GPtrArray) argv = g_ptr_array_new();

	g_ptr_array_add(argv, (gpointer)tool);
	g_ptr_array_add(argv, "-n");
	g_ptr_array_add(argv, (gpointer)ns);
	for (; *words; words++)
		g_ptr_array_add(argv, (gpointer)*words);
	g_ptr_array_add(argv, NULL);
	return run_cmd((const char *const *)argv->pdata, err);
}

static gboolean build(BenchNet *n, const char *tc, GError **err)
{
	/* an old bed of ours can only be from a dead process that had our pid */
	for (int s = 0; s < 2; s++) {
		if (ns_exists(n->ns[s]) && !run_v(err, n->ip, "netns", "del", n->ns[s], NULL))
			return FALSE;
	}
	for (int s = 0; s < 2; s++) {
		if (!run_v(err, n->ip, "netns", "add", n->ns[s], NULL))
			return FALSE;
		n->made[s] = TRUE;
	}
	/* both ends are born inside their namespaces: the host's never sees them */
	if (!run_v(err, n->ip, "link", "add", n->dev[0], "netns", n->ns[0], "type", "veth", "peer", "name", n->dev[1],
		   "netns", n->ns[1], NULL))
		return FALSE;
	for (int s = 0; s < 2; s++) {
		g_autofree char *cidr = g_strconcat(n->addr[s], ADDR_PREFIX, NULL);
		const char *lo_up[] = { "link", "set", "lo", "up", NULL };
		const char *addr[] = { "addr", "add", cidr, "dev", n->dev[s], NULL };
		const char *up[] = { "link", "set", n->dev[s], "up", NULL };
		const char *shape[] = { "qdisc", "add", "dev", n->dev[s], "root", "tbf", "rate", n->rate, "burst",
					"256kb", "latency", "20ms", NULL };

		if (!in_ns(n->ip, n->ns[s], err, lo_up) || !in_ns(n->ip, n->ns[s], err, addr) ||
		    !in_ns(tc, n->ns[s], err, shape) || !in_ns(n->ip, n->ns[s], err, up))
			return FALSE;
	}
	return TRUE;
}

BenchNet *bench_net_new(const char *rate, GError **err)
{
	g_autofree char *tc = g_find_program_in_path("tc");
	BenchNet *n = g_new0(BenchNet, 1);
	static const char *const sides[2] = { "src", "dst" };

	n->ip = g_find_program_in_path("ip");
	n->rate = g_strdup(rate ? rate : BENCH_NET_RATE);
	if (!n->ip || !tc) {
		g_set_error(err, NET_ERROR, 0, "the netns bed needs ip and tc (iproute2) in PATH");
		bench_net_free(n);
		return NULL;
	}
	bench_net_reap_stale();
	for (int s = 0; s < 2; s++) {
		n->ns[s] = g_strdup_printf("mig-%s-%d", sides[s], (int)getpid());
		n->dev[s] = g_strdup_printf("mig-%s", sides[s]);
	}
	n->addr[BENCH_NET_SRC] = g_strdup(ADDR_SRC);
	n->addr[BENCH_NET_DST] = g_strdup(ADDR_DST);
	if (!build(n, tc, err)) {
		g_prefix_error(err, "netns bed: ");
		bench_net_free(n);
		return NULL;
	}
	return n;
}

/* Down on the source's end: the veth peer loses its carrier as well, so nothing crosses
 * either way, and the sockets see no reset (their packets are just not delivered). Up
 * again brings the connected route back; the addresses and the shaping stay throughout. */
gboolean bench_net_set_link(BenchNet *n, gboolean up, GError **err)
{
	const char *words[] = { "link", "set", n->dev[BENCH_NET_SRC], up ? "up" : "down", NULL };

	return in_ns(n->ip, n->ns[BENCH_NET_SRC], err, words);
}

void bench_net_free(BenchNet *n)
{
	if (!n)
		return;
	for (int s = 0; s < 2; s++) {
		g_autoptr(GError) err = NULL;

		if (n->made[s] && !run_v(&err, n->ip, "netns", "del", n->ns[s], NULL))
			g_printerr("migbench: could not delete network namespace %s: %s\n", n->ns[s], err->message);
		g_free(n->ns[s]);
		g_free(n->dev[s]);
		g_free(n->addr[s]);
	}
	g_free(n->ip);
	g_free(n->rate);
	g_free(n);
}

const char **bench_net_wrap(const BenchNet *n, BenchNetSide side, const char *const *argv)
{
	guint len = g_strv_length((char **)argv);
	const char **v = g_new0(const char *, len + 5);

	v[0] = n->ip;
	v[1] = "netns";
	v[2] = "exec";
	v[3] = n->ns[side];
	memcpy(v + 4, argv, len * sizeof(*v));
	return v;
}
