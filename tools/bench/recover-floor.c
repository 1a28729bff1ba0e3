/* recover-floor: the least a postcopy recovery's resume can take on the netns bed.
 *
 * Issue 14 wants the resume, from `migrate resume:true` to postcopy-active on both sides,
 * within 10 round trips + the received bitmaps at link rate (0.6 ms on the bed). This
 * runs the resume's handshake with nothing else around it, so that its figure is what the
 * machine allows and the rest of mig's is the engine's. The connections, bytes and order
 * are mig's (docs/protocol.md, Postcopy recovery), between a source and a destination
 * process, one in each namespace of migbench's bed (tools/bench/netns.c, 1 Gbit/s):
 *
 *   source, on a trigger from this process (the operator) over a unix socket, as QMP's
 *   command would come: connects the main channel, then every lane; hello on main (32
 *   bytes), its reply (10); PC_RECOVER and PC_RESUME (16); the lanes' hellos; the answer
 *   (ANSWER_BYTES: the bitmaps of 1 GiB, their frames, RP_RECV_END) and RP_RESUME_ACK,
 *   and every lane's reply: active.
 *   destination, already waiting in accept: the main hello, its reply; the 16 bytes, the
 *   answer in one write; every lane's hello and reply; RP_RESUME_ACK: active.
 *
 * Each side stamps CLOCK_REALTIME when active, as migd stamps its MIGRATION event; the
 * operator reads the clock just before the trigger, as migbench does. Before every
 * trigger the operator sleeps IDLE_US, so the CPUs have gone idle as in a real recovery.
 * Variants:
 *   a  one blocking thread per channel on each side, as mig: the destination's wait in
 *      accept, the source's lanes on a condition variable, woken by its main channel's
 *   b  one thread per side, non-blocking sockets, busy-polling (bounded) from the
 *      trigger, or the first accept, until active: no hand-off between threads
 *   c  b with every connect at once instead of the main channel's first
 * b and c are what the machine allows; a - b is what the hand-offs between threads cost.
 * Each variant's line is followed by the medians of its steps, on the same clock.
 *
 * usage: recover-floor [VARIANTS [COUNT [LANES [IDLE_US]]]]  (default: abc 200 1 5000;
 * LANES: the preempt and multifd channels; needs root for the bed) */
#include "tools/bench/netns.h"
#include "tools/bench/stats.h"
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PORT 4447
#define HELLO_BYTES 32
#define REPLY_BYTES 10
#define RESUME_BYTES 16                  /* PC_RECOVER + PC_RESUME */
#define ANSWER_BYTES (32768 + 64)        /* 1 GiB's bitmaps, one bit per 4K page, framed */
#define ACK_BYTES 8                      /* RP_RESUME_ACK */
#define MAX_LANES 8
#define MAX_COUNT 10000
#define WARMUP 5                         /* untimed resumes before the timed ones */
#define IO_TIMEOUT_MS 5000               /* any one step of a resume, and a teardown */
#define CTL_TIMEOUT_MS 30000             /* the operator's next word */
#define SPIN_US 5000                     /* b and c busy-poll this long, then sleep */
#define CH_MAIN 1                        /* a hello's first byte: mig's channel types */
#define CH_LANE 3

/* The operator's words (a SOCK_SEQPACKET message each): R a side is ready, T the
 * trigger, P a step's stamp (pad: its index), S a side's stamp (ns), C the source may
 * close its channels, Q quit. */
typedef struct {
	int32_t kind;
	int32_t pad;
	int64_t ns;
} Msg;

/* The steps each side stamps on the way (one thread per side does: a's main channel). */
#define NSTEPS 3
static const char *const step_names[2][NSTEPS] = { { "woken", "connected", "replied" },
						   { "accepted", "hello", "resume" } };
static int64_t steps[NSTEPS];

static int lanes = 1;
static struct sockaddr_in dst_addr;
static char answer[ANSWER_BYTES + ACK_BYTES];

