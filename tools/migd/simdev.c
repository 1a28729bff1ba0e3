/* The simulated device: a deterministic state stream served and verified through
 * pipes by the device's own thread, with device-like read and load times. */
#include "tools/migd/simdev.h"
#include <mig/ram.h>
#include "tools/migd/unit.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

G_DEFINE_QUARK(migd-simdev-error-quark, migd_simdev_error)
#define SIMDEV_ERROR migd_simdev_error_quark()

#define PIPE_BYTES     (1u << 20)   /* a 64 KiB default pipe would cap throughput */
#define SAVE_CHUNK_MAX (256u << 10)
#define LOAD_CHUNK_MAX (128u << 10) /* a read the cache still holds when it is checked */
#define SLEEP_AHEAD_NS 1000000      /* the load sleeps once it is this far ahead of device time */
#define PACE_CHUNK_MIN (4u << 10)
#define CLOCK_SLACK_NS 2000000      /* an oversleep this small is made up, not lost */
#define STREAM_MAX     (1ull << 62)
#define IMAGE_MAX      (1ull << 30) /* larger states are generated chunk by chunk */
#define SUM_BLOCK      4096u        /* bytes per block sum (a multiple of 64) */

typedef struct BlockSum {
	guint64 a, b;
} BlockSum;
typedef BlockSum (*BlockSumFn)(const guint8 *p);

typedef enum LoadResult { LOAD_NONE, LOAD_PENDING, LOAD_OK, LOAD_FAILED } LoadResult;

typedef struct SimThread {
	MigdSimDev *dev;
	GThread *thread;
	int fd;                 /* the device's end of the pipe; the thread closes it */
	int cancel_fd;          /* eventfd: leave now */
	guint64 start, end;     /* save: the stream range served */
	GMutex io;              /* save: a write and its count, atomic to consumed_now() */
	guint64 written;        /* save: bytes into the pipe */
} SimThread;

struct MigdSimDev {
	MigdSimDevConfig cfg;
	guint64 total;          /* precopy + size: the whole stream */
	guint64 key[2];         /* per version */
	guint8 *image;          /* the whole stream, generated once and never written again; or NULL */
	BlockSum *sums;         /* with the image: block_sum() of each whole SUM_BLOCK of it */
	BlockSumFn block_sum;   /* the fastest form this CPU runs */
	GMutex ctl;             /* the engine's calls: set_state, precopy_info, data_size */
	MigDevState state;
	SimThread *worker;      /* at most one thread at a time */
	int pre_rd;             /* a dup of the pre-copy pipe's read end: what is still in it */
	guint64 consumed;       /* source: stream bytes the engine has taken */

	GMutex lock;            /* the figures below: the worker writes, query reads */
	guint64 served;
	guint64 received, verified;
	gint64 wait_ns, cpu_ns; /* destination: waiting for bytes mid-stream; the load thread's CPU */
	LoadResult result;
	char *error;
};

/* ---- the state stream ---- */

static guint64 id_hash(const char *id)
{
	guint64 h = 0xcbf29ce484222325ull;   /* FNV-1a */

	for (; *id; id++)
		h = (h ^ (guint8)*id) * 0x100000001b3ull;
	return h;
}

/* Little-endian words mix(key ^ index) from byte off of one version's data. */
static void fill_version(guint64 key, guint64 off, guint8 *buf, gsize len)
{
	guint64 w = off / 8, v;
	gsize skip = off % 8;

	if (skip) {
		gsize take = MIN(8 - skip, len);

		v = GUINT64_TO_LE(migd_mix64(key ^ w++));
		memcpy(buf, (guint8 *)&v + skip, take);
		buf += take;
		len -= take;
	}
	for (; len >= 8; len -= 8, buf += 8) {
		v = GUINT64_TO_LE(migd_mix64(key ^ w++));
		memcpy(buf, &v, 8);
	}
	if (len) {
		v = GUINT64_TO_LE(migd_mix64(key ^ w));
		memcpy(buf, &v, len);
	}
}

/* Stream bytes [pos, pos + len): version 0 up to precopy, version 1 after it. */
static void stream_fill(const MigdSimDev *d, guint64 pos, guint8 *buf, gsize len)
{
	if (pos < d->cfg.precopy) {
		gsize n = (gsize)MIN(len, d->cfg.precopy - pos);

		fill_version(d->key[0], pos, buf, n);
		buf += n;
		len -= n;
		pos += n;
	}
	if (len)
		fill_version(d->key[1], pos - d->cfg.precopy, buf, len);
}

/* A block's two sums mod 2^64 over its words w_0..w_{N-1}: a = sum of w_i, b = sum of
 * (N - i) w_i. One changed word always changes a; words moved within or into the block
 * keep a but change b unless their difference times their distance vanishes mod 2^64,
 * about 2^-55 for this state's pseudo-random words. Adds only, in 4-word vectors down
 * the block's rows of 8 words (a weighs a word by its row, the lane corrects for its
 * column), so the check runs at about the speed of the copy it follows, not of a
 * multiply per word. */
