/* The source-side harnesses' session and destination stand-in (fuzz-src.h). */
#include "fuzz-src.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "channels/hello.h"
#include "channels/wire.h"
#include "engine/src/src_int.h"
#include "tools/migd/guest_vm.h"
#include "fuzz.h"

static void quiet_log(gpointer opaque, MigLogLevel level, const char *session, const char *msg)
{
}

/* The source's end of the main channel, as `getfd` would have passed it. */
static int lookup(gpointer opaque, const char *name, GError **err)
{
	FuzzSrc *f = opaque;

	return f->main.eng;
}

/* A socketpair whose source end queues a few MiB: all a run sends (the 2 MiB guest
 * once, again after a recovery, and the frames around) fits unread. */
static void chan_open(FuzzSrcChan *c)
{
	int sv[2], buf = 4 << 20;

	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	for (int i = 0; i < 2; i++)
		(void)setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	c->peer = sv[0];
	c->eng = sv[1];
	c->data = NULL;
	c->left = 0;
}

/* The source's end is the engine's from mig_session_migrate_inline on. */
static void chan_close(FuzzSrcChan *c)
{
	if (c->peer >= 0)
		close(c->peer);
	c->peer = c->eng = -1;
}

/* The guest has no vCPU, so nothing is ever dirty: a tracker that says so, through
 * the embedder's plug point, instead of userfaultfd write-protection, whose register
 * and unregister (a TLB shootdown each) cost more than the rest of an input. The
 * tracker reads nothing a peer sends. */
static gboolean idle_start(MigDirtyTracker *t, void *host, gsize len, gsize page_size, GError **err)
{
	return TRUE;
}

static gboolean idle_sync(MigDirtyTracker *t, gulong *bitmap, guint64 *ndirty, GError **err)
{
	*ndirty = 0;
	return TRUE;
}

static void idle_stop(MigDirtyTracker *t)
{
}

static void idle_free(MigDirtyTracker *t)
{
	g_free(t);
}

static const MigDirtyTrackerOps idle_ops = { "fuzz-idle", idle_start, idle_sync, idle_stop, idle_free };

static MigDirtyTracker *idle_tracker(gpointer opaque, const MigRamBlock *block, GError **err)
{
	MigDirtyTracker *t = g_new0(MigDirtyTracker, 1);

	t->ops = &idle_ops;
	return t;
}

/* One guest for the whole run: a source only reads its memory (it has no vCPU to
 * change it), and filling 2 MiB with the guest's self-describing units was most of
 * an input's time. (Not mostly zero: each zero page's check, every word compared
 * under the fuzzer's comparison tracing, costs more than sending the page.) */
static MigdGuest *the_guest(void)
{
	static MigdGuest *g;
	MigdGuestConfig cfg = { .mem_size = FUZZ_SRC_MEM_SIZE, .backend = MIG_MEM_ANON };
	GError *err = NULL;

	if (!g) {
		g = migd_guest_new(&cfg, &err);
		CHECK(g != NULL);
	}
	return g;
}

void fuzz_src_init(FuzzSrc *f, guint flags)
{
	memset(f, 0, sizeof(*f));
	f->main.peer = f->main.eng = f->resume.peer = f->resume.eng = -1;
	f->guest = the_guest();
	f->s = mig_session_new("fuzz-src");
	mig_session_set_log_cb(f->s, quiet_log, NULL);
	mig_session_set_vm(f->s, &migd_guest_vm_ops, f->guest, MIG_RUN_RUNNING);
	mig_session_add_ram(f->s, migd_guest_ram(f->guest));
	mig_session_set_fd_lookup(f->s, lookup, f);
	mig_session_set_dirty_tracker(f->s, idle_tracker, NULL);
	if (flags & FUZZ_SRC_POSTCOPY) {
		CHECK(mig_session_set_cap(f->s, MIG_CAP_POSTCOPY_RAM, TRUE, NULL));
		CHECK(mig_session_set_param_u64(f->s, MIG_PARAM_X_POSTCOPY_AFTER_PASSES, 1, NULL));
	}
}

