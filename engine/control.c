/* The migration commands (migrate, migrate-incoming, cancel, pause, recover, resume,
 * yank, start-postcopy, continue, stop and cont, and the session's teardown): each
 * checks the shared state (engine/session.c) and hands the work to the half it is
 * for. Nothing below calls back up here: the halves report through engine/session.c. */
#include "engine/session_int.h"
#include "engine/src/src.h"
#include "engine/dst/dst.h"
#include "engine/tlscreds.h"
#include "channels/uri.h"
#include <sys/random.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

static gboolean src_cancel(MigSession *s, GError **err);

void mig_session_free(MigSession *s)
{
	if (!s)
		return;
	src_cancel(s, NULL);
	g_mutex_lock(&s->lock);
	if (s->src)
		mig_src_quit(s->src);
	g_mutex_unlock(&s->lock);
	if (s->src)
		mig_src_free(g_steal_pointer(&s->src));
	mig_dst_shutdown(s);
	if (s->tls_src)
		mig_tls_run_clear(s->tls_src);
	g_free(s->tls_src);
	mig_objects_free(s);
	mig_params_clear(&s->params);
	g_ptr_array_free(s->ram, TRUE);
	g_ptr_array_free(s->devices, TRUE);
	if (s->vcpu_tids)
		g_array_unref(s->vcpu_tids);
	g_free(s->error);
	g_free(s->name);
	g_cond_clear(&s->switchover_cond);
	g_mutex_clear(&s->lock);
	g_free(s);
}

gboolean mig_session_vm_stop(MigSession *s, GError **err)
{
	g_mutex_lock(&s->lock);
	if (s->runstate == MIG_RUN_RUNNING) {
		/* vm->stop waits for vCPUs, which may themselves need the session lock to
		 * report an integrity failure: never wait for them while holding it */
		mig_set_runstate_locked(s, MIG_RUN_PAUSED);
		g_mutex_unlock(&s->lock);
		s->vm->stop(s->vm_opaque);
		return TRUE;
	} else if (s->runstate == MIG_RUN_INMIGRATE) {
		/* like QEMU: stopping an incoming guest keeps it paused once migrated */
		s->dst_autostart = FALSE;
	}
	g_mutex_unlock(&s->lock);
	return TRUE;
}

#define ABANDON_WAIT_US (10 * G_USEC_PER_SEC)

gboolean mig_session_vm_cont(MigSession *s, GError **err)
{
	gboolean ok = TRUE;

	g_mutex_lock(&s->lock);
	if (s->src && s->status == MIG_STATUS_POSTCOPY_PAUSED) {
		/* the switchover's outcome was unknown and the operator picked this side: the
		 * migration thread ends it (failed), then the guest runs below */
		if (!mig_src_abandon(s->src, err)) {
			g_mutex_unlock(&s->lock);
			return FALSE;
		}
		mig_src_wait_abandoned(s->src, g_get_monotonic_time() + ABANDON_WAIT_US);
	}
	if (s->runstate == MIG_RUN_INMIGRATE) {
		g_set_error(err, MIG_ERROR, EBUSY, "Guest is waiting for an incoming migration");
		ok = FALSE;
	} else if (s->runstate == MIG_RUN_FINISH_MIGRATE || (mig_status_is_active(s->status) && s->runstate != MIG_RUN_RUNNING && s->runstate != MIG_RUN_PAUSED)) {
		g_set_error(err, MIG_ERROR, EBUSY, "Migration is not finished yet");
		ok = FALSE;
	} else if (s->runstate != MIG_RUN_RUNNING) {
		mig_dst_cont(s);   /* stopped devices run again with the vCPUs */
		s->vm->cont(s->vm_opaque);
		mig_set_runstate_locked(s, MIG_RUN_RUNNING);
	}
	g_mutex_unlock(&s->lock);
	return ok;
}

static gboolean uri_ok(const char *uri, MigUri *parsed, GError **err)
{
	if (mig_uri_parse(uri, parsed) < 0) {
		g_set_error(err, MIG_ERROR, EINVAL, "invalid migration URI '%s' (expected tcp:HOST:PORT, unix:PATH, fd:NAME or file:PATH[,offset=N])", uri);
		return FALSE;
	}
	return TRUE;
}