typedef guint64 V4 __attribute__((vector_size(32)));

static inline __attribute__((always_inline)) BlockSum block_sum_body(const guint8 *p)
{
	V4 a0 = { 0 }, b0 = { 0 }, a1 = { 0 }, b1 = { 0 };
	BlockSum s;

	for (guint r = 0; r < SUM_BLOCK / 64; r++, p += 64) {
		V4 w0, w1;

		memcpy(&w0, p, sizeof(w0));
		memcpy(&w1, p + 32, sizeof(w1));
		a0 += w0;
		b0 += a0;
		a1 += w1;
		b1 += a1;
	}
	/* word (r, l) is w_{8r+l}: it has weight R - r in b's lanes, N - 8r - l overall */
	s.a = a0[0] + a0[1] + a0[2] + a0[3] + a1[0] + a1[1] + a1[2] + a1[3];
	s.b = 8 * (b0[0] + b0[1] + b0[2] + b0[3] + b1[0] + b1[1] + b1[2] + b1[3]) -
	      (a0[1] + 2 * a0[2] + 3 * a0[3] + 4 * a1[0] + 5 * a1[1] + 6 * a1[2] + 7 * a1[3]);
	return s;
}

static BlockSum block_sum_plain(const guint8 *p)
{
	return block_sum_body(p);
}

/* the same sums with 256-bit adds, where the CPU has them: half the instructions */
__attribute__((target("avx2"))) static BlockSum block_sum_avx2(const guint8 *p)
{
	return block_sum_body(p);
}

static BlockSumFn block_sum_fn(void)
{
#if defined(__x86_64__) || defined(__i386__)
	if (__builtin_cpu_supports("avx2"))
		return block_sum_avx2;
#endif
	return block_sum_plain;
}

static gboolean block_sum_eq(BlockSum x, BlockSum y)
{
	return x.a == y.a && x.b == y.b;
}

static guint64 unxorshift(guint64 y, int s)
{
	guint64 x = y;

	for (int k = s; k < 64; k += s)
		x ^= y >> k;
	return x;
}

static guint64 mul_inverse(guint64 a)
{
	guint64 x = a;   /* Newton: each step doubles the correct low bits (a is odd) */

	for (int i = 0; i < 6; i++)
		x *= 2 - a * x;
	return x;
}

static guint64 unmix64(guint64 z)
{
	z = unxorshift(z, 31) * mul_inverse(0x94d049bb133111ebull);
	z = unxorshift(z, 27) * mul_inverse(0xbf58476d1ce4e5b9ull);
	return unxorshift(z, 30) - 0x9e3779b97f4a7c15ull;
}

/* Where in the stream the 8 bytes at p come from, if they are a word of this device's
 * state: the word's index is recoverable because mix64 is a bijection. */
static gboolean word_origin(const MigdSimDev *d, const guint8 *p, guint64 *origin)
{
	guint64 v, x;

	memcpy(&v, p, 8);
	x = unmix64(GUINT64_FROM_LE(v));
	if ((x ^ d->key[0]) < d->cfg.precopy / 8) {
		*origin = (x ^ d->key[0]) * 8;
		return TRUE;
	}
	if ((x ^ d->key[1]) < d->cfg.size / 8) {
		*origin = d->cfg.precopy + (x ^ d->key[1]) * 8;
		return TRUE;
	}
	return FALSE;
}

static char *stream_where(const MigdSimDev *d, guint64 pos)
{
	return pos < d->cfg.precopy ? g_strdup_printf("pre-copy byte %" G_GUINT64_FORMAT, pos)
				    : g_strdup_printf("stop-copy byte %" G_GUINT64_FORMAT, pos - d->cfg.precopy);
}

/* What the bytes received from buf[i] on are: in place but corrupt, from further on
 * (bytes lost or reordered), from earlier (duplicated or reordered), or foreign. */
static char *diagnose(const MigdSimDev *d, const guint8 *buf, gsize len, gsize i, guint64 pos)
{
	for (gsize j = i; j < i + 16 && j + 8 <= len; j++) {
		guint64 origin, at = pos + j;

		if (!word_origin(d, buf + j, &origin))
			continue;
		if (origin == at)
			return g_strdup("the bytes after it are in place: corrupted data");
		if (origin > at)
			return g_strdup_printf("the data there belongs %" G_GUINT64_FORMAT
					       " bytes further on: bytes lost or reordered", origin - at);
		return g_strdup_printf("the data there belongs %" G_GUINT64_FORMAT
				       " bytes earlier: bytes duplicated or reordered", at - origin);
	}
	return g_strdup("the data there is not this device's state");
}

/* ---- device time ---- */

typedef struct DevClock {
	gint64 busy_ns;         /* when the device finishes the work charged so far */
} DevClock;

static gint64 now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * G_GINT64_CONSTANT(1000000000) + ts.tv_nsec;
}

static guint64 rate_ns(guint64 bytes, guint64 bps)
{
	return bps ? (guint64)((double)bytes * 1e9 / (double)bps) : 0;
}

