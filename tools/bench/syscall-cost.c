/* syscall-cost: how long one trivial system call takes, in ns.
 *
 * A program on a system call tracepoint puts every system call of the machine on the
 * slow path, not only the traced process's: faultlat-overhead.py --syscall-cost runs
 * this beside an idle process the tool watches, with and without the tool. Prints the
 * best of three passes of CALLS getppid() calls (best: the least disturbed by the
 * rest of a shared machine).
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define CALLS	2000000
#define PASSES	3

static double now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(void)
{
	double best = 0;

	for (int p = 0; p < PASSES; p++) {
		double t0 = now_ns(), per;

		/* syscall(2), not getppid(): libc must not answer from a cache */
		for (int i = 0; i < CALLS; i++)
			syscall(SYS_getppid);
		per = (now_ns() - t0) / CALLS;
		if (!p || per < best)
			best = per;
	}
	printf("%.1f\n", best);
	return EXIT_SUCCESS;
}