static int64_t now_ns(clockid_t clk)
{
	struct timespec t;

	clock_gettime(clk, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "recover-floor[%d]: %s: %s\n", (int)getpid(), what, strerror(errno));
	_exit(1);
}

static void ctl_send(int ctl, int kind, int64_t ns)
{
	Msg m = { .kind = kind, .ns = ns };

	if (send(ctl, &m, sizeof(m), MSG_NOSIGNAL) != sizeof(m))
		die("control socket");
}

static void step(int i)
{
	steps[i] = now_ns(CLOCK_REALTIME);
}

/* The side is active: its steps, then its stamp. */
static void active(int ctl)
{
	int64_t t = now_ns(CLOCK_REALTIME);

	for (int i = 0; i < NSTEPS; i++) {
		Msg m = { .kind = 'P', .pad = i, .ns = steps[i] };

		if (send(ctl, &m, sizeof(m), MSG_NOSIGNAL) != sizeof(m))
			die("control socket");
	}
	ctl_send(ctl, 'S', t);
}

/* The next word, within timeout_ms; -1 on EOF, an error or the timeout. */
static int ctl_recv(int ctl, int timeout_ms, Msg *m)
{
	struct pollfd p = { .fd = ctl, .events = POLLIN };

	if (poll(&p, 1, timeout_ms) != 1 || recv(ctl, m, sizeof(*m), 0) != sizeof(*m))
		return -1;
	return 0;
}

static void ctl_expect(int ctl, int kind)
{
	Msg m;

	if (ctl_recv(ctl, CTL_TIMEOUT_MS, &m) < 0 || m.kind != kind)
		die("no word from the operator");
}

/* TCP_NODELAY as mig sets it (the answer and the ack go out back to back), and bounds
 * on every blocking call of a; harmless on b's non-blocking sockets. */
static void sock_setup(int fd)
{
	struct timeval tv = { .tv_sec = IO_TIMEOUT_MS / 1000 };
	int one = 1;

	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
		die("setsockopt");
}

static void read_full(int fd, void *buf, size_t n)
{
	for (size_t got = 0; got < n;) {
		ssize_t r = read(fd, (char *)buf + got, n - got);

		if (r <= 0)
			die(r ? "read" : "read: EOF");
		got += (size_t)r;
	}
}

static void write_full(int fd, const void *buf, size_t n)
{
	for (size_t done = 0; done < n;) {
		ssize_t r = send(fd, (const char *)buf + done, n - done, MSG_NOSIGNAL);

		if (r <= 0)
			die("write");
		done += (size_t)r;
	}
}

/* The destination's end of a teardown: the source closes first (once told to). */
static void drain_close(int fd)
{
	char buf[256];
	struct pollfd p = { .fd = fd, .events = POLLIN };
	ssize_t r;

	do {
		if (poll(&p, 1, IO_TIMEOUT_MS) != 1)
			die("teardown: no EOF");
		r = read(fd, buf, sizeof(buf));
	} while (r > 0 || (r < 0 && errno == EAGAIN));
	close(fd);
}

static int tcp_socket(int flags)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | flags, 0);

	if (fd < 0)
		die("socket");
	sock_setup(fd);
	return fd;
}

/* ---- variant a: one blocking thread per channel ---- */

static pthread_t start_thread(void *(*fn)(void *), void *arg, const char *name, int i)
{
	char full[16];
	pthread_t t;

	if (pthread_create(&t, NULL, fn, arg))
		die("pthread_create");
	snprintf(full, sizeof(full), "%s%d", name, i);
	pthread_setname_np(t, full);
	return t;
}

typedef struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned gen;          /* the resume under way: the lanes connect when it changes */
	unsigned hello_gen;    /* = gen once the main channel's hello is answered */
	unsigned close_gen;    /* = gen once the operator lets the channels close */
	int armed, done, quit; /* lanes waiting for the next resume; lanes answered */
} SrcA;

