/* The engine-level harnesses' destination session and channel pump (fuzz-session.h). */
#include "fuzz-session.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/sockios.h>

#include "channels/frame.h"
#include "channels/hello.h"
#include "channels/wire.h"
#include "tools/migd/guest_vm.h"
#include "tools/migd/unit.h"
#include "fuzz-io.h"
#include "fuzz.h"

static void quiet_log(gpointer opaque, MigLogLevel level, const char *session, const char *msg)
{
}

static void check_ok(gboolean ok, GError *err)
{
	if (!ok) {
		fprintf(stderr, "fuzz session setup: %s\n", err ? err->message : "?");
		abort();
	}
}

static void dev_close(FuzzDev *d)
{
	if (d->rd >= 0)
		close(d->rd);
	d->rd = -1;
}

static gboolean dev_set_state(gpointer opaque, MigDevState st, int *data_fd, GError **err)
{
	FuzzDev *d = opaque;
	gboolean ok = TRUE;
	int fds[2];

	*data_fd = -1;
	if (d->st == MIG_DEV_RESUMING && st != MIG_DEV_RESUMING) {
		static guint8 sink[65536];
		gsize got = 0;
		ssize_t n;

		while ((n = read(d->rd, sink, sizeof(sink))) > 0)
			got += (gsize)n;
		dev_close(d);
		if (st != MIG_DEV_ERROR && got != FUZZ_DEV_SIZE) {
			g_set_error(err, MIG_ERROR, EBADMSG, "fuzz device: %" G_GSIZE_FORMAT " bytes of state loaded, not %u",
				    got, FUZZ_DEV_SIZE);
			ok = FALSE;
		}
	}
	if (st == MIG_DEV_PRE_COPY || st == MIG_DEV_STOP_COPY) {
		g_set_error(err, MIG_ERROR, EINVAL, "fuzz device: a destination's device saves no state");
		ok = FALSE;
	} else if (ok && st == MIG_DEV_RESUMING) {
		CHECK(pipe2(fds, O_CLOEXEC) == 0);
		/* any input's state fits: the engine never waits for room */
		CHECK(fcntl(fds[1], F_SETPIPE_SZ, 1 << 20) >= (1 << 20));
		CHECK(fcntl(fds[0], F_SETFL, O_NONBLOCK) == 0);
		d->rd = fds[0];
		*data_fd = fds[1];
	}
	d->st = ok ? st : MIG_DEV_ERROR;
	return ok;
}

static gboolean dev_data_size(gpointer opaque, guint64 *stop_copy_bytes, GError **err)
{
	*stop_copy_bytes = 0;
	return TRUE;
}

static const MigDeviceOps fuzz_dev_ops = { .set_state = dev_set_state, .data_size = dev_data_size };

void fuzz_dst_init(FuzzDst *f, guint flags)
{
	MigdGuestConfig cfg = { .mem_size = FUZZ_MEM_SIZE, .backend = MIG_MEM_ANON, .incoming = TRUE };
	GError *err = NULL;
	MigSession *s;

	memset(f, 0, sizeof(*f));
	f->flags = flags;
	for (guint i = 0; i < sizeof(f->session_id); i++)
		f->session_id[i] = (guint8)(0xa0 + i);
	f->guest = migd_guest_new(&cfg, &err);
	check_ok(f->guest != NULL, err);
	f->dev = (FuzzDev){ .st = MIG_DEV_RUNNING, .rd = -1 };
	f->s = s = mig_session_new("fuzz-dst");
	mig_session_set_log_cb(s, quiet_log, NULL);
	mig_session_set_vm(s, &migd_guest_vm_ops, f->guest, MIG_RUN_INMIGRATE);
	mig_session_set_vm_live(s, &migd_guest_vm_live_ops);
	mig_session_add_ram(s, migd_guest_ram(f->guest));
	if (!(flags & FUZZ_DST_NODEV))
		check_ok(mig_session_add_device(s, FUZZ_DEV_ID, &fuzz_dev_ops, &f->dev, &err), err);
	if (flags & (FUZZ_DST_POSTCOPY | FUZZ_DST_PREEMPT))
		check_ok(mig_session_set_cap(s, MIG_CAP_POSTCOPY_RAM, TRUE, &err), err);
	if (flags & FUZZ_DST_PREEMPT) {
		check_ok(mig_session_set_cap(s, MIG_CAP_POSTCOPY_PREEMPT, TRUE, &err), err);
		check_ok(mig_session_set_param_u64(s, MIG_PARAM_X_PREEMPT_CHANNELS, 1, &err), err);
	}
	if (flags & (FUZZ_DST_MULTIFD | FUZZ_DST_LANE)) {
		check_ok(mig_session_set_cap(s, MIG_CAP_MULTIFD, TRUE, &err), err);
		check_ok(mig_session_set_param_u64(s, MIG_PARAM_MULTIFD_CHANNELS, 1, &err), err);
	}
	if (flags & FUZZ_DST_LANE)
		check_ok(mig_session_set_cap(s, MIG_CAP_X_DEVICE_STATE_LANE, TRUE, &err), err);
	/* what migrate-incoming does, less the listening socket */
	g_mutex_lock(&s->lock);
	s->dst = mig_dst_new(s);
	mig_set_status_locked(s, MIG_STATUS_SETUP);
	g_mutex_unlock(&s->lock);
}

