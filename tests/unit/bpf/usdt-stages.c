/* usdt-stages: migd's postcopy request probes (engine/probes.h: provider "mig", args
 * block and offset) fired with known timing by two processes, as ground truth for
 * mig-faultlat --stages.
 *
 * The parent plays the destination (fault_read, request_sent, page_received,
 * page_placed), a child the source (request_received, page_queued, page_sent); a pipe
 * carries each request and its answer. Every hop is a busy wait of a pseudo-random
 * length, and every probe is timed with CLOCK_MONOTONIC (bpf_ktime_get_ns()'s clock)
 * right before it fires and right after it returns: the tracer's timestamp lies between
 * the two. That bracket is as wide as the probe's trap, and wider when the thread is
 * preempted in the trap: the uprobe handler runs on the way back to user mode, after
 * any pending reschedule. Besides the complete requests:
 *  - every --skip-every'th request the source answers without page_queued/page_sent
 *    (as migd does for a page the bulk lane already sent): incomplete;
 *  - every 7th request faults twice (the second fault_read must not restart it);
 *  - one last request gets fault_read and request_sent only: unfinished;
 *  - a third process, not traced, fires every probe for the same keys every 100 µs:
 *    the tracer must not see it.
 *
 *   usdt-stages [--requests N] [--skip-every K] [--wait]
 *
 * With --wait it prints "ready DSTPID SRCPID DECOYPID" and waits for a line on stdin.
 * At the end it prints one JSON line: the counts and, over the complete requests, the
 * nearest-rank p50/p90/p99 of each hop and of the total, in µs, from the stamps before
 * the probes; "lo" and "hi", the same percentiles of each request's shortest and
 * longest hop its brackets allow (the second stage's before minus the first's after,
 * and the other way round); and "width", the percentiles of the brackets of the hop's
 * two stages. A tracer that is right on every request has each percentile between lo's
 * and hi's. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bpf/faultstages.h"

#ifdef MIG_HAVE_SDT
#include <sys/sdt.h>
#define PROBE(name, block, offset) DTRACE_PROBE2(mig, name, block, offset)
#else
#define PROBE(name, block, offset) do { (void)(block); (void)(offset); } while (0)
#endif

/* A probe of one request's stage, bracketed by the stopwatch. */
#define STAMPED(st, stage, name, block, offset) do {		\
	(st)->before[stage] = now_ns();				\
	PROBE(name, block, offset);				\
	(st)->after[stage] = now_ns();				\
} while (0)

/* One request's probes: stamped right before and right after each. */
struct stamps {
	uint64_t before[FS_NR_STAGES];
	uint64_t after[FS_NR_STAGES];
};