static gboolean migrate(MigSession *s, const char *uri, const MigSrcInline *in, GError **err)
{
	struct Src *src;
	MigUri parsed;
	int fd = -1;
	MigTlsRun tls;

	if (!uri_ok(uri, &parsed, err))
		return FALSE;
	g_mutex_lock(&s->lock);
	if (mig_status_is_active(s->status)) {
		g_mutex_unlock(&s->lock);
		g_set_error(err, MIG_ERROR, EBUSY, "There's a migration process in progress");
		return FALSE;
	}
	if (s->runstate == MIG_RUN_INMIGRATE || s->dst) {
		g_mutex_unlock(&s->lock);
		g_set_error(err, MIG_ERROR, EBUSY, "Guest is waiting for an incoming migration");
		return FALSE;
	}
	if (!mig_params_check_lanes(s, err) || !mig_params_check_fd_uri(s, &parsed, err) ||
	    !mig_params_check_file(s, uri, TRUE, err) || !mig_params_check_auto(s, err) ||
	    !mig_tls_run_init(s, &s->params, FALSE, parsed.kind == MIG_URI_TCP ? parsed.host : "", &tls, err)) {
		g_mutex_unlock(&s->lock);
		return FALSE;
	}
	if (parsed.kind == MIG_URI_FD && (fd = mig_session_take_fd(s, &parsed, err)) < 0) {
		mig_tls_run_clear(&tls);
		g_mutex_unlock(&s->lock);
		return FALSE;
	}
	if (s->src) {
		struct Src *old = g_steal_pointer(&s->src);

		g_mutex_unlock(&s->lock);
		mig_src_free(old);
		g_mutex_lock(&s->lock);
	}
	g_clear_pointer(&s->error, g_free);
	s->cancel = FALSE;
	s->start_postcopy = FALSE;
	s->switchover_go = FALSE;
	memset(&s->stats, 0, sizeof(s->stats));
	s->stats.t_start = g_get_monotonic_time();
	for (guint i = 0; i < s->ram->len; i++)   /* nothing is sent yet: all of it remains */
		s->stats.remaining += ((MigRamBlock *)g_ptr_array_index(s->ram, i))->size;
	/* a CSPRNG: the id is what binds every channel of the migration to its main one */
	if (getrandom(s->session_id, sizeof(s->session_id), 0) != (ssize_t)sizeof(s->session_id)) {
		for (gsize i = 0; i < sizeof(s->session_id); i++)   /* no getrandom: ENOSYS */
			s->session_id[i] = (guint8)g_random_int();
	}
	/* the old run's channels are gone with its Src: nothing uses its TLS any more */
	if (!s->tls_src)
		s->tls_src = g_new0(MigTlsRun, 1);
	mig_tls_run_clear(s->tls_src);
	*s->tls_src = tls;
	mig_tls_forget_channels_locked(s);
	mig_set_status_locked(s, MIG_STATUS_SETUP);
	s->src = src = in ? mig_src_new_inline(s, uri, fd, in) : mig_src_start(s, uri, fd);
	g_mutex_unlock(&s->lock);
	if (in)
		mig_src_run_inline(src);
	return TRUE;
}

gboolean mig_session_migrate(MigSession *s, const char *uri, GError **err)
{
	return migrate(s, uri, NULL, err);
}

gboolean mig_session_migrate_inline(MigSession *s, const char *uri, const MigSrcInline *in, GError **err)
{
	if (migrate(s, uri, in, err))
		return TRUE;
	if (in->resume_fd >= 0)
		close(in->resume_fd);
	return FALSE;
}

gboolean mig_session_incoming(MigSession *s, const char *uri, GError **err)
{
	return mig_session_incoming_full(s, uri, FALSE, err);
}

gboolean mig_session_incoming_full(MigSession *s, const char *uri, gboolean exit_on_error, GError **err)
{
	gboolean ok;
	MigTlsRun tls;

	g_mutex_lock(&s->lock);
	/* the credentials are taken again per channel; this only says early what is missing */
	ok = mig_params_check_lanes(s, err) && mig_params_check_file(s, uri, FALSE, err) &&
	     mig_tls_run_init(s, &s->params, TRUE, NULL, &tls, err);
	if (ok) {
		mig_tls_run_clear(&tls);
		mig_tls_forget_channels_locked(s);   /* a retry after a failed incoming */
	}
	g_mutex_unlock(&s->lock);
	return ok && mig_dst_listen(s, uri, exit_on_error, err);
}

gboolean mig_session_start_postcopy(MigSession *s, GError **err)
{
	gboolean ok = TRUE;

	g_mutex_lock(&s->lock);
	if (!s->caps[MIG_CAP_POSTCOPY_RAM]) {
		g_set_error(err, MIG_ERROR, EINVAL, "Enable postcopy with migrate_set_capability before the start of migration");
		ok = FALSE;
	} else if (s->status == MIG_STATUS_NONE) {
		g_set_error(err, MIG_ERROR, EINVAL, "Postcopy must be started after migration has been started");
		ok = FALSE;
	} else {
		/* a migration that already finished makes this a no-op, as in QEMU */
		__atomic_store_n(&s->start_postcopy, TRUE, __ATOMIC_RELEASE);
	}
	g_mutex_unlock(&s->lock);
	return ok;
}