static void *src_a_lane(void *arg)
{
	SrcA *s = arg;
	char hello[HELLO_BYTES] = { CH_LANE }, reply[REPLY_BYTES];
	unsigned mine = 0;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		int fd;

		s->armed++;
		pthread_cond_broadcast(&s->cond);
		while (!s->quit && s->gen == mine)
			pthread_cond_wait(&s->cond, &s->lock);
		if (s->quit)
			break;
		mine = s->gen;
		pthread_mutex_unlock(&s->lock);
		fd = tcp_socket(0);
		if (connect(fd, (struct sockaddr *)&dst_addr, sizeof(dst_addr)) < 0)
			die("lane connect");
		pthread_mutex_lock(&s->lock);
		while (s->hello_gen != mine)
			pthread_cond_wait(&s->cond, &s->lock);
		pthread_mutex_unlock(&s->lock);
		write_full(fd, hello, sizeof(hello));
		read_full(fd, reply, sizeof(reply));
		pthread_mutex_lock(&s->lock);
		s->done++;
		pthread_cond_broadcast(&s->cond);
		while (s->close_gen != mine)
			pthread_cond_wait(&s->cond, &s->lock);
		pthread_mutex_unlock(&s->lock);
		close(fd);
		pthread_mutex_lock(&s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* The main channel's thread is the process's: it takes the trigger itself. The waits on
 * the lanes are unbounded here but the lanes' every step is (SO_RCVTIMEO, or die). */
static void src_a(int ctl)
{
	static char buf[sizeof(answer)];
	char hello[HELLO_BYTES] = { CH_MAIN }, reply[REPLY_BYTES], resume[RESUME_BYTES] = { 0 };
	SrcA s = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };
	pthread_t t[MAX_LANES];
	Msg m;

	for (int i = 0; i < lanes; i++)
		t[i] = start_thread(src_a_lane, &s, "floor/slane", i);
	for (;;) {
		int fd;

		pthread_mutex_lock(&s.lock);
		while (s.armed < lanes)
			pthread_cond_wait(&s.cond, &s.lock);
		s.armed = 0;
		pthread_mutex_unlock(&s.lock);
		ctl_send(ctl, 'R', 0);
		if (ctl_recv(ctl, CTL_TIMEOUT_MS, &m) < 0)
			die("no word from the operator");
		if (m.kind == 'Q')
			break;
		step(0);
		fd = tcp_socket(0);
		if (connect(fd, (struct sockaddr *)&dst_addr, sizeof(dst_addr)) < 0)
			die("main connect");
		step(1);
		pthread_mutex_lock(&s.lock);
		s.gen++;
		pthread_cond_broadcast(&s.cond);
		pthread_mutex_unlock(&s.lock);
		write_full(fd, hello, sizeof(hello));
		read_full(fd, reply, sizeof(reply));
		step(2);
		pthread_mutex_lock(&s.lock);
		s.hello_gen = s.gen;
		pthread_cond_broadcast(&s.cond);
		pthread_mutex_unlock(&s.lock);
		write_full(fd, resume, sizeof(resume));
		read_full(fd, buf, sizeof(buf));
		pthread_mutex_lock(&s.lock);
		while (s.done < lanes)
			pthread_cond_wait(&s.cond, &s.lock);
		s.done = 0;
		pthread_mutex_unlock(&s.lock);
		active(ctl);
		ctl_expect(ctl, 'C');
		close(fd);
		pthread_mutex_lock(&s.lock);
		s.close_gen = s.gen;
		pthread_cond_broadcast(&s.cond);
		pthread_mutex_unlock(&s.lock);
	}
	pthread_mutex_lock(&s.lock);
	s.quit = 1;
	pthread_cond_broadcast(&s.cond);
	pthread_mutex_unlock(&s.lock);
	for (int i = 0; i < lanes; i++)
		pthread_join(t[i], NULL);
}

typedef struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int lfd, ctl, evfd;
	int armed, admitted;   /* threads back at accept this round; lanes admitted */
	int quit;
} DstA;