void fuzz_dst_free(FuzzDst *f)
{
	mig_session_free(f->s);
	dev_close(&f->dev);
	migd_guest_free(f->guest);
}

void fuzz_dst_hello(const FuzzDst *f, int type, guint index, uint8_t out[32])
{
	MigHello h = { .version = MIG_PROTO_VERSION, .type = (guint16)type, .index = index };

	memcpy(h.session, f->session_id, sizeof(h.session));
	mig_hello_pack(&h, out);
}

/* A socketpair whose ends each queue a few MiB: every reply of an input fits,
 * however many small frames it holds (each one a socket buffer of its own), and a
 * whole input goes in one send. */
static void pair(int sv[2])
{
	int buf = 4 << 20;

	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	for (int i = 0; i < 2; i++)
		(void)setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
}

int fuzz_dst_connect(FuzzDst *f, const uint8_t *data, size_t hello_len, gboolean last)
{
	int sv[2];

	pair(sv);
	if (hello_len)
		CHECK(send(sv[0], data, hello_len, MSG_NOSIGNAL) == (ssize_t)hello_len);
	if (last)
		CHECK(shutdown(sv[0], SHUT_WR) == 0);
	mig_dst_accept(f->s, sv[1]);
	return sv[0];
}

/* A socketpair with data queued and the write side shut: the harness's end in
 * sv[0]. */
static void queued(int sv[2], const uint8_t *hello, size_t hello_len, const uint8_t *data, size_t size)
{
	pair(sv);
	if (hello_len)
		CHECK(send(sv[0], hello, hello_len, MSG_NOSIGNAL) == (ssize_t)hello_len);
	if (size)
		CHECK(send(sv[0], data, size, MSG_NOSIGNAL) == (ssize_t)size);
	CHECK(shutdown(sv[0], SHUT_WR) == 0);
}

int fuzz_dst_connect_inline(FuzzDst *f, const uint8_t *hello, size_t hello_len, const uint8_t *data,
			    size_t size)
{
	int sv[2];

	/* the harness reads no reply before the loader ends */
	queued(sv, hello, hello_len, data, size);
	mig_dst_accept_inline(f->s, sv[1], -1);
	return sv[0];
}

void fuzz_dst_run_recovery(FuzzDst *f, const GByteArray *main_in, const uint8_t *data, size_t size)
{
	uint8_t hello[MIG_HELLO_LEN];
	MigHello h = { .version = MIG_PROTO_VERSION, .type = MIG_CHAN_MAIN, .flags = MIG_HELLO_F_RESUME };
	int m[2], r[2];

	memcpy(h.session, f->session_id, sizeof(h.session));
	mig_hello_pack(&h, hello);
	queued(m, NULL, 0, main_in->data, main_in->len);
	queued(r, hello, sizeof(hello), data, size);
	mig_dst_accept_inline(f->s, m[1], r[1]);
	close(m[0]);
	close(r[0]);
}

