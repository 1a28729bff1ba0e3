/* The child processes of one migbench invocation: spawned with their output in log
 * files, waited for with bounded waits, and all killed and reaped on every exit path.
 * A signal thread may call bench_procs_interrupt() at any time; reaping and killing
 * happen under one lock so a pid is never signalled after it was reaped (and reused). */
#pragma once
#include <glib.h>
#include <sys/types.h>

typedef struct BenchProcs BenchProcs;

typedef struct BenchChild {
	pid_t pid;
	char *name;
	char *out_path;     /* the child's stdout */
	char *err_path;     /* the child's stderr */
	gboolean exited;    /* reaped; status is valid */
	int status;         /* as from waitpid() */
} BenchChild;

BenchProcs *bench_procs_new(void);
/* Kills and reaps whatever is still running, then frees. */
void bench_procs_free(BenchProcs *p);

/* Called from the signal thread: refuses new children from now on and SIGKILLs the
 * running ones, which makes every wait of the main thread end promptly. */
void bench_procs_interrupt(BenchProcs *p);
gboolean bench_procs_interrupted(BenchProcs *p);

/* Starts argv[0] (a path) with stdin from /dev/null and stdout/stderr in
 * DIR/NAME.out and DIR/NAME.err. The child dies with us (PR_SET_PDEATHSIG). */
BenchChild *bench_child_spawn(BenchProcs *p, const char *dir, const char *name,
			      const char *const *argv, GError **err);
/* Reaps the child if it has exited; TRUE while it is still running. */
gboolean bench_child_alive(BenchProcs *p, BenchChild *c);
/* Waits up to timeout_ms for the child to exit; TRUE if it did. */
gboolean bench_child_wait(BenchProcs *p, BenchChild *c, int timeout_ms);
/* SIGTERM, up to grace_ms for it to go, then SIGKILL and reap. */
void bench_child_stop(BenchProcs *p, BenchChild *c, int grace_ms);
/* Stops the child if needed and forgets it. */
void bench_child_free(BenchProcs *p, BenchChild *c);
/* "exited with status 3", "killed by signal 9" or "still running". */
char *bench_child_describe(const BenchChild *c);
/* The last non-empty line of the child's stderr (for error messages), or "". */
char *bench_child_err_tail(const BenchChild *c);