static void *dst_a_chan(void *arg)
{
	DstA *d = arg;
	char hello[HELLO_BYTES], reply[REPLY_BYTES] = { 0 }, resume[RESUME_BYTES];

	for (;;) {
		int64_t t_accept;
		int fd;

		pthread_mutex_lock(&d->lock);
		if (++d->armed == lanes + 1) {
			d->armed = 0;
			if (eventfd_write(d->evfd, 1) < 0)
				die("eventfd");
		}
		pthread_mutex_unlock(&d->lock);
		fd = accept4(d->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			pthread_mutex_lock(&d->lock);
			if (d->quit)
				break;
			die("accept");
		}
		t_accept = now_ns(CLOCK_REALTIME);   /* a step only on the main channel */
		sock_setup(fd);
		read_full(fd, hello, sizeof(hello));
		if (hello[0] == CH_MAIN) {
			struct timespec end;

			steps[0] = t_accept;
			step(1);
			write_full(fd, reply, sizeof(reply));
			read_full(fd, resume, sizeof(resume));
			step(2);
			write_full(fd, answer, ANSWER_BYTES);
			clock_gettime(CLOCK_REALTIME, &end);
			end.tv_sec += IO_TIMEOUT_MS / 1000;
			pthread_mutex_lock(&d->lock);
			while (d->admitted < lanes)
				if (pthread_cond_timedwait(&d->cond, &d->lock, &end) == ETIMEDOUT)
					die("the lanes' hellos");
			d->admitted -= lanes;
			pthread_mutex_unlock(&d->lock);
			write_full(fd, answer + ANSWER_BYTES, ACK_BYTES);
			active(d->ctl);
		} else {
			pthread_mutex_lock(&d->lock);
			d->admitted++;
			pthread_cond_broadcast(&d->cond);
			pthread_mutex_unlock(&d->lock);
			write_full(fd, reply, sizeof(reply));
		}
		drain_close(fd);
	}
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

static void dst_a(int ctl, int lfd)
{
	DstA d = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER, .lfd = lfd, .ctl = ctl };
	pthread_t t[MAX_LANES + 1];

	if ((d.evfd = eventfd(0, EFD_CLOEXEC)) < 0)
		die("eventfd");
	for (int i = 0; i <= lanes; i++)
		t[i] = start_thread(dst_a_chan, &d, "floor/dchan", i);
	for (;;) {
		struct pollfd p[2] = { { .fd = d.evfd, .events = POLLIN }, { .fd = ctl, .events = POLLIN } };
		eventfd_t v;
		Msg m;

		if (poll(p, 2, CTL_TIMEOUT_MS) <= 0)
			die("no word from the operator");
		if (p[0].revents) {
			if (eventfd_read(d.evfd, &v) < 0)
				die("eventfd");
			ctl_send(ctl, 'R', 0);
		}
		if (p[1].revents && (ctl_recv(ctl, 0, &m) < 0 || m.kind == 'Q'))
			break;
	}
	pthread_mutex_lock(&d.lock);
	d.quit = 1;
	pthread_mutex_unlock(&d.lock);
	shutdown(lfd, SHUT_RDWR);   /* wakes the threads in accept */
	for (int i = 0; i <= lanes; i++)
		pthread_join(t[i], NULL);
	close(d.evfd);
}

/* ---- variants b and c: one thread per side, non-blocking, busy-polling ---- */

enum { ST_IDLE, ST_CONNECTING, ST_WAIT_MAIN, ST_READ, ST_WAIT_LANES, ST_ACK, ST_DONE };

typedef struct {
	int fd, state, type;
	size_t want, got;        /* the read under way */
	const char *out;         /* what is left to write */
	size_t out_left;
	short revents;           /* from the last poll */
} Conn;