/* Charges ns of work, queued behind the work already charged; time the device spent
 * waiting for the engine is no credit. Returns when the work will be done. */
static gint64 clock_charge(DevClock *c, guint64 ns)
{
	gint64 now = now_ns();

	if (c->busy_ns < now - CLOCK_SLACK_NS)
		c->busy_ns = now;
	c->busy_ns += (gint64)ns;
	return c->busy_ns;
}

/* Sleeps (device time, no CPU) until deadline; FALSE if cancelled first. */
static gboolean sleep_until(gint64 deadline, int cancel_fd)
{
	struct pollfd pfd = { .fd = cancel_fd, .events = POLLIN };

	for (;;) {
		gint64 left = deadline - now_ns();
		struct timespec ts = { left / 1000000000, left % 1000000000 };

		if (left <= 0)
			return TRUE;
		if (ppoll(&pfd, 1, &ts, NULL) > 0)
			return FALSE;
	}
}

/* Waits until fd is ready for events; FALSE if cancelled first. */
static gboolean wait_fd(SimThread *t, short events)
{
	struct pollfd pfd[2] = { { .fd = t->fd, .events = events }, { .fd = t->cancel_fd, .events = POLLIN } };

	while (poll(pfd, 2, -1) < 0)
		if (errno != EINTR)
			return FALSE;
	return !(pfd[1].revents & POLLIN);
}

/* Bytes per paced step: about 10 ms of device time, so pacing stays smooth at low rates. */
static gsize pace_chunk(guint64 bps, gsize max)
{
	return bps ? (gsize)CLAMP(bps / 100, PACE_CHUNK_MIN, max) : max;
}

static void device_thread_setup(void)
{
	sigset_t set;

	/* a reader that went away must be an EPIPE here, not a process-wide SIGPIPE */
	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	prctl(PR_SET_TIMERSLACK, 1000UL);   /* 1 µs: rates are kept by many short sleeps */
}

/* ---- threads ---- */

/* Puts n bytes into the pipe. From the image they are spliced, not copied: the pipe
 * takes references to pages that never change, so like a real device's read() the
 * engine's read() is the only copy. */
static gboolean pipe_put(SimThread *t, const guint8 *p, gsize n, gboolean splice)
{
	while (n) {
		struct iovec iov = { (void *)p, n };
		ssize_t w;

		g_mutex_lock(&t->io);   /* non-blocking: held for one call into the pipe */
		w = splice ? vmsplice(t->fd, &iov, 1, SPLICE_F_NONBLOCK) : write(t->fd, p, n);
		if (w > 0)
			t->written += (guint64)w;
		g_mutex_unlock(&t->io);
		if (w > 0) {
			p += w;
			n -= (gsize)w;
		} else if (w < 0 && errno == EAGAIN) {
			if (!wait_fd(t, POLLOUT))
				return FALSE;
		} else if (w < 0 && errno != EINTR) {
			return FALSE;   /* EPIPE: the engine closed its end */
		}
	}
	return TRUE;
}

/* "mig/dev/ID/save": serves the stream range [start, end) at read-rate, then EOF. */
static gpointer save_thread(gpointer opaque)
{
	SimThread *t = opaque;
	MigdSimDev *d = t->dev;
	gsize chunk = pace_chunk(d->cfg.read_rate, SAVE_CHUNK_MAX);
	g_autofree guint8 *buf = d->image ? NULL : g_malloc(chunk);
	DevClock clk = { 0 };

	device_thread_setup();
	for (guint64 pos = t->start; pos < t->end;) {
		gsize n = (gsize)MIN(chunk, t->end - pos);
		gint64 ready = clock_charge(&clk, rate_ns(n, d->cfg.read_rate));
		const guint8 *p = d->image ? d->image + pos : buf;

		if (!d->image)
			stream_fill(d, pos, buf, n);
		if (!sleep_until(ready, t->cancel_fd) || !pipe_put(t, p, n, d->image != NULL))
			break;
		pos += n;
		g_mutex_lock(&d->lock);
		d->served += n;
		g_mutex_unlock(&d->lock);
	}
	close(t->fd);
	t->fd = -1;
	return NULL;
}

static gint64 thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * G_GINT64_CONSTANT(1000000000) + ts.tv_nsec;
}

static void load_publish(MigdSimDev *d, guint64 received, guint64 verified, LoadResult result, char *error)
{
	g_mutex_lock(&d->lock);
	d->received = received;
	d->verified = verified;
	d->result = result;
	if (error && !d->error)
		d->error = error;
	else
		g_free(error);
	g_mutex_unlock(&d->lock);
}

/* How many leading bytes of buf, stream bytes [pos, pos + n), match want, the same
 * bytes as they should be. With block sums, the whole blocks in buf are checked by their
 * sum and only the partial blocks at its edges, or a block whose sum is off, byte by
 * byte: a load costs the device its copy out of the pipe and little more, as a real
 * device's DMA or driver copy would, rather than a second pass over a cold image. */