struct answer {
	struct stamps ts;	/* the source's stages only */
	uint32_t skipped;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Busy: a sleep would add its own slack, and the point is a known hop. */
static void spin_us(uint64_t us)
{
	uint64_t end = now_ns() + us * 1000;

	while (now_ns() < end)
		;
}

static uint32_t rnd(uint32_t *seed, uint32_t lo, uint32_t hi)
{
	*seed = *seed * 1103515245U + 12345U;
	return lo + (*seed >> 8) % (hi - lo + 1);
}

static int read_full(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int write_full(int fd, const void *buf, size_t len)
{
	return write(fd, buf, len) == (ssize_t)len ? 0 : -1;
}

static uint64_t block_of(uint64_t i)
{
	return i % 3;
}

static uint64_t offset_of(uint64_t i)
{
	return i << 12;
}

/* The source: answers requests until the pipe closes. */
static void source(int req_fd, int ans_fd, int skip_every)
{
	uint32_t seed = 7;
	uint64_t i;

	while (!read_full(req_fd, &i, sizeof(i))) {
		uint64_t b = block_of(i), off = offset_of(i);
		struct answer a = { .skipped = skip_every && i % (uint64_t)skip_every == (uint64_t)skip_every - 1 };

		STAMPED(&a.ts, FS_REQUEST_RECEIVED, request_received, b, off);
		if (!a.skipped) {
			spin_us(rnd(&seed, 1, 20));
			STAMPED(&a.ts, FS_PAGE_QUEUED, page_queued, b, off);
			spin_us(rnd(&seed, 20, 120));
			STAMPED(&a.ts, FS_PAGE_SENT, page_sent, b, off);
		}
		if (write_full(ans_fd, &a, sizeof(a)))
			break;
	}
	_exit(0);
}

/* Every probe, for the same keys, as fast as it goes, until killed. */
static void decoy(uint64_t n)
{
	for (uint64_t i = 0;; i = (i + 1) % n) {
		uint64_t b = block_of(i), off = offset_of(i);

		PROBE(fault_read, b, off);
		PROBE(request_sent, b, off);
		PROBE(request_received, b, off);
		PROBE(page_queued, b, off);
		PROBE(page_sent, b, off);
		PROBE(page_received, b, off);
		PROBE(page_placed, b, off);
		usleep(100);
	}
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static double pct_us(int64_t *v, size_t n, double p)
{
	double want = p / 100.0 * (double)n;
	size_t rank = (size_t)want;

	if ((double)rank < want)
		rank++;
	if (rank < 1)
		rank = 1;
	return (double)v[rank - 1] / 1e3;
}

/* "p50_us":...,"p99_us":... of v[], which it sorts. */
static void print_pcts(int64_t *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_i64);
	printf("\"p50_us\":%.3f,\"p90_us\":%.3f,\"p99_us\":%.3f", pct_us(v, n, 50), pct_us(v, n, 90),
	       pct_us(v, n, 99));
}

/* One hop over the complete requests: from the stamps before, and its lo, hi and width
 * (see the top). */
static void print_hop(const struct stamps *ts, int n, int from, int to, int64_t *v)
{
	size_t k;

	printf("{\"from\":\"%s\",\"to\":\"%s\",", fs_stage_name(from), fs_stage_name(to));
	for (int what = 0; what < 4; what++) {
		k = 0;
		for (int i = 0; i < n; i++) {
			const struct stamps *t = &ts[i];

			if (!t->before[FS_PAGE_QUEUED])
				continue;
			v[k++] = what == 0 ? (int64_t)(t->before[to] - t->before[from])
				: what == 1 ? (int64_t)(t->before[to] - t->after[from])
				: what == 2 ? (int64_t)(t->after[to] - t->before[from])
				: (int64_t)(t->after[from] - t->before[from] + t->after[to] - t->before[to]);
		}
		if (what == 0)
			printf("\"count\":%zu,", k);
		else
			printf(",\"%s\":{", what == 1 ? "lo" : what == 2 ? "hi" : "width");
		print_pcts(v, k);
		if (what)
			putchar('}');
	}
	putchar('}');
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "requests", required_argument, NULL, 'n' },
		{ "skip-every", required_argument, NULL, 'k' },
		{ "wait", no_argument, NULL, 'w' },
		{ NULL, 0, NULL, 0 },
	};
	int n = 500, skip_every = 5, c, req[2], ans[2];
	struct stamps *ts;
	unsigned int complete = 0, incomplete = 0, refaults = 0;
	bool wait_go = false;
	pid_t src, dcy, parent;
	uint32_t seed = 3;
	int64_t *v;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			n = atoi(optarg);
			break;
		case 'k':
			skip_every = atoi(optarg);
			break;
		case 'w':
			wait_go = true;
			break;
		default:
			fprintf(stderr, "usage: usdt-stages [--requests N] [--skip-every K] [--wait]\n");
			return 2;
		}
	}
	if (n < 1 || n > 1000000 || skip_every < 0) {
		fprintf(stderr, "bad --requests or --skip-every\n");
		return 2;
	}