static char sink[65536];

/* 1 once the read under way is complete; 0 when the socket has nothing more now. */
static int conn_read(Conn *c)
{
	while (c->got < c->want) {
		size_t n = c->want - c->got;
		ssize_t r = read(c->fd, sink, n < sizeof(sink) ? n : sizeof(sink));

		if (r > 0) {
			if (!c->got)
				c->type = sink[0];
			c->got += (size_t)r;
		} else if (r < 0 && errno == EAGAIN) {
			return 0;
		} else {
			die(r ? "read" : "read: EOF");
		}
	}
	return 1;
}

static void conn_expect(Conn *c, size_t n)
{
	c->state = ST_READ;
	c->want = n;
	c->got = 0;
}

/* 1 once nothing is left to write. */
static int conn_flush(Conn *c)
{
	while (c->out_left) {
		ssize_t r = send(c->fd, c->out, c->out_left, MSG_NOSIGNAL);

		if (r > 0) {
			c->out += r;
			c->out_left -= (size_t)r;
		} else if (r < 0 && errno == EAGAIN) {
			return 0;
		} else {
			die("write");
		}
	}
	return 1;
}

static void conn_send(Conn *c, const void *buf, size_t n)
{
	c->out = buf;
	c->out_left = n;
	conn_flush(c);
}

/* Waits for one of p: polls without sleeping (and yields the CPU to anything else that
 * wants it) until spin_end, then sleeps in poll; dies at hard_end. */
static void spin_wait(struct pollfd *p, int n, int64_t spin_end, int64_t hard_end)
{
	for (;;) {
		int64_t now = now_ns(CLOCK_MONOTONIC);
		int spin = now < spin_end, r;

		if (now >= hard_end)
			die("a resume's step timed out");
		r = poll(p, (nfds_t)n, spin ? 0 : (int)((hard_end - now) / 1000000) + 1);
		if (r > 0)
			return;
		if (r < 0 && errno != EINTR)
			die("poll");
		if (spin)
			sched_yield();
	}
}

static void start_connect(Conn *c)
{
	c->fd = tcp_socket(SOCK_NONBLOCK);
	c->state = ST_CONNECTING;
	c->revents = 0;
	c->out_left = 0;
	if (connect(c->fd, (struct sockaddr *)&dst_addr, sizeof(dst_addr)) < 0 && errno != EINPROGRESS)
		die("connect");
}

static int connected(Conn *c)
{
	int e = 0;
	socklen_t len = sizeof(e);

	if (!(c->revents & (POLLOUT | POLLERR | POLLHUP)))
		return 0;
	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0 || e) {
		errno = e;
		die("connect");
	}
	return 1;
}

