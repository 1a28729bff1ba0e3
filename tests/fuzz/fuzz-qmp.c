/* Fuzz target: the QMP server, as a client reaches it. The input is what one client
 * writes on the socket (JSON, one message after another, any bytes); the server
 * parses it with the real protocol code and dispatches to QEMU's migration commands
 * over a real destination session (already listening for its incoming migration on a
 * private unix socket, so no command can reach the network: migrate and
 * migrate-incoming are refused). The whole input is queued on the connection first,
 * then the server runs on this thread (mig_qmp_server_run_inline), each in-band
 * command as the reader has it, until the client's input ends: no thread and no
 * round trip per command, and the order of the commands is the input's. Whatever the
 * bytes, the server answers or drops the client, never hangs or crashes, and stops
 * and frees cleanly.
 *
 * libFuzzer: -Dfuzzing=true. Otherwise fuzz-driver.c replays the corpus. */
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "engine/qmp/qmp_int.h"
#include "engine/qmp/qmp_cmds.h"
#include "tools/migd/guest.h"
#include "tools/migd/guest_vm.h"
#include "fuzz.h"

static char *dir;

static void cleanup(void)
{
	if (dir)
		rmdir(dir);
	g_free(dir);
}

static void quiet_log(gpointer opaque, MigLogLevel level, const char *session, const char *msg)
{
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const MigQmpVersion version = { 9, 2, 0, "mig-fuzz" };
	MigdGuestConfig cfg = { .mem_size = 1u << 20, .backend = MIG_MEM_ANON, .incoming = TRUE };
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int buf = 4 << 20;
	g_autofree char *qmp_path = NULL, *in_uri = NULL;
	GError *err = NULL;
	MigQmpServer *q;
	MigdGuest *g;
	MigSession *s;
	int fd;

	if (!dir) {
		dir = g_dir_make_tmp("mig-fuzz-qmp-XXXXXX", NULL);
		CHECK(dir != NULL);
		atexit(cleanup);
	}
	qmp_path = g_build_filename(dir, "qmp.sock", NULL);
	in_uri = g_strdup_printf("unix:%s/in.sock", dir);
	g = migd_guest_new(&cfg, &err);
	CHECK(g != NULL);
	s = mig_session_new("fuzz-qmp");
	mig_session_set_log_cb(s, quiet_log, NULL);
	mig_session_set_vm(s, &migd_guest_vm_ops, g, MIG_RUN_INMIGRATE);
	mig_session_add_ram(s, migd_guest_ram(g));
	CHECK(mig_session_incoming(s, in_uri, &err));
	q = mig_qmp_server_new(qmp_path, &version, &err);
	CHECK(q != NULL);
	mig_qmp_add_session_commands(q, s);

	CHECK(strlen(qmp_path) < sizeof(a.sun_path));
	strcpy(a.sun_path, qmp_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(fd >= 0);
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	CHECK(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	/* queued before the server accepts (an input of up to a few hundred KiB), with a
	 * descriptor for getfd or add-fd to claim (fd sets: a set's dup is refused, as
	 * /dev/null is no migration file) */
	if (size) {
		union {
			char buf[CMSG_SPACE(sizeof(int))];
			struct cmsghdr align;
		} ctl;
		struct iovec iov = { (void *)data, size };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		int nul = open("/dev/null", O_RDWR | O_CLOEXEC);

		CHECK(nul >= 0);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &nul, sizeof(int));
		CHECK(sendmsg(fd, &mh, MSG_NOSIGNAL) == (ssize_t)size);
		close(nul);
	}
	CHECK(shutdown(fd, SHUT_WR) == 0);
	/* until the server drops the client: at the end of its input */
	mig_qmp_server_run_inline(q);
	close(fd);
	mig_qmp_server_free(q);
	mig_session_free(s);
	migd_guest_free(g);
	return 0;
}

const char fuzz_name[] = "fuzz-qmp";
