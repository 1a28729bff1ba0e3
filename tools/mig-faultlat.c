// SPDX-License-Identifier: (MIT OR GPL-2.0)
/* mig-faultlat: summarize how long the threads of a process wait on userfaultfd.
 *
 * The BPF side (bpf/faultlat.bpf.c) files every wait that a userfaultfd handler
 * resolved into per-page-size histograms; this side loads it, waits, and prints
 * percentiles and a log2 histogram per page size. Ends on Ctrl-C, after -d seconds, or
 * when the target exits.
 *
 * --stages breaks a migd postcopy page request down hop by hop instead: the USDT probes
 * of the source and destination migd (engine/probes.h), matched by (block, offset) in
 * bpf/faultstages.bpf.c, summarized by tools/faultlat/stages.c. docs/faultlat.md has
 * the methods and their limits. */
#include <argp.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "bpf/faultlat-loader.h"
#include "bpf/faultstages-loader.h"
#include "tools/faultlat/report.h"
#include "tools/faultlat/stages.h"

enum {
	OPT_STAGES = 0x100,
	OPT_SRC,
	OPT_DST,
	OPT_HOOKS_ONLY,
};

struct args {
	pid_t pid;
	pid_t tid;
	double duration_s;	/* 0: until Ctrl-C or the target exits */
	double interval_s;	/* 0: one report at the end */
	uint64_t min_us;
	bool json;
	bool verbose;
	bool method_set;
	bool hooks_only;
	enum fl_method method;
	bool stages;		/* --stages: per-hop breakdown of migd's page requests */
	pid_t src;
	pid_t dst;
};

static volatile sig_atomic_t exiting;

const char *argp_program_version = "mig-faultlat " MIG_VERSION;

static const char doc[] =
	"Summarize how long a process's threads wait on userfaultfd faults.\n"
	"\n"
	"USAGE: mig-faultlat -p PID [-t TID] [-d SECONDS] [-i INTERVAL] [-m MIN_US] [--json]\n"
	"       mig-faultlat --stages --src PID --dst PID [-d SECONDS] [--json]\n"
	"\n"
	"EXAMPLES:\n"
	"    mig-faultlat -p 1234             # until Ctrl-C or until 1234 exits\n"
	"    mig-faultlat -p 1234 -d 10       # 10 seconds, one summary\n"
	"    mig-faultlat -p 1234 -i 1 --json # a JSON line every second\n"
	"    mig-faultlat -p $(pidof qemu-system-x86_64) -m 100  # waits of 100 us or more\n"
	"    mig-faultlat --stages --src 1234 --dst 5678 -d 30  # migd request hops";

static const struct argp_option options[] = {
	{ "pid", 'p', "PID", 0, "Process to trace (required, except with --stages)", 0 },
	{ "tid", 't', "TID", 0, "Only this thread of PID", 0 },
	{ "duration", 'd', "SECONDS", 0, "Stop after this long", 0 },
	{ "interval", 'i', "SECONDS", 0, "Print (and reset) every INTERVAL", 0 },
	{ "min", 'm', "MIN_US", 0, "Ignore waits shorter than MIN_US microseconds", 0 },
	{ "json", 'j', NULL, 0, "One JSON object per report on stdout", 0 },
	{ "method", 'M', "METHOD", 0,
	  "auto (default), fentry, tracepoints (tp_btf, else classic), tp-btf or tp-classic", 0 },
	{ "verbose", 'v', NULL, 0, "libbpf debug output", 0 },
	{ "stages", OPT_STAGES, NULL, 0,
	  "Per-hop latency of migd's postcopy page requests (USDT probes; needs --src and --dst)", 0 },
	{ "src", OPT_SRC, "PID", 0, "With --stages: the source migd", 0 },
	{ "dst", OPT_DST, "PID", 0, "With --stages: the destination migd", 0 },
	{ "x-hooks-only", OPT_HOOKS_ONLY, NULL, 0,
	  "Attach every program but make each return at once (records nothing): for measuring "
	  "what the hooks alone cost", 0 },
	{ NULL, 'h', NULL, OPTION_HIDDEN, "Show this help", 0 },
	{ 0 },
};