/* One resume on the source: c[0] the main channel, c[1..lanes] the lanes. */
static void src_poll_resume(Conn *c, int parallel)
{
	static const char hello_main[HELLO_BYTES] = { CH_MAIN }, hello_lane[HELLO_BYTES] = { CH_LANE };
	static const char resume[RESUME_BYTES];
	int64_t t = now_ns(CLOCK_MONOTONIC);
	int64_t spin_end = t + SPIN_US * 1000LL, hard_end = t + IO_TIMEOUT_MS * 1000000LL;
	int main_answered = 0;

	step(0);
	for (int i = 0; i <= lanes; i++)
		c[i] = (Conn){ .fd = -1, .state = ST_IDLE };
	start_connect(&c[0]);
	for (int i = 1; parallel && i <= lanes; i++)
		start_connect(&c[i]);
	for (;;) {
		struct pollfd p[MAX_LANES + 1];
		int busy = 0;

		for (int i = 0; i <= lanes; i++) {
			Conn *x = &c[i];

			if (!conn_flush(x))
				continue;
			if (x->state == ST_CONNECTING && connected(x)) {
				if (i) {
					x->state = ST_WAIT_MAIN;
				} else {
					step(1);
					for (int j = 1; !parallel && j <= lanes; j++)
						start_connect(&c[j]);
					conn_send(x, hello_main, sizeof(hello_main));
					conn_expect(x, REPLY_BYTES);
				}
			}
			if (x->state == ST_WAIT_MAIN && main_answered) {
				conn_send(x, hello_lane, sizeof(hello_lane));
				conn_expect(x, REPLY_BYTES);
			}
			if (x->state == ST_READ && conn_read(x)) {
				if (i || main_answered) {
					x->state = ST_DONE;
				} else {
					step(2);
					main_answered = 1;
					conn_send(x, resume, sizeof(resume));
					conn_expect(x, ANSWER_BYTES + ACK_BYTES);
					i = -1;   /* the lanes waiting for this may go on now */
					continue;
				}
			}
		}
		for (int i = 0; i <= lanes; i++) {
			Conn *x = &c[i];

			p[i].fd = x->fd;
			p[i].events = x->out_left || x->state == ST_CONNECTING ? POLLOUT : x->state == ST_READ ? POLLIN : 0;
			if (x->state != ST_DONE)
				busy = 1;
			if (!p[i].events)
				p[i].fd = -1;
		}
		if (!busy)
			return;
		spin_wait(p, lanes + 1, spin_end, hard_end);
		for (int i = 0; i <= lanes; i++)
			c[i].revents = p[i].revents;
	}
}

static void src_poll(int ctl, int parallel)
{
	Conn c[MAX_LANES + 1];
	Msg m;

	for (;;) {
		ctl_send(ctl, 'R', 0);
		if (ctl_recv(ctl, CTL_TIMEOUT_MS, &m) < 0)
			die("no word from the operator");
		if (m.kind == 'Q')
			return;
		src_poll_resume(c, parallel);
		active(ctl);
		ctl_expect(ctl, 'C');
		for (int i = 0; i <= lanes; i++)
			close(c[i].fd);
	}
}

/* One resume on the destination, from its first connection's arrival. */
static void dst_poll_resume(int lfd, Conn *c)
{
	static const char reply[REPLY_BYTES];
	int64_t t = now_ns(CLOCK_MONOTONIC);
	int64_t spin_end = t + SPIN_US * 1000LL, hard_end = t + IO_TIMEOUT_MS * 1000000LL;
	int n = 0, admitted = 0;

	step(0);
	for (;;) {
		struct pollfd p[MAX_LANES + 2];
		int fd, progress;

		while (n <= lanes && (fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0) {
			sock_setup(fd);
			c[n] = (Conn){ .fd = fd };
			conn_expect(&c[n++], HELLO_BYTES);
		}
		if (n <= lanes && errno != EAGAIN)
			die("accept");
		do {
			progress = 0;
			for (int i = 0; i < n; i++) {
				Conn *x = &c[i];

				if (!conn_flush(x))
					continue;
				if (x->state == ST_ACK)
					return;
				if (x->state == ST_WAIT_LANES && admitted == lanes) {
					conn_send(x, answer + ANSWER_BYTES, ACK_BYTES);
					x->state = ST_ACK;
					progress = 1;
				}
				if (x->state != ST_READ || !conn_read(x))
					continue;
				progress = 1;
				if (x->want == RESUME_BYTES) {
					step(2);
					conn_send(x, answer, ANSWER_BYTES);
					x->state = ST_WAIT_LANES;
				} else if (x->type == CH_MAIN) {
					step(1);
					conn_send(x, reply, sizeof(reply));
					conn_expect(x, RESUME_BYTES);
				} else {
					admitted++;
					conn_send(x, reply, sizeof(reply));
					x->state = ST_DONE;
				}
			}
		} while (progress);
		p[0] = (struct pollfd){ .fd = n <= lanes ? lfd : -1, .events = POLLIN };
		for (int i = 0; i < n; i++)
			p[i + 1] = (struct pollfd){ .fd = c[i].fd,
						    .events = c[i].out_left ? POLLOUT : c[i].state == ST_READ ? POLLIN : 0 };
		spin_wait(p, n + 1, spin_end, hard_end);
	}
}

static void dst_poll(int ctl, int lfd)
{
	Conn c[MAX_LANES + 1];

	if (fcntl(lfd, F_SETFL, O_NONBLOCK) < 0)
		die("fcntl");
	for (;;) {
		struct pollfd p[2] = { { .fd = ctl, .events = POLLIN }, { .fd = lfd, .events = POLLIN } };
		Msg m;

		ctl_send(ctl, 'R', 0);
		if (poll(p, 2, CTL_TIMEOUT_MS) <= 0)
			die("no word from the operator");
		if (p[0].revents) {
			if (ctl_recv(ctl, 0, &m) < 0 || m.kind != 'Q')
				die("control socket");
			return;
		}
		dst_poll_resume(lfd, c);
		active(ctl);
		for (int i = 0; i <= lanes; i++)
			drain_close(c[i].fd);
	}
}

/* ---- the operator ---- */

static void enter_ns(const char *ns)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "/var/run/netns/%s", ns);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || setns(fd, CLONE_NEWNET) < 0)
		die(path);
	close(fd);
}

