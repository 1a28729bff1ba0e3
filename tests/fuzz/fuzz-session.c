/* The engine-level harnesses' destination session and channel pump (fuzz-session.h). */
#include "fuzz-session.h"

#include <errno.h>
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

void fuzz_dst_init(FuzzDst *f, guint flags)
{
	MigdGuestConfig cfg = { .mem_size = FUZZ_MEM_SIZE, .backend = MIG_MEM_ANON, .incoming = TRUE };
	MigdSimDevConfig dcfg;
	GError *err = NULL;
	MigSession *s;

	memset(f, 0, sizeof(*f));
	f->flags = flags;
	for (guint i = 0; i < sizeof(f->session_id); i++)
		f->session_id[i] = (guint8)(0xa0 + i);
	f->guest = migd_guest_new(&cfg, &err);
	check_ok(f->guest != NULL, err);
	check_ok(migd_simdev_parse(FUZZ_DEV_SPEC, &dcfg, &err), err);
	f->dev = migd_simdev_new(&dcfg);
	f->s = s = mig_session_new("fuzz-dst");
	mig_session_set_log_cb(s, quiet_log, NULL);
	mig_session_set_vm(s, &migd_guest_vm_ops, f->guest, MIG_RUN_INMIGRATE);
	mig_session_set_vm_live(s, &migd_guest_vm_live_ops);
	mig_session_add_ram(s, migd_guest_ram(f->guest));
	if (!(flags & FUZZ_DST_NODEV))
		check_ok(mig_session_add_device(s, migd_simdev_id(f->dev), &migd_simdev_ops, f->dev, &err), err);
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
	migd_simdev_free(f->dev);
	migd_guest_free(f->guest);
}

void fuzz_dst_hello(const FuzzDst *f, int type, guint index, uint8_t out[32])
{
	MigHello h = { .version = MIG_PROTO_VERSION, .type = (guint16)type, .index = index };

	memcpy(h.session, f->session_id, sizeof(h.session));
	mig_hello_pack(&h, out);
}

int fuzz_dst_connect(FuzzDst *f, const uint8_t *data, size_t hello_len, gboolean last)
{
	int sv[2];

	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	if (hello_len)
		CHECK(send(sv[0], data, hello_len, MSG_NOSIGNAL) == (ssize_t)hello_len);
	if (last)
		CHECK(shutdown(sv[0], SHUT_WR) == 0);
	mig_dst_accept(f->s, sv[1]);
	return sv[0];
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
	const char *id = migd_simdev_id(f->dev);
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

size_t fuzz_write(int fd, const uint8_t *data, size_t len)
{
	gint64 end = g_get_monotonic_time() + FUZZ_WAIT_MS * 1000ll;
	static uint8_t sink[65536];
	size_t off = 0;

	while (off < len) {
		struct pollfd p = { .fd = fd, .events = POLLIN | POLLOUT };
		ssize_t n;

		fuzz_io_deadline(end, "a channel took no bytes");
		if (poll(&p, 1, 100) <= 0)
			continue;
		if (p.revents & POLLIN) {
			if (recv(fd, sink, sizeof(sink), MSG_DONTWAIT) == 0)
				break;   /* closed by the engine: the rest will not be read */
		}
		if (p.revents & POLLOUT) {
			n = send(fd, data + off, len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				break;
			if (n > 0)
				off += (size_t)n;
		}
		if ((p.revents & (POLLERR | POLLHUP)) && !(p.revents & POLLIN))
			break;
	}
	return off;
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

void fuzz_wait(gboolean (*pred)(FuzzDst *f), FuzzDst *f, const char *what)
{
	gint64 end = g_get_monotonic_time() + FUZZ_WAIT_MS * 1000ll;

	while (!pred(f)) {
		fuzz_io_deadline(end, what);
		g_usleep(200);
	}
}

MigStatus fuzz_status(FuzzDst *f)
{
	return mig_session_status(f->s);
}

guint64 fuzz_dst_parked(FuzzDst *f)
{
	Dst *d = f->s->dst;
	guint64 pass = 0;

	g_mutex_lock(&d->mf_lock);
	if (d->mf_expected && d->mf_synced >= d->mf_expected && !d->mf_quit)
		pass = d->mf_released + 1;
	g_mutex_unlock(&d->mf_lock);
	return pass;
}

void fuzz_dst_release(FuzzDst *f, int main_fd, guint64 *released)
{
	guint64 pass = fuzz_dst_parked(f);
	g_autoptr(GByteArray) b = NULL;
	uint8_t p[8];

	if (!pass || pass == *released)
		return;
	b = g_byte_array_new();
	mig_put_be64(p, pass);
	fuzz_frame(b, MIG_F_PASS, p, 8);
	if (send(main_fd, b->data, b->len, MSG_NOSIGNAL) == (ssize_t)b->len)
		*released = pass;
}

void fuzz_dst_settle(FuzzDst *f, int main_fd, int fd)
{
	gint64 end = g_get_monotonic_time() + FUZZ_WAIT_MS * 1000ll;
	static uint8_t sink[65536];
	guint64 released = 0;

	while (fuzz_unread(fd) > 0 && mig_session_status(f->s) != MIG_STATUS_FAILED) {
		fuzz_io_deadline(end, "a channel's input was never read");
		fuzz_dst_release(f, main_fd, &released);
		/* the loader answers each PASS on the return path */
		(void)recv(main_fd, sink, sizeof(sink), MSG_DONTWAIT);
		g_usleep(200);
	}
	shutdown(main_fd, SHUT_WR);
	fuzz_drain(main_fd);
}
