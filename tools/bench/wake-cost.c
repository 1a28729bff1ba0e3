/* wake-cost: how long a blocked thread takes to run again once woken, in µs.
 *
 * Postcopy recovery's resume, and any request that crosses threads, is a chain of
 * such hand-offs; what one costs bounds what the chain can reach. A thread on CPU 0
 * sleeps IDLE_US (so the other CPU has gone idle), stamps the time and writes a pipe;
 * a thread on CPU 1 blocked in read(2) stamps its return. Prints p10, p50 and p90 of
 * COUNT hand-offs. Where an idle CPU halts (a virtual machine without a polling idle
 * driver: /sys/devices/system/cpu/cpuidle/current_driver) the wake-up pays for the
 * halt's exit, in either scheduling class.
 *
 * usage: wake-cost [fair|fifo] [IDLE_US] [COUNT]    (fifo: the reader SCHED_FIFO 1)
 */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_COUNT 10000

static int ping[2], pong[2], count = 200, idle_us = 5000, fifo;
static double lat_us[MAX_COUNT];

static double now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static void *reader(void *arg)
{
	struct sched_param sp = { .sched_priority = 1 };
	char c = 0;

	if (pin(1) || (fifo && pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp))) {
		fprintf(stderr, "wake-cost: cannot pin the reader to CPU 1%s\n", fifo ? " or make it SCHED_FIFO" : "");
		exit(1);
	}
	for (int i = 0; i < count; i++) {
		double t0;

		if (read(ping[0], &t0, sizeof(t0)) != sizeof(t0))
			exit(1);
		lat_us[i] = now_us() - t0;
		/* the writer waits for this before its next idle gap: one hand-off at a time */
		if (write(pong[1], &c, 1) != 1)
			exit(1);
	}
	return arg;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	pthread_t t;

	fifo = argc > 1 && !strcmp(argv[1], "fifo");
	if (argc > 2)
		idle_us = atoi(argv[2]);
	if (argc > 3)
		count = atoi(argv[3]);
	if ((argc > 1 && strcmp(argv[1], "fair") && !fifo) || idle_us < 0 || count < 10 || count > MAX_COUNT) {
		fprintf(stderr, "usage: wake-cost [fair|fifo] [IDLE_US] [COUNT (10..%d)]\n", MAX_COUNT);
		return 2;
	}
	if (pipe(ping) || pipe(pong) || pin(0) || pthread_create(&t, NULL, reader, NULL)) {
		perror("wake-cost");
		return 1;
	}
	for (int i = 0; i < count; i++) {
		double t0;
		char c;

		usleep((useconds_t)idle_us);
		t0 = now_us();
		if (write(ping[1], &t0, sizeof(t0)) != sizeof(t0) || read(pong[0], &c, 1) != 1)
			return 1;
	}
	pthread_join(t, NULL);
	qsort(lat_us, (size_t)count, sizeof(lat_us[0]), cmp);
	printf("%s reader, %d hand-offs after %d us idle: p10 %.1f p50 %.1f p90 %.1f us\n", fifo ? "SCHED_FIFO" : "fair",
	       count, idle_us, lat_us[count / 10], lat_us[count / 2], lat_us[count * 9 / 10]);
	return 0;
}