gboolean mig_session_continue(MigSession *s, MigStatus state, GError **err)
{
	gboolean ok = TRUE;

	g_mutex_lock(&s->lock);
	if (s->status != state || state != MIG_STATUS_PRE_SWITCHOVER) {
		g_set_error(err, MIG_ERROR, EINVAL, "Migration not in expected state: %s", mig_status_str(s->status));
		ok = FALSE;
	} else {
		s->switchover_go = TRUE;
		g_cond_broadcast(&s->switchover_cond);
	}
	g_mutex_unlock(&s->lock);
	return ok;
}

/* The source's cancel; also what the session's teardown uses. */
static gboolean src_cancel(MigSession *s, GError **err)
{
	g_mutex_lock(&s->lock);
	if (mig_status_is_postcopy_run(s->status) || s->status == MIG_STATUS_POSTCOPY_DEVICE) {
		/* the guest runs on the destination: the source cannot take it back */
		g_mutex_unlock(&s->lock);
		g_set_error(err, MIG_ERROR, EBUSY, "Postcopy migration in progress, cannot cancel.");
		return FALSE;
	}
	if (s->status == MIG_STATUS_SETUP || s->status == MIG_STATUS_ACTIVE ||
	    s->status == MIG_STATUS_DEVICE || s->status == MIG_STATUS_PRE_SWITCHOVER) {
		s->cancel = TRUE;
		g_cond_broadcast(&s->switchover_cond);   /* out of pre-switchover */
		mig_set_status_locked(s, MIG_STATUS_CANCELLING);
		/* unblocks a send or receive stuck on the peer */
		if (s->src)
			mig_src_cancel(s->src);
	}
	g_mutex_unlock(&s->lock);
	return TRUE;
}

gboolean mig_session_cancel(MigSession *s, GError **err)
{
	gboolean incoming;

	g_mutex_lock(&s->lock);
	incoming = s->dst && !s->src && !mig_status_is_postcopy_run(s->status) && s->status != MIG_STATUS_POSTCOPY_DEVICE;
	g_mutex_unlock(&s->lock);
	return incoming ? mig_dst_cancel(s, err) : src_cancel(s, err);
}

gboolean mig_session_has_channels(MigSession *s)
{
	gboolean any;

	g_mutex_lock(&s->lock);
	any = (s->src && mig_src_has_channels(s->src)) || (s->dst && mig_dst_has_channels(s));
	g_mutex_unlock(&s->lock);
	return any;
}

void mig_session_yank(MigSession *s)
{
	g_mutex_lock(&s->lock);
	if (s->src)
		mig_src_yank(s->src);
	if (s->dst)
		mig_dst_yank(s);
	g_mutex_unlock(&s->lock);
	mig_log(s, MIG_LOG_WARNING, "yank: migration channels shut down");
}

gboolean mig_session_pause(MigSession *s, GError **err)
{
	gboolean ok;

	g_mutex_lock(&s->lock);
	ok = s->status == MIG_STATUS_POSTCOPY_ACTIVE || s->status == MIG_STATUS_POSTCOPY_RECOVER ||
	     (s->src && s->status == MIG_STATUS_POSTCOPY_RECOVER_SETUP);
	if (!ok)
		g_set_error(err, MIG_ERROR, EINVAL, "migrate-pause is currently only supported during postcopy-active "
			    "or postcopy-recover state (now %s)", mig_status_str(s->status));
	else if (s->src)
		mig_src_pause(s->src);
	g_mutex_unlock(&s->lock);
	/* the destination's own lock order: its channels' locks are taken without ours */
	if (ok && !s->src)
		ok = mig_dst_pause(s, err);
	return ok;
}

/* Recovery opens new channels itself: an address, not a passed descriptor. */
static gboolean recovery_uri_ok(const char *uri, GError **err)
{
	MigUri parsed;

	if (!uri_ok(uri, &parsed, err))
		return FALSE;
	if (parsed.kind == MIG_URI_FD || parsed.kind == MIG_URI_FILE) {
		g_set_error(err, MIG_ERROR, EINVAL, "postcopy recovery needs a tcp: or unix: address, not '%s'", uri);
		return FALSE;
	}
	return TRUE;
}

gboolean mig_session_recover(MigSession *s, const char *uri, GError **err)
{
	MigUri parsed;

	/* which kinds of address: the destination's to say (a lazy restore's is a file) */
	return uri_ok(uri, &parsed, err) && mig_dst_recover(s, uri, err);
}

gboolean mig_session_resume(MigSession *s, const char *uri, GError **err)
{
	gboolean ok;

	if (!recovery_uri_ok(uri, err))
		return FALSE;
	g_mutex_lock(&s->lock);
	ok = s->src && s->status == MIG_STATUS_POSTCOPY_PAUSED;
	if (ok)
		mig_src_resume(s->src, uri);
	else
		g_set_error(err, MIG_ERROR, EINVAL, "Cannot resume if there is no paused migration");
	g_mutex_unlock(&s->lock);
	/* the Src outlives this command: only the next migrate or the session's end,
	 * after the dispatcher, frees it */
	if (ok)
		mig_src_resume_announce(s->src);
	return ok;
}