static gsize good_prefix(const MigdSimDev *d, const guint8 *buf, gsize n, guint64 pos, const guint8 *want)
{
	gsize i = 0;

	if (d->sums) {
		gsize head = (gsize)MIN((guint64)n, (SUM_BLOCK - pos % SUM_BLOCK) % SUM_BLOCK);

		if (!memcmp(buf, want, head)) {
			for (i = head; i + SUM_BLOCK <= n; i += SUM_BLOCK)
				if (!block_sum_eq(d->block_sum(buf + i), d->sums[(pos + i) / SUM_BLOCK]))
					break;
		}
	}
	if (!memcmp(buf + i, want + i, n - i))
		return n;
	while (buf[i] == want[i])
		i++;
	return i;
}

/* Checks buf, stream bytes [pos, pos + n) (n within the stream), against the stream;
 * NULL if they match, else what is wrong at the first differing byte. */
static char *load_check(const MigdSimDev *d, const guint8 *buf, gsize n, guint64 pos, guint8 *scratch, gsize *good)
{
	g_autofree char *where = NULL, *why = NULL;
	const guint8 *want = d->image ? d->image + pos : scratch;
	gsize i;

	if (!d->image)
		stream_fill(d, pos, scratch, n);
	i = good_prefix(d, buf, n, pos, want);
	*good = i;
	if (i == n)
		return NULL;
	where = stream_where(d, pos + i);
	why = diagnose(d, buf, n, i, pos);
	return g_strdup_printf("state byte %" G_GUINT64_FORMAT " (%s): expected 0x%02x, got 0x%02x; %s", pos + i, where,
			       want[i], buf[i], why);
}

/* The device's load cost of stream bytes [pos, pos + n): load-rate, plus load-latency
 * for every load-chunk started. */
static guint64 load_cost_ns(const MigdSimDev *d, guint64 pos, gsize n)
{
	guint64 c = d->cfg.load_chunk;
	guint64 started = (pos + n + c - 1) / c - (pos + c - 1) / c;

	return rate_ns(n, d->cfg.load_rate) + started * d->cfg.load_latency_us * 1000;
}

/* Reads up to cap bytes of the stream from pos on, ending at a block boundary where the
 * pipe holds enough: a read that ends mid-block leaves that block's bytes to be checked
 * byte by byte against the cold image, and the engine's frames cut the stream anywhere.
 * Returns what read() would: bytes, 0 at EOF, -1 with errno when nothing was read. */
static ssize_t read_blocks(int fd, guint8 *buf, gsize cap, guint64 pos)
{
	gsize want = cap - (gsize)((pos + cap) % SUM_BLOCK), got = 0;

	if (want == 0 || cap < SUM_BLOCK)
		want = cap;
	while (got < want) {
		ssize_t n = read(fd, buf + got, want - got);

		if (n <= 0)
			return got ? (ssize_t)got : n;
		got += (gsize)n;
		if ((pos + got) % SUM_BLOCK == 0)
			break;
	}
	return (ssize_t)got;
}

/* "mig/dev/ID/load": takes the stream in order until EOF, verifying every byte and
 * spending device time on it. The verdict waits in d->result for RESUMING -> STOP. */
