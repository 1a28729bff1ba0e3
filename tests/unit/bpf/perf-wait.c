/* perf-wait: a thread's faults and context switches, timed by the kernel (perf-wait.h).
 *
 * One software event per thread, PERF_COUNT_SW_PAGE_FAULTS with a period of 1 (a sample
 * per fault, with its address; do_user_addr_fault() emits it as it starts, right after
 * the page_fault_user tracepoint), plus context-switch records, all on CLOCK_MONOTONIC
 * like the stopwatch. A switch-out says whether the thread was preempted or blocked;
 * the switch-in record comes when the thread runs again. A period-1 software event is
 * never throttled, so every fault is there. */
#include <errno.h>
#include <linux/perf_event.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "perf-wait.h"

#define RING_PAGES	16	/* a touch leaves a handful of records */

int perf_wait_open(struct perf_wait *pw)
{
	struct perf_event_attr a = {
		.type = PERF_TYPE_SOFTWARE,
		.size = sizeof(a),
		.config = PERF_COUNT_SW_PAGE_FAULTS,
		.sample_period = 1,
		.sample_type = PERF_SAMPLE_TIME | PERF_SAMPLE_ADDR,
		.context_switch = 1,
		.sample_id_all = 1,	/* switch records carry their time too */
		.use_clockid = 1,
		.clockid = CLOCK_MONOTONIC,
		.exclude_hv = 1,
	};
	long page = sysconf(_SC_PAGESIZE);

	*pw = (struct perf_wait){ .fd = -1, .ring = MAP_FAILED };
	pw->fd = (int)syscall(SYS_perf_event_open, &a, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
	if (pw->fd < 0)
		return -errno;
	pw->ring_size = (size_t)page * RING_PAGES;
	pw->ring = mmap(NULL, (size_t)page + pw->ring_size, PROT_READ | PROT_WRITE, MAP_SHARED,
			pw->fd, 0);
	if (pw->ring == MAP_FAILED) {
		int err = -errno;

		perf_wait_close(pw);
		return err;
	}
	return 0;
}

void perf_wait_close(struct perf_wait *pw)
{
	if (pw->ring != MAP_FAILED)
		munmap(pw->ring, (size_t)sysconf(_SC_PAGESIZE) + pw->ring_size);
	if (pw->fd >= 0)
		close(pw->fd);
	pw->ring = MAP_FAILED;
	pw->fd = -1;
}

void perf_wait_drain(struct perf_wait *pw)
{
	struct perf_event_mmap_page *meta = pw->ring;

	__atomic_store_n(&meta->data_tail, __atomic_load_n(&meta->data_head, __ATOMIC_ACQUIRE),
			 __ATOMIC_RELEASE);
}

/* Copies the record at offset pos of the ring out, unwrapped. */
static void copy_out(const struct perf_wait *pw, uint64_t pos, void *dst, size_t len)
{
	const char *data = (const char *)pw->ring + sysconf(_SC_PAGESIZE);
	size_t off = pos & (pw->ring_size - 1), first = pw->ring_size - off;

	if (first > len)
		first = len;
	memcpy(dst, data + off, first);
	memcpy((char *)dst + first, data, len - first);
}

int perf_wait_span(struct perf_wait *pw, uint64_t page, size_t len, bool gup,
		   struct perf_wait_span *span)
{
	struct perf_event_mmap_page *meta = pw->ring;
	uint64_t head = __atomic_load_n(&meta->data_head, __ATOMIC_ACQUIRE);
	uint64_t pos = meta->data_tail;
	bool started = false, blocked = false;
	int err = 0;
	union {
		struct perf_event_header h;
		char buf[64];
	} rec;
	/* The body of a sample (PERF_SAMPLE_TIME, then _ADDR), or a switch record's
	 * sample_id (its time only). */
	const uint64_t *body = (const uint64_t *)(rec.buf + sizeof(rec.h));

	*span = (struct perf_wait_span){ 0 };
	while (pos < head && !err) {
		copy_out(pw, pos, &rec.h, sizeof(rec.h));
		if (rec.h.size < sizeof(rec.h) || rec.h.size > sizeof(rec)) {
			err = -EPROTO;
			break;
		}
		copy_out(pw, pos, rec.buf, rec.h.size);
		pos += rec.h.size;
		switch (rec.h.type) {
		case PERF_RECORD_SAMPLE:
			/* The retry after the wait is not a new fault: the first sample is it. */
			if (!gup && !started && body[1] - page < len) {
				span->start = body[0];
				started = true;
			}
			break;
		case PERF_RECORD_SWITCH:
			if (rec.h.misc & PERF_RECORD_MISC_SWITCH_OUT) {
				/* Preempted is still running: not the wait. */
				if (blocked || (!started && !gup) ||
				    (rec.h.misc & PERF_RECORD_MISC_SWITCH_OUT_PREEMPT))
					break;
				blocked = true;
				if (!started) {
					span->start = body[0];
					started = true;
				}
			} else if (blocked && !span->end) {
				span->end = body[0];
			}
			break;
		case PERF_RECORD_LOST:
		case PERF_RECORD_THROTTLE:
			err = -EOVERFLOW;
			break;
		}
	}
	__atomic_store_n(&meta->data_tail, head, __ATOMIC_RELEASE);
	/* A GUP touch that never blocked leaves nothing to start at: that is no error. */
	if (!err && !started && !gup)
		err = -ENOENT;
	return err;
}