void fuzz_src_free(FuzzSrc *f)
{
	mig_session_free(f->s);
	chan_close(&f->main);
	chan_close(&f->resume);
}

/* The destination's next frame on the channel the source waits on (fuzz-src.h). */
static void feed(gpointer opaque, int fd)
{
	FuzzSrc *f = opaque;
	FuzzSrcChan *c = f->resume.peer >= 0 && fd == f->resume.eng ? &f->resume : &f->main;
	size_t n = c->left;
	gboolean whole = FALSE;
	MigFrameHdr h;

	if (c->left >= MIG_FRAME_HDR_LEN) {
		mig_frame_hdr_unpack(c->data, &h);
		if (h.len <= c->left - MIG_FRAME_HDR_LEN) {
			n = MIG_FRAME_HDR_LEN + h.len;
			whole = TRUE;
		}
	}
	if (n)
		CHECK(send(c->peer, c->data, n, MSG_NOSIGNAL) == (ssize_t)n);
	c->data += n;
	c->left -= n;
	/* the input is used up, or cut inside a frame that nothing completes: the
	 * destination is gone (the source's read of the rest meets the end) */
	if (!whole)
		CHECK(shutdown(c->peer, SHUT_WR) == 0);
}

void fuzz_src_run(FuzzSrc *f, const uint8_t *main_in, size_t main_len, const uint8_t *resume_in,
		  size_t resume_len)
{
	MigSrcInline in = { .feed = feed, .opaque = f, .resume_fd = -1 };
	GError *err = NULL;
	MigStatus st;
	MigRunState rs;
	gboolean go_sent;

	chan_close(&f->main);
	chan_close(&f->resume);
	chan_open(&f->main);
	f->main.data = main_in;
	f->main.left = main_len;
	CHECK(mig_hello_reply(f->main.peer, MIG_HELLO_OK, "welcome") == 0);
	if (resume_in) {
		chan_open(&f->resume);
		f->resume.data = resume_in;
		f->resume.left = resume_len;
		CHECK(mig_hello_reply(f->resume.peer, MIG_HELLO_OK, "welcome back") == 0);
		in.resume_fd = f->resume.eng;
	}
	if (!mig_session_migrate_inline(f->s, "fd:fuzz", &in, &err)) {
		fprintf(stderr, "fuzz: migrate refused: %s\n", err->message);
		abort();
	}
	/* whatever the destination said, the migration is over and the source's guest
	 * runs unless GO may have left (then it never runs here again) */
	st = mig_session_status(f->s);
	rs = mig_session_runstate(f->s);
	go_sent = f->s->src && __atomic_load_n(&f->s->src->go_sent, __ATOMIC_ACQUIRE);
	if (g_getenv("MIG_FUZZ_VERBOSE"))   /* what a seed does: tests/fuzz/make-seeds */
		fprintf(stderr, "fuzz: %s, %s: %s\n", mig_status_str(st), mig_runstate_str(rs),
			f->s->error ? f->s->error : "no error");
	if ((st != MIG_STATUS_COMPLETED && st != MIG_STATUS_FAILED) ||
	    (st == MIG_STATUS_COMPLETED && rs != MIG_RUN_POSTMIGRATE) ||
	    (st == MIG_STATUS_FAILED && rs != (go_sent ? MIG_RUN_POSTMIGRATE : MIG_RUN_RUNNING))) {
		fprintf(stderr, "fuzz: the migration ended with status %s, run state %s, GO %s\n", mig_status_str(st),
			mig_runstate_str(rs), go_sent ? "sent" : "not sent");
		abort();
	}
}

void fuzz_src_frame(GByteArray *b, guint16 type, const void *payload, guint32 len)
{
	guint8 hdr[MIG_FRAME_HDR_LEN];
	MigFrameHdr h = { .len = len, .type = type };

	mig_frame_hdr_pack(&h, hdr);
	g_byte_array_append(b, hdr, sizeof(hdr));
	if (len)
		g_byte_array_append(b, payload, len);
}