static gpointer load_thread(gpointer opaque)
{
	SimThread *t = opaque;
	MigdSimDev *d = t->dev;
	gsize cap = pace_chunk(d->cfg.load_rate, LOAD_CHUNK_MAX);
	g_autofree guint8 *buf = g_malloc(cap), *want = d->image ? NULL : g_malloc(cap);
	guint64 pos = 0, verified = 0;
	char *error = NULL;
	DevClock clk = { 0 };
	gint64 cpu0 = thread_cpu_ns(), wait_ns = 0;

	device_thread_setup();
	for (;;) {
		ssize_t n;
		gint64 ready, t0 = MAX(now_ns(), clk.busy_ns);   /* device time not slept is no wait */
		gboolean ok = wait_fd(t, POLLIN);

		/* the engine was late: counted from the first stop-copy byte to the last, not
		 * while the device waits for the switchover or for its EOF */
		if (pos > d->cfg.precopy && pos < d->total)
			wait_ns += MAX(now_ns() - t0, 0);
		if (!ok) {
			error = g_strdup_printf("loading cancelled at state byte %" G_GUINT64_FORMAT, pos);
			break;
		}
		n = read_blocks(t->fd, buf, cap, pos);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n < 0) {
			error = g_strdup_printf("reading the state: %s", g_strerror(errno));
			break;
		}
		if (n == 0) {
			/* the device time of the last reads, which did not sleep while it was short */
			if (!sleep_until(clk.busy_ns, t->cancel_fd) && !error)
				error = g_strdup_printf("loading cancelled at state byte %" G_GUINT64_FORMAT, pos);
			if (error)
				;   /* the first fault is the one to report */
			else if (pos < d->total)
				error = g_strdup_printf("state short by %" G_GUINT64_FORMAT " bytes (got %" G_GUINT64_FORMAT
							" of %" G_GUINT64_FORMAT ")", d->total - pos, pos, d->total);
			else if (pos > d->total)
				error = g_strdup_printf("%" G_GUINT64_FORMAT " extra bytes after the %" G_GUINT64_FORMAT
							" expected", pos - d->total, d->total);
			break;
		}
		ready = clock_charge(&clk, load_cost_ns(d, pos, (gsize)n));
		if (!error && pos < d->total) {
			gsize len = (gsize)MIN((guint64)n, d->total - pos), good;

			if (d->cfg.fail_at >= 0 && (guint64)d->cfg.fail_at < pos + len)
				len = (gsize)((guint64)d->cfg.fail_at - pos);
			error = load_check(d, buf, len, pos, want, &good);
			verified += good;
			if (!error && len < (gsize)MIN((guint64)n, d->total - pos))
				error = g_strdup_printf("the device rejected its state at byte %" G_GUINT64_FORMAT " (fail-at)",
							pos + len);
		}
		pos += (guint64)n;
		load_publish(d, pos, verified, LOAD_PENDING, NULL);
		if (error && d->cfg.fail_mode == MIGD_SIMDEV_FAIL_ABORT)
			break;
		/* a sleep per 128 KiB read would cost more wake-ups than the reads */
		if (ready - now_ns() >= SLEEP_AHEAD_NS && !sleep_until(ready, t->cancel_fd)) {
			error = error ? error : g_strdup_printf("loading cancelled at state byte %" G_GUINT64_FORMAT, pos);
			break;
		}
	}
	/* closing here, not at join, is what makes the engine's writes fail in abort mode */
	close(t->fd);
	t->fd = -1;
	g_mutex_lock(&d->lock);
	d->wait_ns = wait_ns;
	d->cpu_ns = thread_cpu_ns() - cpu0;
	g_mutex_unlock(&d->lock);
	load_publish(d, pos, verified, error ? LOAD_FAILED : LOAD_OK, error);
	return NULL;
}

/* A pipe whose device end (0 read, 1 write) is non-blocking, so the device's thread
 * can always be cancelled; the engine's end stays blocking. */
static gboolean make_pipe(int fds[2], int device_end, GError **err)
{
	if (pipe2(fds, O_CLOEXEC) < 0) {
		g_set_error(err, SIMDEV_ERROR, errno, "pipe: %s", g_strerror(errno));
		return FALSE;
	}
	/* best effort: above /proc/sys/fs/pipe-max-size only an unprivileged user fails */
	(void)fcntl(fds[0], F_SETPIPE_SZ, PIPE_BYTES);
	fcntl(fds[device_end], F_SETFL, fcntl(fds[device_end], F_GETFL) | O_NONBLOCK);
	return TRUE;
}

static gboolean thread_start(MigdSimDev *d, const char *role, GThreadFunc fn, int fd, guint64 start, guint64 end,
			     GError **err)
{
	g_autofree char *name = g_strdup_printf("mig/dev/%s/%s", d->cfg.id, role);
	SimThread *t = g_new0(SimThread, 1);

	/* GLib names threads with pthread_setname_np, which refuses more than 15 bytes and
	 * leaves the creator's name: better a cut name than a misleading one */
	name[MIN(strlen(name), 15)] = '\0';

	t->dev = d;
	t->fd = fd;
	t->start = start;
	t->end = end;
	g_mutex_init(&t->io);
	t->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (t->cancel_fd < 0) {
		g_set_error(err, SIMDEV_ERROR, errno, "eventfd: %s", g_strerror(errno));
		close(fd);
		g_mutex_clear(&t->io);
		g_free(t);
		return FALSE;
	}
	t->thread = g_thread_new(name, fn, t);
	d->worker = t;
	return TRUE;
}

/* Joins the worker: cancel stops it where it is, otherwise it runs to its end (EOF).
 * Returns the stream position a save thread reached (bytes into its pipe). */
static guint64 thread_join(MigdSimDev *d, gboolean cancel)
{
	SimThread *t = d->worker;
	guint64 reached;

	if (!t)
		return 0;
	if (cancel && eventfd_write(t->cancel_fd, 1) < 0)
		g_warning("simdev %s: eventfd_write: %s", d->cfg.id, g_strerror(errno));
	g_thread_join(t->thread);
	close(t->cancel_fd);
	reached = t->start + t->written;
	g_mutex_clear(&t->io);
	g_free(t);
	d->worker = NULL;
	return reached;
}

static guint64 pipe_bytes(int fd)
{
	int n = 0;

	return fd >= 0 && ioctl(fd, FIONREAD, &n) == 0 && n > 0 ? (guint64)n : 0;
}

/* Stream bytes the engine has taken so far (in PRE_COPY: read out of the pipe). */
static guint64 consumed_now(MigdSimDev *d)
{
	SimThread *t = d->worker;
	guint64 n;

	if (d->state != MIG_DEV_PRE_COPY || !t)
		return d->consumed;
	g_mutex_lock(&t->io);
	n = t->start + t->written - pipe_bytes(d->pre_rd);
	g_mutex_unlock(&t->io);
	return n;
}