static int parse_pid(const char *s, pid_t *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v <= 0 || v > INT_MAX)
		return -EINVAL;
	*out = (pid_t)v;
	return 0;
}

static int parse_seconds(const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || *end || !(v > 0) || v > 1e7)
		return -EINVAL;
	*out = v;
	return 0;
}

static error_t parse_arg(int key, char *arg, struct argp_state *state)
{
	struct args *a = state->input;
	double us;

	switch (key) {
	case 'p':
		if (parse_pid(arg, &a->pid))
			argp_error(state, "invalid PID: %s", arg);
		break;
	case 't':
		if (parse_pid(arg, &a->tid))
			argp_error(state, "invalid TID: %s", arg);
		break;
	case 'd':
		if (parse_seconds(arg, &a->duration_s))
			argp_error(state, "invalid duration: %s", arg);
		break;
	case 'i':
		if (parse_seconds(arg, &a->interval_s))
			argp_error(state, "invalid interval: %s", arg);
		break;
	case 'm':
		if (parse_seconds(arg, &us))
			argp_error(state, "invalid minimum: %s", arg);
		a->min_us = (uint64_t)us;
		break;
	case 'j':
		a->json = true;
		break;
	case 'v':
		a->verbose = true;
		break;
	case OPT_STAGES:
		a->stages = true;
		break;
	case OPT_HOOKS_ONLY:
		a->hooks_only = true;
		break;
	case OPT_SRC:
		if (parse_pid(arg, &a->src))
			argp_error(state, "invalid source PID: %s", arg);
		break;
	case OPT_DST:
		if (parse_pid(arg, &a->dst))
			argp_error(state, "invalid destination PID: %s", arg);
		break;
	case 'M':
		a->method_set = true;
		if (!strcmp(arg, "auto"))
			a->method = FL_METHOD_AUTO;
		else if (!strcmp(arg, "fentry"))
			a->method = FL_METHOD_FENTRY;
		else if (!strcmp(arg, "tracepoints"))
			a->method = FL_METHOD_TRACEPOINTS;
		else if (!strcmp(arg, "tp-btf"))
			a->method = FL_METHOD_TP_BTF;
		else if (!strcmp(arg, "tp-classic"))
			a->method = FL_METHOD_TP_CLASSIC;
		else
			argp_error(state, "unknown method: %s", arg);
		break;
	case 'h':
		argp_state_help(state, stderr, ARGP_HELP_STD_HELP);
		break;
	case ARGP_KEY_END:
		if (a->stages) {
			if (!a->src || !a->dst)
				argp_error(state, "--stages needs --src PID and --dst PID");
			if (a->pid || a->tid || a->interval_s || a->min_us || a->method_set || a->hooks_only)
				argp_error(state, "-p, -t, -i, -m, -M and --x-hooks-only do not apply to --stages");
		} else if (a->src || a->dst) {
			argp_error(state, "--src and --dst go with --stages");
		} else if (!a->pid) {
			argp_error(state, "-p PID is required");
		}
		break;
	default:
		return ARGP_ERR_UNKNOWN;
	}
	return 0;
}

static void sig_handler(int sig)
{
	exiting = 1;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A pidfd turns readable when the process exits: no polling /proc. */
static int open_target(pid_t pid)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0), err = errno;

	if (fd >= 0)
		return fd;
	/* A thread that is not a group leader: EINVAL before 6.9, ENOENT since. */
	if ((err == EINVAL || err == ENOENT) && !kill(pid, 0))
		fprintf(stderr, "%d is a thread, not a process: use -p TGID -t %d\n", pid, pid);
	else
		fprintf(stderr, "process %d: %s\n", pid, strerror(err));
	return -err;
}

/* SIGINT/SIGTERM stay blocked except inside ppoll(), so none can slip in between the
 * check of `exiting` and the wait. */