static int dst_listen(void)
{
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&dst_addr, sizeof(dst_addr)) < 0 || listen(fd, 16) < 0)
		die("listen");
	return fd;
}

static void side_main(const BenchNet *net, BenchNetSide side, char variant, int ctl)
{
	enter_ns(net->ns[side]);
	if (side == BENCH_NET_DST) {
		int lfd = dst_listen();

		if (variant == 'a')
			dst_a(ctl, lfd);
		else
			dst_poll(ctl, lfd);
	} else if (variant == 'a') {
		src_a(ctl);
	} else {
		src_poll(ctl, variant == 'c');
	}
	_exit(0);
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void print_pct(const char *what, double *v, int n)
{
	qsort(v, (size_t)n, sizeof(v[0]), cmp);
	printf("  %s %.3f %.3f %.3f", what, v[n / 10], v[n / 2], v[n * 9 / 10]);
}

static int op_recv(int ctl, Msg *m)
{
	if (ctl_recv(ctl, IO_TIMEOUT_MS * 2, m) < 0) {
		fprintf(stderr, "recover-floor: a side stopped answering (see its error above)\n");
		return -1;
	}
	return 0;
}

/* COUNT timed resumes of one variant, with a new pair of sides. */
static int run_variant(const BenchNet *net, char variant, int count, int idle_us)
{
	static double ms[3][MAX_COUNT], st[2][NSTEPS][MAX_COUNT];
	static const char *const names[] = { ['a'] = "a threads", ['b'] = "b one thread, busy-poll",
					     ['c'] = "c b + connects at once" };
	int sp[2][2], rc = 0;
	pid_t pid[2] = { -1, -1 };

	for (int s = 0; s < 2; s++) {
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp[s]) < 0)
			die("socketpair");
	}
	fflush(NULL);
	for (int s = 0; s < 2; s++) {
		if ((pid[s] = fork()) < 0)
			die("fork");
		if (!pid[s]) {
			close(sp[0][0]);
			close(sp[1][0]);
			side_main(net, (BenchNetSide)s, variant, sp[s][1]);
		}
		close(sp[s][1]);
	}
	for (int i = -WARMUP; i < count && !rc; i++) {
		Msg m[2];
		int64_t t0;

		if (op_recv(sp[0][0], &m[0]) < 0 || op_recv(sp[1][0], &m[1]) < 0 || m[0].kind != 'R' || m[1].kind != 'R') {
			rc = 1;
			break;
		}
		usleep((useconds_t)idle_us);
		t0 = now_ns(CLOCK_REALTIME);
		ctl_send(sp[BENCH_NET_SRC][0], 'T', 0);
		for (int s = 0; s < 2 && !rc; s++) {
			for (int k = 0; k < NSTEPS && !rc; k++) {
				rc = op_recv(sp[s][0], &m[s]) < 0 || m[s].kind != 'P' || m[s].pad != k;
				if (!rc && i >= 0)
					st[s][k][i] = (double)(m[s].ns - t0) / 1e6;
			}
			rc = rc || op_recv(sp[s][0], &m[s]) < 0 || m[s].kind != 'S';
		}
		if (rc)
			break;
		ctl_send(sp[BENCH_NET_SRC][0], 'C', 0);
		if (i < 0)
			continue;
		for (int s = 0; s < 2; s++)
			ms[s][i] = (double)(m[s].ns - t0) / 1e6;
		ms[2][i] = ms[0][i] > ms[1][i] ? ms[0][i] : ms[1][i];
	}
	for (int s = 0; s < 2; s++) {
		Msg m;

		if (!rc && (op_recv(sp[s][0], &m) < 0 || m.kind != 'R'))
			rc = 1;
		if (!rc)
			ctl_send(sp[s][0], 'Q', 0);
		close(sp[s][0]);
	}
	for (int s = 0; s < 2; s++) {
		int status = 0;

		for (int i = 0; i < 100 && waitpid(pid[s], &status, WNOHANG) == 0; i++)
			usleep(50000);
		if (waitpid(pid[s], &status, WNOHANG) == 0) {
			kill(pid[s], SIGKILL);
			waitpid(pid[s], &status, 0);
			rc = 1;
		} else if (!WIFEXITED(status) || WEXITSTATUS(status)) {
			rc = 1;
		}
	}
	if (rc)
		return 1;
	printf("%-26s", names[(unsigned char)variant]);
	print_pct("src", ms[0], count);
	print_pct(" dst", ms[1], count);
	print_pct(" later", ms[2], count);
	printf("\n%-26s", "  steps, p50");
	for (int s = 0; s < 2; s++) {
		printf("  %s", s ? "dst" : "src");
		for (int k = 0; k < NSTEPS; k++)
			printf(" %s %.3f", step_names[s][k], bench_median(st[s][k], (gsize)count));
	}
	printf("\n");
	return 0;
}