/* ---- MigDeviceOps ---- */

static gboolean start_save(MigdSimDev *d, gboolean precopy, int *data_fd, GError **err)
{
	guint64 end = precopy ? d->cfg.precopy : d->total;
	int fds[2];

	if (!make_pipe(fds, 1, err))
		return FALSE;
	if (precopy && (d->pre_rd = dup(fds[0])) < 0) {
		g_set_error(err, SIMDEV_ERROR, errno, "dup: %s", g_strerror(errno));
		close(fds[0]);
		close(fds[1]);
		return FALSE;
	}
	if (!thread_start(d, "save", save_thread, fds[1], d->consumed, end, err)) {
		close(fds[0]);
		return FALSE;
	}
	*data_fd = fds[0];
	return TRUE;
}

/* PRE_COPY ends: what the engine did not read out of the pipe is served again at the
 * head of the stop-copy stream (the engine no longer reads the pre-copy fd by now). */
static void end_precopy(MigdSimDev *d)
{
	guint64 reached = thread_join(d, TRUE);

	d->consumed = reached - pipe_bytes(d->pre_rd);
	if (d->pre_rd >= 0)
		close(d->pre_rd);
	d->pre_rd = -1;
}

static gboolean start_load(MigdSimDev *d, int *data_fd, GError **err)
{
	int fds[2];

	if (!make_pipe(fds, 0, err))
		return FALSE;
	g_mutex_lock(&d->lock);
	d->received = d->verified = 0;
	d->wait_ns = d->cpu_ns = 0;
	d->result = LOAD_PENDING;
	g_clear_pointer(&d->error, g_free);
	g_mutex_unlock(&d->lock);
	if (!thread_start(d, "load", load_thread, fds[0], 0, d->total, err)) {
		close(fds[1]);
		return FALSE;
	}
	*data_fd = fds[1];
	return TRUE;
}

/* RESUMING -> STOP: the engine has closed its write end, so the thread reaches EOF. */
static gboolean end_load(MigdSimDev *d, GError **err)
{
	gboolean ok;

	thread_join(d, FALSE);
	g_mutex_lock(&d->lock);
	ok = d->result == LOAD_OK;
	if (!ok)
		g_set_error(err, SIMDEV_ERROR, EBADMSG, "%s", d->error ? d->error : "state not loaded");
	g_mutex_unlock(&d->lock);
	return ok;
}

static gboolean sim_set_state(gpointer opaque, MigDevState st, int *data_fd, GError **err)
{
	MigdSimDev *d = opaque;
	MigDevState from;
	gboolean ok = TRUE, arc;

	g_mutex_lock(&d->ctl);
	from = d->state;
	*data_fd = -1;
	switch (st) {
	case MIG_DEV_PRE_COPY:
		arc = from == MIG_DEV_RUNNING;
		break;
	case MIG_DEV_STOP_COPY:
		arc = from == MIG_DEV_RUNNING || from == MIG_DEV_PRE_COPY || from == MIG_DEV_STOP;
		break;
	case MIG_DEV_RESUMING:
		arc = from == MIG_DEV_STOP || from == MIG_DEV_RUNNING;
		break;
	case MIG_DEV_STOP:
	case MIG_DEV_RUNNING:
	case MIG_DEV_ERROR:
		arc = TRUE;
		break;
	default:
		arc = FALSE;
	}
	if (!arc || st == from) {
		g_mutex_unlock(&d->ctl);
		if (!arc)
			g_set_error(err, SIMDEV_ERROR, EINVAL, "simulated device cannot go from %s to %s",
				    mig_dev_state_str(from), mig_dev_state_str(st));
		return arc;
	}
	if (from == MIG_DEV_PRE_COPY)
		end_precopy(d);
	if (from == MIG_DEV_RESUMING && st != MIG_DEV_ERROR)
		ok = end_load(d, err);
	else
		thread_join(d, TRUE);
	if (st == MIG_DEV_RUNNING)
		d->consumed = 0;   /* back to running: a later migration starts over */
	if (st == MIG_DEV_PRE_COPY)
		ok = start_save(d, TRUE, data_fd, err);
	else if (st == MIG_DEV_STOP_COPY)
		ok = start_save(d, FALSE, data_fd, err);
	else if (st == MIG_DEV_RESUMING)
		ok = start_load(d, data_fd, err);
	d->state = ok ? st : MIG_DEV_ERROR;
	g_mutex_unlock(&d->ctl);
	return ok;
}

static gboolean sim_precopy_info(gpointer opaque, guint64 *initial_bytes, guint64 *dirty_bytes, GError **err)
{
	MigdSimDev *d = opaque;
	gboolean ok;

	g_mutex_lock(&d->ctl);
	ok = d->state == MIG_DEV_PRE_COPY;   /* as VFIO_MIG_GET_PRECOPY_INFO: EINVAL elsewhere */
	if (ok) {
		*initial_bytes = d->cfg.precopy - MIN(consumed_now(d), d->cfg.precopy);
		*dirty_bytes = 0;
	} else {
		g_set_error(err, SIMDEV_ERROR, EINVAL, "pre-copy info asked in state %s", mig_dev_state_str(d->state));
	}
	g_mutex_unlock(&d->ctl);
	return ok;
}

