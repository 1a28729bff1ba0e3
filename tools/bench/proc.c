/* Child processes of migbench; see proc.h. */
#include "tools/bench/proc.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define POLL_US 5000        /* how often bounded waits look at a child */
#define KILL_WAIT_MS 10000  /* a SIGKILLed child that takes longer than this is stuck in D state */

struct BenchProcs {
	GMutex lock;
	GPtrArray *children;    /* BenchChild *, not owned; guarded by lock */
	gboolean interrupted;   /* guarded by lock */
};

BenchProcs *bench_procs_new(void)
{
	BenchProcs *p = g_new0(BenchProcs, 1);

	g_mutex_init(&p->lock);
	p->children = g_ptr_array_new();
	return p;
}

void bench_procs_free(BenchProcs *p)
{
	/* the array shrinks as each child is freed; bounded by its length at entry */
	for (guint n = p->children->len; n > 0 && p->children->len; n--)
		bench_child_free(p, g_ptr_array_index(p->children, 0));
	g_ptr_array_free(p->children, TRUE);
	g_mutex_clear(&p->lock);
	g_free(p);
}

void bench_procs_interrupt(BenchProcs *p)
{
	g_mutex_lock(&p->lock);
	p->interrupted = TRUE;
	for (guint i = 0; i < p->children->len; i++) {
		BenchChild *c = g_ptr_array_index(p->children, i);

		if (!c->exited)
			kill(c->pid, SIGKILL);
	}
	g_mutex_unlock(&p->lock);
}

gboolean bench_procs_interrupted(BenchProcs *p)
{
	gboolean v;

	g_mutex_lock(&p->lock);
	v = p->interrupted;
	g_mutex_unlock(&p->lock);
	return v;
}

static int open_log(const char *path, GError **err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0)
		g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(errno), "%s: %s", path, g_strerror(errno));
	return fd;
}

/* Runs in the forked child of a threaded parent: only async-signal-safe calls. */
static G_NORETURN void child_exec(int in, int out, int errfd, pid_t parent, const char *const *argv)
{
	static const char msg[] = "migbench: exec failed\n";
	sigset_t none;

	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(errfd, 2) < 0)
		_exit(127);
	/* the parent blocks signals for its sigwait thread and ignores SIGPIPE; a child
	 * inherits both across exec, so give it a clean slate */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	/* no orphans even if migbench itself is SIGKILLed */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
	execv(argv[0], (char *const *)argv);
	if (write(2, msg, sizeof(msg) - 1) < 0)
		_exit(127);
	_exit(127);
}

BenchChild *bench_child_spawn(BenchProcs *p, const char *dir, const char *name,
			      const char *const *argv, GError **err)
{
	g_autofree char *out_path = g_strdup_printf("%s/%s.out", dir, name);
	g_autofree char *err_path = g_strdup_printf("%s/%s.err", dir, name);
	int in = -1, out = -1, errfd = -1;
	BenchChild *c = NULL;
	pid_t parent = getpid(), pid;

	in = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(errno), "/dev/null: %s", g_strerror(errno));
		goto out;
	}
	if ((out = open_log(out_path, err)) < 0 || (errfd = open_log(err_path, err)) < 0)
		goto out;
	/* fork under the lock: an interrupt either comes first (and we refuse) or sees
	 * the new pid in the list and kills it */
	g_mutex_lock(&p->lock);
	if (p->interrupted) {
		g_mutex_unlock(&p->lock);
		g_set_error(err, G_SPAWN_ERROR, G_SPAWN_ERROR_FAILED, "interrupted");
		goto out;
	}
	pid = fork();
	if (pid == 0)
		child_exec(in, out, errfd, parent, argv);
	if (pid < 0) {
		g_mutex_unlock(&p->lock);
		g_set_error(err, G_SPAWN_ERROR, G_SPAWN_ERROR_FORK, "fork: %s", g_strerror(errno));
		goto out;
	}
	c = g_new0(BenchChild, 1);
	c->pid = pid;
	c->name = g_strdup(name);
	c->out_path = g_steal_pointer(&out_path);
	c->err_path = g_steal_pointer(&err_path);
	g_ptr_array_add(p->children, c);
	g_mutex_unlock(&p->lock);
out:
	for (int i = 0; i < 3; i++) {
		int fd = i == 0 ? in : i == 1 ? out : errfd;

		if (fd >= 0)
			close(fd);
	}
	return c;
}

gboolean bench_child_alive(BenchProcs *p, BenchChild *c)
{
	gboolean alive;

	g_mutex_lock(&p->lock);
	if (!c->exited) {
		int st = 0;
		pid_t r = waitpid(c->pid, &st, WNOHANG);

		if (r == c->pid || (r < 0 && errno == ECHILD)) {
			c->exited = TRUE;
			c->status = r == c->pid ? st : -1;
		}
	}
	alive = !c->exited;
	g_mutex_unlock(&p->lock);
	return alive;
}

gboolean bench_child_wait(BenchProcs *p, BenchChild *c, int timeout_ms)
{
	gint64 end = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
	guint64 max_polls = (guint64)timeout_ms * 1000 / POLL_US + 2;

	for (guint64 i = 0; i < max_polls; i++) {
		if (!bench_child_alive(p, c))
			return TRUE;
		if (g_get_monotonic_time() >= end)
			break;
		g_usleep(POLL_US);
	}
	return !bench_child_alive(p, c);
}

static void child_signal(BenchProcs *p, BenchChild *c, int sig)
{
	g_mutex_lock(&p->lock);
	if (!c->exited)
		kill(c->pid, sig);
	g_mutex_unlock(&p->lock);
}

void bench_child_stop(BenchProcs *p, BenchChild *c, int grace_ms)
{
	if (!bench_child_alive(p, c))
		return;
	child_signal(p, c, SIGTERM);
	if (bench_child_wait(p, c, grace_ms))
		return;
	child_signal(p, c, SIGKILL);
	if (!bench_child_wait(p, c, KILL_WAIT_MS))
		g_printerr("migbench: %s (pid %d) survives SIGKILL; leaving it\n", c->name, (int)c->pid);
}

void bench_child_free(BenchProcs *p, BenchChild *c)
{
	if (!c)
		return;
	bench_child_stop(p, c, 0);
	g_mutex_lock(&p->lock);
	g_ptr_array_remove(p->children, c);
	g_mutex_unlock(&p->lock);
	g_free(c->name);
	g_free(c->out_path);
	g_free(c->err_path);
	g_free(c);
}

char *bench_child_describe(const BenchChild *c)
{
	if (!c->exited)
		return g_strdup("still running");
	if (c->status < 0)
		return g_strdup("exit status lost");
	if (WIFSIGNALED(c->status))
		return g_strdup_printf("killed by signal %d", WTERMSIG(c->status));
	return g_strdup_printf("exited with status %d", WEXITSTATUS(c->status));
}

char *bench_child_err_tail(const BenchChild *c)
{
	g_autofree char *text = NULL;
	gsize len = 0;
	char *end, *start;

	if (!g_file_get_contents(c->err_path, &text, &len, NULL))
		return g_strdup("");
	end = text + len;
	while (end > text && g_ascii_isspace(end[-1]))
		end--;
	*end = '\0';
	start = strrchr(text, '\n');
	return g_strdup(start ? start + 1 : text);
}