int main(int argc, char **argv)
{
	const char *variants = argc > 1 ? argv[1] : "abc";
	int count = argc > 2 ? atoi(argv[2]) : 200, idle_us = argc > 4 ? atoi(argv[4]) : 5000, rc = 0;
	g_autoptr(GError) err = NULL;
	BenchNet *net;

	lanes = argc > 3 ? atoi(argv[3]) : 1;
	if (argc > 5 || strspn(variants, "abc") != strlen(variants) || !*variants || count < 10 || count > MAX_COUNT ||
	    lanes < 0 || lanes > MAX_LANES || idle_us < 0) {
		fprintf(stderr, "usage: recover-floor [VARIANTS (of abc) [COUNT (10..%d) [LANES (0..%d) [IDLE_US]]]]\n",
			MAX_COUNT, MAX_LANES);
		return 2;
	}
	if (!(net = bench_net_new(NULL, &err))) {
		fprintf(stderr, "recover-floor: %s\n", err->message);
		return 1;
	}
	dst_addr = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons(PORT) };
	inet_pton(AF_INET, net->addr[BENCH_NET_DST], &dst_addr.sin_addr);
	printf("recover-floor: netns bed (%s), %d lane(s), %d resumes per variant after %d us idle each, %ld CPUs; "
	       "ms from the trigger to each side's stamp, p10 p50 p90\n",
	       net->rate, lanes, count, idle_us, sysconf(_SC_NPROCESSORS_ONLN));
	for (const char *v = variants; *v && !rc; v++)
		rc = run_variant(net, *v, count, idle_us);
	bench_net_free(net);
	return rc;
}