static int setup_signals(sigset_t *wait_mask)
{
	struct sigaction sa = { .sa_handler = sig_handler };
	sigset_t block;

	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &block, wait_mask))
		return -errno;
	sigdelset(wait_mask, SIGINT);
	sigdelset(wait_mask, SIGTERM);
	if (sigaction(SIGINT, &sa, NULL) || sigaction(SIGTERM, &sa, NULL))
		return -errno;
	return 0;
}

static int report(const struct args *a, struct faultlat_bpf *skel, struct fl_report *rep,
		  double since)
{
	int err;

	rep->seconds = now_s() - since;
	for (int ps = 0; ps < FL_NR_PS; ps++) {
		err = fl_read_hist(skel, ps, &rep->hist[ps]);
		if (err)
			return err;
	}
	if (a->json) {
		fl_report_json(stdout, rep);
	} else {
		if (a->interval_s) {
			time_t t = time(NULL);
			char buf[16];

			strftime(buf, sizeof(buf), "%H:%M:%S", localtime(&t));
			printf("\n%s", buf);
		}
		fl_report_text(stdout, rep);
	}
	return 0;
}

/* Waits for Ctrl-C, the end of -d, or the target's exit, reporting every -i. */
static int run(const struct args *a, struct faultlat_bpf *skel, int pidfd,
	       const sigset_t *wait_mask, struct fl_report *rep)
{
	double start = now_s(), since = start, until, left;
	struct pollfd pfd = { .fd = pidfd, .events = POLLIN };
	struct timespec ts;
	int n, err;

	for (;;) {
		until = a->interval_s ? since + a->interval_s : start + a->duration_s;
		if (a->duration_s && until > start + a->duration_s)
			until = start + a->duration_s;
		left = until - now_s();
		if (left < 0)
			left = 0;
		ts.tv_sec = (time_t)left;
		ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
		n = ppoll(&pfd, 1, a->interval_s || a->duration_s ? &ts : NULL, wait_mask);
		if (n < 0 && errno != EINTR)
			return -errno;
		if (exiting || n > 0 || (a->duration_s && now_s() >= start + a->duration_s))
			return report(a, skel, rep, since);
		if (a->interval_s && now_s() >= since + a->interval_s) {
			err = report(a, skel, rep, since);
			if (!err)
				err = fl_reset_hists(skel);
			if (err)
				return err;
			since = now_s();
		}
	}
}

struct stages_ctx {
	struct fs_records placed;
	struct fs_records open;
	uint64_t dropped;	/* out of memory */
};

/* Requests that passed every stage, as they finish. */
static void on_complete(void *opaque, const struct fs_record *r)
{
	struct stages_ctx *c = opaque;

	if (fs_records_add(&c->placed, r))
		c->dropped++;
}

/* What the map holds at the end: placed without passing every stage, or not placed. */
static void on_left(void *opaque, const struct fs_record *r)
{
	struct stages_ctx *c = opaque;

	if (fs_records_add(r->ts[FS_PAGE_PLACED] ? &c->placed : &c->open, r))
		c->dropped++;
}

/* --stages: collect complete requests until Ctrl-C, -d, or either process exits, then
 * take the rest from the map and print the breakdown. */