static gboolean sim_data_size(gpointer opaque, guint64 *stop_copy_bytes, GError **err)
{
	MigdSimDev *d = opaque;

	g_mutex_lock(&d->ctl);
	*stop_copy_bytes = d->total - MIN(consumed_now(d), d->total);
	g_mutex_unlock(&d->ctl);
	return TRUE;
}

static void sim_rates(gpointer opaque, guint64 *read_bps, guint64 *load_bps)
{
	MigdSimDev *d = opaque;
	double per_byte_s = (d->cfg.load_rate ? 1.0 / (double)d->cfg.load_rate : 0) +
			    (double)d->cfg.load_latency_us * 1e-6 / (double)d->cfg.load_chunk;

	*read_bps = d->cfg.read_rate;
	/* load-latency folded in: the rate the device really loads at */
	*load_bps = per_byte_s > 0 ? (guint64)(1.0 / per_byte_s) : 0;
}

static void add_int(MigValue *b, const char *name, guint64 v)
{
	mig_value_add_int(b, name, (gint64)v);
}

static void sim_query(gpointer opaque, MigValue *b)
{
	static const char *const results[] = { "none", "pending", "ok", "failed" };
	MigdSimDev *d = opaque;

	g_mutex_lock(&d->lock);
	if (d->served)
		add_int(b, "served-bytes", d->served);
	if (d->result != LOAD_NONE) {
		add_int(b, "expected-bytes", d->total);
		add_int(b, "received-bytes", d->received);
		add_int(b, "verified-bytes", d->verified);
		if (d->result != LOAD_PENDING) {
			add_int(b, "wait-ms", (guint64)(d->wait_ns / 1000000));
			add_int(b, "cpu-ms", (guint64)(d->cpu_ns / 1000000));
		}
		mig_value_add_str(b, "result", results[d->result]);
		if (d->error)
			mig_value_add_str(b, "error", d->error);
	}
	g_mutex_unlock(&d->lock);
}

const MigDeviceOps migd_simdev_ops = {
	.set_state = sim_set_state,
	.precopy_info = sim_precopy_info,
	.data_size = sim_data_size,
	.rates = sim_rates,
	.query = sim_query,
};

/* ---- life cycle ---- */

