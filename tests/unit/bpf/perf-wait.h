/* perf-wait: the kernel's own timestamps of one thread's page faults and context
 * switches (a perf event the thread opens on itself), to time a fault's wait the way
 * mig-faultlat defines it: from the page fault to the thread's return to running.
 *
 * A stopwatch in user mode also times the exception entry before the fault is seen and
 * everything after the thread runs again (the rest of handle_userfault(), the retry,
 * the return to user mode). Those are outside any tracer's wait, and on a machine where
 * a kernel entry is expensive they are as long as a short wait itself. */
#ifndef PERF_WAIT_H
#define PERF_WAIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct perf_wait {
	int fd;
	void *ring;		/* the perf mmap: header page, then the data ring */
	size_t ring_size;	/* data part, a power of two */
};

/* One touch's wait, from the records between two perf_wait_drain() calls. */
struct perf_wait_span {
	uint64_t start;		/* fault on the page (or blocking for GUP), CLOCK_MONOTONIC ns;
				 * 0 for a GUP touch that never blocked */
	uint64_t end;		/* first switch-in after blocking; 0 if it never blocked */
};

/* For the calling thread. Negative errno. */
int perf_wait_open(struct perf_wait *pw);
void perf_wait_close(struct perf_wait *pw);
/* Forgets every record so far: the next touch starts clean. */
void perf_wait_drain(struct perf_wait *pw);
/* The wait of the touch of [page, page + len) since the last drain. gup: the fault is
 * taken inside the kernel, which reports no fault event; the wait starts when the
 * thread blocks, as mig-faultlat's GUP waits do. -ENOENT when no fault on the page was
 * recorded, -EOVERFLOW when records were lost. Drains. */
int perf_wait_span(struct perf_wait *pw, uint64_t page, size_t len, bool gup,
		   struct perf_wait_span *span);

#endif
