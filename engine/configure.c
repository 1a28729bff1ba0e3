/* migrate-set-capabilities and migrate-set-parameters: whether the running migration
 * allows the change (the destination half says whether its migration started), then
 * engine/params.c's table checks each value. A request is validated whole before
 * anything is applied, so a bad member changes nothing. */
#include "engine/session_int.h"
#include "engine/dst/dst.h"
#include <errno.h>
#include <stddef.h>
#include <string.h>

/* A migration runs: setup on the source, anything past listening on the destination.
 * Once it completed, failed or was cancelled, both sides may be reconfigured (libvirt
 * resets them after every migration), as in QEMU. */
static gboolean migration_busy(MigSession *s, GError **err)
{
	/* a destination that only listens may still be configured, as in QEMU */
	gboolean listening = s->dst && !mig_dst_started(s);

	if (mig_status_is_active(s->status) && !listening) {
		g_set_error(err, MIG_ERROR, EBUSY, "There's a migration process in progress");
		return TRUE;
	}
	return FALSE;
}

gboolean mig_session_set_caps(MigSession *s, const MigCapSetting *set, guint n, GError **err)
{
	gboolean want[MIG_CAP__MAX];
	gboolean ok = FALSE;

	g_mutex_lock(&s->lock);
	if (migration_busy(s, err))
		goto out;
	memcpy(want, s->caps, sizeof(want));
	for (guint i = 0; i < n; i++) {
		if ((guint)set[i].cap >= MIG_CAP__MAX) {
			g_set_error(err, MIG_ERROR, EINVAL, "Capability %d does not exist", (int)set[i].cap);
			goto out;
		}
		if (set[i].state && !mig_cap_supported(set[i].cap)) {
			g_set_error(err, MIG_ERROR, ENOTSUP, "Capability '%s' is not supported by mig yet", mig_cap_name(set[i].cap));
			goto out;
		}
		want[set[i].cap] = !!set[i].state;
	}
	if (want[MIG_CAP_POSTCOPY_PREEMPT] && !want[MIG_CAP_POSTCOPY_RAM]) {
		g_set_error(err, MIG_ERROR, EINVAL, "Postcopy preempt requires postcopy-ram");
		goto out;
	}
	memcpy(s->caps, want, sizeof(want));
	ok = TRUE;
out:
	g_mutex_unlock(&s->lock);
	return ok;
}

gboolean mig_session_set_cap(MigSession *s, MigCap cap, gboolean state, GError **err)
{
	MigCapSetting one = { cap, state };

	return mig_session_set_caps(s, &one, 1, err);
}

/* The parameters a running migration reads live from s->params, without the session
 * lock (atomic loads): those QEMU lets change mid-migration. In the order of MigParams. */
static const size_t live_params[] = {
	offsetof(MigParams, downtime_limit),
	offsetof(MigParams, max_bandwidth),
	offsetof(MigParams, max_postcopy_bandwidth),
};
/* params_store walks them in order: a reordering of MigParams must fail the build, not
 * every set-params at run time. */
G_STATIC_ASSERT(offsetof(MigParams, downtime_limit) < offsetof(MigParams, max_bandwidth));
G_STATIC_ASSERT(offsetof(MigParams, max_bandwidth) < offsetof(MigParams, max_postcopy_bandwidth));

/* *to = *from, with the live fields stored atomically: a plain struct store would race
 * with the migration threads' loads of them. Called with the session lock held. */
static void params_store(MigParams *to, const MigParams *from)
{
	size_t at = 0;

	for (gsize i = 0; i < G_N_ELEMENTS(live_params); i++) {
		size_t o = live_params[i];

		memcpy((char *)to + at, (const char *)from + at, o - at);
		__atomic_store_n((guint64 *)((char *)to + o), *(const guint64 *)((const char *)from + o),
				 __ATOMIC_RELAXED);
		at = o + sizeof(guint64);
	}
	memcpy((char *)to + at, (const char *)from + at, sizeof(*to) - at);
}

gboolean mig_session_set_params(MigSession *s, const MigParamSetting *set, guint n, GError **err)
{
	MigParams next;
	gboolean ok = TRUE;

	g_mutex_lock(&s->lock);
	mig_params_copy(&next, &s->params);
	for (guint i = 0; i < n && ok; i++)
		ok = mig_params_apply(&set[i], &next, err);
	if (ok && next.multifd_channels != s->params.multifd_channels && mig_dst_started(s) &&
	    mig_status_is_active(s->status)) {
		g_set_error(err, MIG_ERROR, EBUSY, "multifd-channels cannot change once incoming has started");
		ok = FALSE;
	}
	if (ok && next.x_preempt_channels != s->params.x_preempt_channels) {
		g_autoptr(GError) busy = NULL;

		/* the channels are opened (and counted in SETUP) when the migration starts */
		if (migration_busy(s, &busy)) {
			g_set_error(err, MIG_ERROR, EBUSY, "x-preempt-channels cannot change during a migration");
			ok = FALSE;
		}
	}
	if (ok) {
		mig_params_clear(&s->params);
		params_store(&s->params, &next);
	} else {
		mig_params_clear(&next);
	}
	g_mutex_unlock(&s->lock);
	return ok;
}

gboolean mig_session_set_param_u64(MigSession *s, MigParam p, guint64 v, GError **err)
{
	MigParamSetting one = { .param = p, .u64 = v };

	if (mig_param_type(p) != MIG_PARAM_TYPE_U64) {
		g_set_error(err, MIG_ERROR, EINVAL, "Invalid parameter type for '%s', expected: integer", mig_param_name(p));
		return FALSE;
	}
	return mig_session_set_params(s, &one, 1, err);
}

gboolean mig_session_set_param_bool(MigSession *s, MigParam p, gboolean v, GError **err)
{
	MigParamSetting one = { .param = p, .boolean = v };

	if (mig_param_type(p) != MIG_PARAM_TYPE_BOOL) {
		g_set_error(err, MIG_ERROR, EINVAL, "Invalid parameter type for '%s', expected: boolean", mig_param_name(p));
		return FALSE;
	}
	return mig_session_set_params(s, &one, 1, err);
}

gboolean mig_session_set_param_str(MigSession *s, MigParam p, const char *v, GError **err)
{
	MigParamSetting one = { .param = p, .str = v };
	MigParamType t = mig_param_type(p);

	if (t != MIG_PARAM_TYPE_STR && t != MIG_PARAM_TYPE_ENUM) {
		g_set_error(err, MIG_ERROR, EINVAL, "Invalid parameter type for '%s', expected: string", mig_param_name(p));
		return FALSE;
	}
	return mig_session_set_params(s, &one, 1, err);
}