MigdSimDev *migd_simdev_new(const MigdSimDevConfig *cfg)
{
	MigdSimDev *d = g_new0(MigdSimDev, 1);
	guint64 base;

	d->cfg = *cfg;
	if (!d->cfg.load_chunk)
		d->cfg.load_chunk = 1u << 20;
	d->total = cfg->precopy + cfg->size;
	base = migd_mix64(cfg->seed ^ migd_mix64(id_hash(cfg->id)));
	for (guint v = 0; v < 2; v++)
		d->key[v] = migd_mix64(base ^ ((v + 1) * 0xd1b54a32d192ed03ull));
	g_mutex_init(&d->ctl);
	g_mutex_init(&d->lock);
	d->state = MIG_DEV_RUNNING;
	d->pre_rd = -1;
	d->block_sum = block_sum_fn();
	/* generated here, outside any downtime; without it (too large, or no memory) each
	 * chunk is generated when it is served or checked, a few ms of CPU per 10 MiB */
	if (!cfg->stream_only && d->total && d->total <= IMAGE_MAX) {
		void *m = mmap(NULL, d->total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (m != MAP_FAILED) {
			d->sums = g_new(BlockSum, d->total / SUM_BLOCK + 1);
			/* a megabyte at a time, summed while it is still in the cache */
			for (guint64 pos = 0; pos < d->total; pos += 1u << 20) {
				guint64 end = MIN(d->total, pos + (1u << 20));

				stream_fill(d, pos, (guint8 *)m + pos, (gsize)(end - pos));
				for (guint64 k = pos; k + SUM_BLOCK <= end; k += SUM_BLOCK)
					d->sums[k / SUM_BLOCK] = d->block_sum((guint8 *)m + k);
			}
			mprotect(m, d->total, PROT_READ);   /* spliced pages must never change */
			d->image = m;
		}
	}
	return d;
}

void migd_simdev_free(MigdSimDev *d)
{
	if (!d)
		return;
	thread_join(d, TRUE);
	if (d->pre_rd >= 0)
		close(d->pre_rd);
	if (d->image)
		munmap(d->image, d->total);
	g_free(d->sums);
	g_free(d->error);
	g_mutex_clear(&d->ctl);
	g_mutex_clear(&d->lock);
	g_free(d);
}

const char *migd_simdev_id(const MigdSimDev *d)
{
	return d->cfg.id;
}

/* ---- the migd option ---- */

static gboolean id_ok(const char *id)
{
	gsize n = strlen(id);

	if (n == 0 || n > 63 || !g_ascii_isalpha(*id))
		return FALSE;
	for (; *id; id++)
		if (!g_ascii_isalnum(*id) && !strchr("-._", *id))
			return FALSE;
	return TRUE;
}

/* One KEY=VALUE of the spec into cfg; FALSE with *hint saying what the value should be. */
static gboolean parse_option(MigdSimDevConfig *cfg, const char *key, const char *val, gboolean *known,
			     const char **hint)
{
	guint64 v = 0, *size = NULL;

	*known = TRUE;
	*hint = "a size such as 4096, 64K, 100M or 1G";
	if (!strcmp(key, "id")) {
		*hint = "1 to 63 letters, digits, '-', '.' or '_', starting with a letter";
		if (!id_ok(val))
			return FALSE;
		g_strlcpy(cfg->id, val, sizeof(cfg->id));
		return TRUE;
	}
	if (!strcmp(key, "fail-mode")) {
		*hint = "verdict or abort";
		cfg->fail_mode = !strcmp(val, "abort") ? MIGD_SIMDEV_FAIL_ABORT : MIGD_SIMDEV_FAIL_VERDICT;
		return !strcmp(val, "abort") || !strcmp(val, "verdict");
	}
	if (!strcmp(key, "seed")) {
		gboolean hex = g_str_has_prefix(val, "0x") || g_str_has_prefix(val, "0X");

		*hint = "an unsigned 64-bit number (decimal or 0x hex)";
		return g_ascii_string_to_unsigned(val + (hex ? 2 : 0), hex ? 16 : 10, 0, G_MAXUINT64, &cfg->seed, NULL);
	}
	if (!strcmp(key, "load-latency")) {
		*hint = "microseconds per load chunk, at most 60000000";
		return g_ascii_string_to_unsigned(val, 10, 0, 60000000, &cfg->load_latency_us, NULL);
	}
	if (!strcmp(key, "size"))
		size = &cfg->size;
	else if (!strcmp(key, "precopy"))
		size = &cfg->precopy;
	else if (!strcmp(key, "read-rate") || !strcmp(key, "load-rate")) {
		*hint = "bytes per second such as 500M or 1G (0: unlimited)";
		size = key[0] == 'r' ? &cfg->read_rate : &cfg->load_rate;
	} else if (!strcmp(key, "load-chunk"))
		size = &cfg->load_chunk;
	else if (!strcmp(key, "fail-at"))
		size = &v;
	else {
		*known = FALSE;
		return FALSE;
	}
	if (!mig_parse_size(val, size) || *size >= STREAM_MAX || (size == &cfg->load_chunk && !*size))
		return FALSE;
	if (size == &v)
		cfg->fail_at = (gint64)v;
	return TRUE;
}

gboolean migd_simdev_parse(const char *spec, MigdSimDevConfig *cfg, GError **err)
{
	g_auto(GStrv) parts = g_strsplit(spec ? spec : "", ",", -1);
	g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);

	*cfg = (MigdSimDevConfig){ .load_chunk = 1u << 20, .seed = 1, .fail_at = -1 };
	if (g_strcmp0(parts[0], "sim")) {
		g_set_error(err, SIMDEV_ERROR, EINVAL, "device '%s': the only device type is 'sim' (sim,id=ID,size=SIZE,...)",
			    spec ? spec : "");
		return FALSE;
	}
	for (guint i = 1; parts[i]; i++) {
		char *eq = strchr(parts[i], '=');
		const char *key = parts[i], *val = eq ? eq + 1 : NULL, *hint;
		gboolean known;

		if (!eq || !*val) {
			g_set_error(err, SIMDEV_ERROR, EINVAL, "device option '%s' needs a value (KEY=VALUE)", parts[i]);
			return FALSE;
		}
		*eq = '\0';
		if (!g_hash_table_add(seen, (gpointer)key)) {
			g_set_error(err, SIMDEV_ERROR, EINVAL, "device option '%s' given twice", key);
			return FALSE;
		}
		if (!parse_option(cfg, key, val, &known, &hint)) {
			if (!known)
				g_set_error(err, SIMDEV_ERROR, EINVAL,
					    "unknown device option '%s' (id, size, precopy, read-rate, load-rate, "
					    "load-latency, load-chunk, seed, fail-at, fail-mode)", key);
			else
				g_set_error(err, SIMDEV_ERROR, EINVAL, "bad device option %s=%s: want %s", key, val, hint);
			return FALSE;
		}
	}
	if (!cfg->id[0] || !g_hash_table_contains(seen, "size")) {
		g_set_error(err, SIMDEV_ERROR, EINVAL, "device '%s': id=ID and size=SIZE are required", spec);
		return FALSE;
	}
	if (cfg->precopy + cfg->size >= STREAM_MAX) {
		g_set_error(err, SIMDEV_ERROR, EINVAL, "device '%s': precopy + size is too large", cfg->id);
		return FALSE;
	}
	return TRUE;
}
