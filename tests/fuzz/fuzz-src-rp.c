/* Fuzz target: the source's return path. A real source session (a 2 MiB synthetic
 * guest) migrates to a unix socket this harness answers as a destination would: it
 * admits the hello, drains everything the source sends and writes the input back as
 * the destination's return-path frames (RP_PASS, RP_RUNNING, RP_ERROR, RP_DEVICES,
 * RP_REQ_PAGE, RP_DONE). Built twice: fuzz-src-rp reads them in precopy (the
 * migration thread's polls), fuzz-src-rp-postcopy in postcopy from its first pass on
 * (the return-path thread, page requests into the urgent lanes). Whatever the bytes,
 * the migration ends (completed or failed with the source guest running) and the
 * session frees cleanly.
 *
 * libFuzzer: -Dfuzzing=true. Otherwise fuzz-driver.c replays the corpus. */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "channels/hello.h"
#include "channels/uri.h"
#include "engine/session_int.h"
#include "tools/migd/guest.h"
#include "tools/migd/guest_vm.h"
#include "fuzz-io.h"
#include "fuzz.h"

static int listen_fd = -1;
static char *sock_dir, *sock_path;

static void cleanup(void)
{
	if (sock_path)
		unlink(sock_path);
	if (sock_dir)
		rmdir(sock_dir);
	g_free(sock_path);
	g_free(sock_dir);
	if (listen_fd >= 0)
		close(listen_fd);
}

/* One listening socket for the whole run, in a private directory. */
static void listen_once(void)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };

	if (listen_fd >= 0)
		return;
	sock_dir = g_dir_make_tmp("mig-fuzz-XXXXXX", NULL);
	CHECK(sock_dir != NULL);
	sock_path = g_build_filename(sock_dir, "dst.sock", NULL);
	CHECK(strlen(sock_path) < sizeof(a.sun_path));
	strcpy(a.sun_path, sock_path);
	listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(listen_fd >= 0);
	CHECK(bind(listen_fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	CHECK(listen(listen_fd, 4) == 0);
	atexit(cleanup);
}

static void quiet_log(gpointer opaque, MigLogLevel level, const char *session, const char *msg)
{
}

static gboolean over(MigSession *s)
{
	MigStatus st = mig_session_status(s);

	return st == MIG_STATUS_COMPLETED || st == MIG_STATUS_FAILED || st == MIG_STATUS_CANCELLED;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	MigdGuestConfig cfg = { .mem_size = 2u << 20, .backend = MIG_MEM_ANON };
	gint64 end = g_get_monotonic_time() + FUZZ_WAIT_MS * 1000ll;
	g_autofree char *uri = NULL;
	GError *err = NULL;
	MigdGuest *g;
	MigSession *s;
	MigHello h;
	struct pollfd p = { .events = POLLIN };
	size_t off = 0;
	int fd, status;

	listen_once();
	g = migd_guest_new(&cfg, &err);
	CHECK(g != NULL);
	s = mig_session_new("fuzz-src");
	mig_session_set_log_cb(s, quiet_log, NULL);
	mig_session_set_vm(s, &migd_guest_vm_ops, g, MIG_RUN_RUNNING);
	mig_session_add_ram(s, migd_guest_ram(g));
#ifdef FUZZ_SRC_POSTCOPY
	CHECK(mig_session_set_cap(s, MIG_CAP_POSTCOPY_RAM, TRUE, NULL));
	CHECK(mig_session_set_param_u64(s, MIG_PARAM_X_POSTCOPY_AFTER_PASSES, 1, NULL));
#endif
	uri = g_strdup_printf("unix:%s", sock_path);
	CHECK(mig_session_migrate(s, uri, &err));

	/* a source that fails before it connects is a finding of its own: say why */
	p.fd = listen_fd;
	while (poll(&p, 1, 100) != 1) {
		if (over(s)) {
			fprintf(stderr, "fuzz: the source failed before connecting: %s\n", s->error);
			abort();
		}
		fuzz_io_deadline(end, "the source never connected");
	}
	fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
	CHECK(fd >= 0);
	CHECK(mig_hello_read(fd, &h, &status) == 0 && h.type == MIG_CHAN_MAIN);
	CHECK(mig_hello_reply(fd, MIG_HELLO_OK, "welcome") == 0);

	/* until the source is done with the channel (it closes it) */
	if (!size)
		shutdown(fd, SHUT_WR);
	while (fuzz_io_step(fd, data, size, &off, 10)) {
		fuzz_io_deadline(end, "the source's migration never ended");
		if (off == size && over(s))
			break;
	}
	close(fd);
	mig_session_free(s);   /* joins the migration thread */
	/* the source keeps its guest unless the destination's runs */
	migd_guest_free(g);
	return 0;
}

#ifdef FUZZ_SRC_POSTCOPY
const char fuzz_name[] = "fuzz-src-rp-postcopy";
#else
const char fuzz_name[] = "fuzz-src-rp";
#endif