static int run_stages(const struct args *a, const sigset_t *wait_mask)
{
	struct stages_ctx c = { 0 };
	struct fs_tracer *t = NULL;
	struct fs_report *rep = NULL;
	struct pollfd pfd[3];
	double start, left;
	struct timespec ts;
	char why[512];
	int n, err;

	pfd[1].fd = open_target(a->src);
	pfd[2].fd = open_target(a->dst);
	if (pfd[1].fd < 0 || pfd[2].fd < 0) {
		err = -ESRCH;
		goto out;
	}
	rep = calloc(1, sizeof(*rep));
	if (!rep) {
		err = -ENOMEM;
		goto out;
	}
	err = fs_open(&(struct fs_config){ .src = a->src, .dst = a->dst, .verbose = a->verbose },
		      on_complete, &c, &t, why, sizeof(why));
	if (err) {
		fprintf(stderr, "failed to attach: %s\n", why[0] ? why : strerror(-err));
		goto out;
	}
	fprintf(a->json ? stderr : stdout, "method: %s\n", fs_method_desc());
	fprintf(a->json ? stderr : stdout,
		"Tracing postcopy requests from destination PID %d to source PID %d... "
		"Hit Ctrl-C to end.\n", a->dst, a->src);
	fflush(stdout);
	fflush(stderr);

	pfd[0].fd = fs_epoll_fd(t);
	for (int i = 0; i < 3; i++)
		pfd[i].events = POLLIN;
	start = now_s();
	for (;;) {
		left = a->duration_s ? start + a->duration_s - now_s() : 1;
		if (left < 0)
			left = 0;
		ts.tv_sec = (time_t)left;
		ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
		n = ppoll(pfd, 3, &ts, wait_mask);
		if (n < 0 && errno != EINTR) {
			err = -errno;
			break;
		}
		err = fs_consume(t);
		if (err < 0)
			break;
		err = 0;
		if (exiting || (n > 0 && (pfd[1].revents || pfd[2].revents)) ||
		    (a->duration_s && now_s() >= start + a->duration_s))
			break;
	}
	rep->seconds = now_s() - start;
	fs_stop(t);
	if (!err) {
		n = fs_consume(t);
		err = n < 0 ? n : 0;
	}
	if (!err) {
		n = fs_for_each_open(t, on_left, &c);
		err = n < 0 ? n : 0;
	}
	if (!err && c.dropped)
		err = -ENOMEM;
	if (!err)
		err = fs_summarize(&c.placed, &c.open, &rep->sum);
	if (err) {
		fprintf(stderr, "error: %s\n", strerror(-err));
		goto out;
	}
	rep->src = a->src;
	rep->dst = a->dst;
	rep->method = "usdt";
	fs_read_counters(t, rep->counters);
	if (a->json)
		fs_report_json(stdout, rep);
	else
		fs_report_text(stdout, rep);
out:
	fs_close(t);
	fs_records_free(&c.placed);
	fs_records_free(&c.open);
	free(rep);
	for (int i = 1; i < 3; i++)
		if (pfd[i].fd >= 0)
			close(pfd[i].fd);
	return err ? 1 : 0;
}

int main(int argc, char **argv)
{
	static const struct argp argp = { options, parse_arg, NULL, doc, NULL, NULL, NULL };
	struct args a = { .method = FL_METHOD_AUTO };
	struct faultlat_bpf *skel = NULL;
	struct fl_report *rep = NULL;
	enum fl_method used;
	sigset_t wait_mask;
	int pidfd, err;

	err = argp_parse(&argp, argc, argv, 0, NULL, &a);
	if (err)
		return 1;
	if (a.stages) {
		if (setup_signals(&wait_mask)) {
			perror("signals");
			return 1;
		}
		return run_stages(&a, &wait_mask);
	}
	pidfd = open_target(a.pid);
	if (pidfd < 0)
		return 1;
	rep = calloc(1, sizeof(*rep));
	err = rep ? setup_signals(&wait_mask) : -ENOMEM;
	if (err)
		goto out;

	err = fl_load(&(struct fl_config){ .tgid = a.pid, .tid = a.tid, .min_ns = a.min_us * 1000,
					   .method = a.method, .verbose = a.verbose, .hooks_only = a.hooks_only },
		      &skel, &used);
	if (err) {
		fprintf(stderr, "failed to load and attach BPF programs: %s\n", strerror(-err));
		goto out;
	}
	rep->pid = a.pid;
	rep->method = used == FL_METHOD_FENTRY ? "fentry" : "tracepoints";

	/* With --json, stdout carries only JSON; the rest goes to stderr. */
	fprintf(a.json ? stderr : stdout, "method: %s\n", fl_method_desc(used));
	fprintf(a.json ? stderr : stdout,
		"Tracing userfaultfd waits of PID %d... Hit Ctrl-C to end.\n", a.pid);
	fflush(stdout);
	fflush(stderr);

	err = run(&a, skel, pidfd, &wait_mask, rep);
	if (err)
		fprintf(stderr, "error: %s\n", strerror(-err));
out:
	fl_unload(skel);
	free(rep);
	close(pidfd);
	return err ? 1 : 0;
}