#ifndef MIG_HAVE_SDT
	fprintf(stderr, "built without sys/sdt.h: no probes\n");
	return 2;
#endif
	ts = calloc((size_t)n, sizeof(*ts));
	v = calloc((size_t)n, sizeof(*v));
	if (!ts || !v || pipe(req) || pipe(ans)) {
		perror("usdt-stages");
		return 1;
	}
	fflush(stdout);
	parent = getpid();
	src = fork();
	if (src == 0) {
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() != parent)
			_exit(1);
		close(req[1]);
		close(ans[0]);
		source(req[0], ans[1], skip_every);
	}
	dcy = fork();
	if (dcy == 0) {
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() != parent)
			_exit(1);
		/* the source must see EOF when the parent closes its end */
		close(req[0]);
		close(req[1]);
		close(ans[0]);
		close(ans[1]);
		decoy((uint64_t)n + 1);
	}
	if (src < 0 || dcy < 0) {
		perror("fork");
		return 1;
	}
	close(req[0]);
	close(ans[1]);
	if (wait_go) {
		char line[64];

		printf("ready %d %d %d\n", (int)getpid(), (int)src, (int)dcy);
		fflush(stdout);
		if (!fgets(line, sizeof(line), stdin)) {
			kill(dcy, SIGKILL);
			return 1;
		}
	}

	for (uint64_t i = 0; i < (uint64_t)n; i++) {
		uint64_t b = block_of(i), off = offset_of(i);
		struct answer a;

		STAMPED(&ts[i], FS_FAULT_READ, fault_read, b, off);
		if (i % 7 == 3) {
			/* another thread faults on the same page: the request began earlier */
			spin_us(rnd(&seed, 1, 10));
			PROBE(fault_read, b, off);
			refaults++;
		}
		spin_us(rnd(&seed, 5, 60));
		STAMPED(&ts[i], FS_REQUEST_SENT, request_sent, b, off);
		if (write_full(req[1], &i, sizeof(i)) || read_full(ans[0], &a, sizeof(a))) {
			fprintf(stderr, "the source went away\n");
			return 1;
		}
		for (int st = FS_REQUEST_RECEIVED; st <= FS_PAGE_SENT; st++) {
			ts[i].before[st] = a.ts.before[st];
			ts[i].after[st] = a.ts.after[st];
		}
		STAMPED(&ts[i], FS_PAGE_RECEIVED, page_received, b, off);
		spin_us(rnd(&seed, 5, 40));
		STAMPED(&ts[i], FS_PAGE_PLACED, page_placed, b, off);
		/* a second copy of the page (bulk and urgent both sent it): ignored */
		if (i % 11 == 5) {
			PROBE(page_received, b, off);
			PROBE(page_placed, b, off);
		}
		if (a.skipped)
			incomplete++;
		else
			complete++;
	}
	/* One request that never gets an answer. */
	PROBE(fault_read, block_of((uint64_t)n), offset_of((uint64_t)n));
	PROBE(request_sent, block_of((uint64_t)n), offset_of((uint64_t)n));

	close(req[1]);
	waitpid(src, NULL, 0);

	printf("{\"complete\":%u,\"incomplete\":%u,\"unfinished\":1,\"repeated_faults\":%u,\"hops\":[",
	       complete, incomplete, refaults);
	for (int h = 0; h <= FS_NR_HOPS; h++) {
		int from = h < FS_NR_HOPS ? h : FS_FAULT_READ, to = h < FS_NR_HOPS ? h + 1 : FS_PAGE_PLACED;

		if (h == FS_NR_HOPS)
			printf("],\"total\":");
		else if (h)
			putchar(',');
		print_hop(ts, n, from, to, v);
	}
	printf("}\n");
	fflush(stdout);
	kill(dcy, SIGKILL);
	waitpid(dcy, NULL, 0);
	free(ts);
	free(v);
	return 0;
}