void fuzz_frame(GByteArray *b, guint16 type, const void *payload, guint32 len)
{
	guint8 hdr[MIG_FRAME_HDR_LEN];

	mig_frame_hdr_pack(&(MigFrameHdr){ .len = len, .type = type }, hdr);
	g_byte_array_append(b, hdr, sizeof(hdr));
	if (len)
		g_byte_array_append(b, payload, len);
}

GByteArray *fuzz_dst_setup_frame(const FuzzDst *f)
{
	GByteArray *p = g_byte_array_new(), *b = g_byte_array_new();
	MigRamBlock *rb = migd_guest_ram(f->guest);
	const char *id = FUZZ_DEV_ID;
	guint8 w[8], l;

	mig_put_be32(w, 1);
	g_byte_array_append(p, w, 4);
	l = (guint8)strlen(rb->name);
	g_byte_array_append(p, &l, 1);
	g_byte_array_append(p, (const guint8 *)rb->name, l);
	mig_put_be64(w, rb->size);
	g_byte_array_append(p, w, 8);
	mig_put_be64(w, rb->page_size);
	g_byte_array_append(p, w, 8);
	mig_put_be32(w, f->flags & (FUZZ_DST_MULTIFD | FUZZ_DST_LANE) ? 1 : 0);
	g_byte_array_append(p, w, 4);
	mig_put_be32(w, f->flags & FUZZ_DST_PREEMPT ? 1 : 0);
	g_byte_array_append(p, w, 4);
	mig_put_be32(w, f->flags & FUZZ_DST_NODEV ? 0 : 1);
	g_byte_array_append(p, w, 4);
	if (!(f->flags & FUZZ_DST_NODEV)) {
		l = (guint8)strlen(id);
		g_byte_array_append(p, &l, 1);
		g_byte_array_append(p, (const guint8 *)id, l);
	}
	fuzz_frame(b, MIG_F_SETUP, p->data, p->len);
	g_byte_array_free(p, TRUE);
	return b;
}

GByteArray *fuzz_dst_state_frame(const FuzzDst *f)
{
	guint64 units = migd_guest_units(f->guest);
	gsize len = 6 + 24 + 12 + units * 4;   /* head, then one run of every unit at generation 0 */
	guint8 *p = g_malloc0(len);
	GByteArray *b = g_byte_array_new();

	p[0] = 5;
	memcpy(p + 1, "guest", 5);
	mig_put_be64(p + 22, units);
	mig_put_be32(p + 38, (guint32)units);
	fuzz_frame(b, MIG_F_STATE, p, (guint32)len);
	g_free(p);
	return b;
}

void fuzz_dst_passes(GByteArray *b, guint n)
{
	uint8_t p[8];

	for (guint64 pass = 1; pass <= n; pass++) {
		mig_put_be64(p, pass);
		fuzz_frame(b, MIG_F_PASS, p, 8);
	}
}

void fuzz_drain(int fd)
{
	gint64 end = g_get_monotonic_time() + FUZZ_WAIT_MS * 1000ll;
	size_t off = 0;

	while (fuzz_io_step(fd, NULL, 0, &off, 100))
		fuzz_io_deadline(end, "a channel was never closed");
}

int fuzz_unread(int fd)
{
	int n = 0;

	CHECK(ioctl(fd, SIOCOUTQ, &n) == 0);
	return n;
}

void fuzz_dst_wait_status(FuzzDst *f, int main_fd, MigStatus want)
{
	gint64 end = g_get_monotonic_time() + FUZZ_WAIT_MS * 1000ll;
	size_t off = 0;
	MigStatus st;

	/* the status changes before the reply that tells the source (RP_RUNNING) */
	while ((st = mig_session_status(f->s)) != want) {
		if (st == MIG_STATUS_FAILED) {   /* the prologue is well formed */
			fprintf(stderr, "fuzz: the destination failed instead of reaching %s: %s\n",
				mig_status_str(want), f->s->error);
			abort();
		}
		fuzz_io_deadline(end, "the destination never reached the status wanted");
		CHECK(fuzz_io_step(main_fd, NULL, 0, &off, 100));
	}
}
