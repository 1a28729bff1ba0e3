/* The typed configuration (<mig/config.h>): names, types, checks and all-or-nothing
 * setting, without any JSON. */
#include <mig/mig.h>
#include <string.h>
#include <errno.h>

/* Every enum member is in the table: a name that maps back to it. */
static void test_names(void)
{
	MigCap c;
	MigParam p;

	for (int i = 0; i < MIG_CAP__MAX; i++) {
		g_assert_nonnull(mig_cap_name(i));
		g_assert_true(mig_cap_from_name(mig_cap_name(i), &c));
		g_assert_cmpint(c, ==, i);
	}
	for (int i = 0; i < MIG_PARAM__MAX; i++) {
		g_assert_nonnull(mig_param_name(i));
		g_assert_true(mig_param_from_name(mig_param_name(i), &p));
		g_assert_cmpint(p, ==, i);
	}
	g_assert_cmpstr(mig_cap_name(MIG_CAP_POSTCOPY_PREEMPT), ==, "postcopy-preempt");
	g_assert_cmpstr(mig_param_name(MIG_PARAM_DOWNTIME_LIMIT), ==, "downtime-limit");
	g_assert_false(mig_cap_from_name("no-such-cap", &c));
	g_assert_false(mig_param_from_name("no-such-param", &p));
	g_assert_cmpint(mig_param_type(MIG_PARAM_MAX_BANDWIDTH), ==, MIG_PARAM_TYPE_U64);
	g_assert_cmpint(mig_param_type(MIG_PARAM_X_POSTCOPY_PACE), ==, MIG_PARAM_TYPE_BOOL);
	g_assert_cmpint(mig_param_type(MIG_PARAM_X_TCP_CONGESTION), ==, MIG_PARAM_TYPE_STR);
	g_assert_cmpint(mig_param_type(MIG_PARAM_ZERO_PAGE_DETECTION), ==, MIG_PARAM_TYPE_ENUM);
}

static void test_params(void)
{
	MigSession *s = mig_session_new("cfg");
	GError *err = NULL;
	g_autofree char *zpd = NULL;

	g_assert_cmpuint(mig_session_get_param_u64(s, MIG_PARAM_DOWNTIME_LIMIT), ==, 300);
	g_assert_true(mig_session_set_param_u64(s, MIG_PARAM_DOWNTIME_LIMIT, 50, &err));
	g_assert_cmpuint(mig_session_get_param_u64(s, MIG_PARAM_DOWNTIME_LIMIT), ==, 50);

	g_assert_false(mig_session_set_param_u64(s, MIG_PARAM_MULTIFD_CHANNELS, 65, &err));
	g_assert_error(err, MIG_ERROR, ERANGE);
	g_assert_cmpstr(err->message, ==, "Parameter 'multifd-channels' expects a value between 1 and 64");
	g_clear_error(&err);

	g_assert_cmpuint(mig_session_get_param_u64(s, MIG_PARAM_X_CHANNEL_TIMEOUT), ==, 15000);
	g_assert_false(mig_session_set_param_u64(s, MIG_PARAM_X_CHANNEL_TIMEOUT, 999, &err));
	g_assert_error(err, MIG_ERROR, ERANGE);
	g_assert_cmpstr(err->message, ==, "Parameter 'x-channel-timeout' expects a value between 1000 and 600000");
	g_clear_error(&err);
	g_assert_true(mig_session_set_param_u64(s, MIG_PARAM_X_CHANNEL_TIMEOUT, 2000, &err));
	g_assert_cmpuint(mig_session_get_param_u64(s, MIG_PARAM_X_CHANNEL_TIMEOUT), ==, 2000);

	g_assert_false(mig_session_set_param_bool(s, MIG_PARAM_MAX_BANDWIDTH, TRUE, &err));
	g_assert_error(err, MIG_ERROR, EINVAL);
	g_clear_error(&err);

	g_assert_true(mig_session_set_param_str(s, MIG_PARAM_ZERO_PAGE_DETECTION, "legacy", &err));
	zpd = mig_session_get_param_str(s, MIG_PARAM_ZERO_PAGE_DETECTION);
	g_assert_cmpstr(zpd, ==, "legacy");
	g_assert_false(mig_session_set_param_str(s, MIG_PARAM_ZERO_PAGE_DETECTION, "sometimes", &err));
	g_assert_error(err, MIG_ERROR, EINVAL);
	g_clear_error(&err);

	/* an object id, checked when a migration starts (the object may come later) */
	g_assert_true(mig_session_set_param_str(s, MIG_PARAM_TLS_CREDS, "tls0", &err));
	g_assert_false(mig_session_migrate(s, "tcp:127.0.0.1:1", &err));
	g_assert_error(err, MIG_ERROR, ENOENT);
	g_assert_nonnull(strstr(err->message, "'tls0'"));
	g_clear_error(&err);
	{
		const char *const props[] = { "identity", "CN=client", NULL };

		/* an authz object is not credentials */
		g_assert_true(mig_session_object_add(s, "authz-simple", "tls0", props, &err));
		g_assert_false(mig_session_object_add(s, "authz-simple", "tls0", props, &err));
		g_assert_error(err, MIG_ERROR, EEXIST);
		g_clear_error(&err);
		g_assert_false(mig_session_migrate(s, "tcp:127.0.0.1:1", &err));
		g_assert_error(err, MIG_ERROR, ENOENT);
		g_clear_error(&err);
		g_assert_false(mig_session_object_add(s, "tls-creds-x509", "t1", props, &err));
		g_assert_error(err, MIG_ERROR, EINVAL);   /* identity is not an x509 property */
		g_clear_error(&err);
		g_assert_true(mig_session_object_del(s, "tls0", &err));
		g_assert_false(mig_session_object_del(s, "tls0", &err));
		g_assert_error(err, MIG_ERROR, ENOENT);
		g_clear_error(&err);
	}
	g_assert_true(mig_session_set_param_str(s, MIG_PARAM_TLS_CREDS, "", &err));
	g_assert_cmpuint(mig_session_status(s), ==, MIG_STATUS_NONE);

	/* a getter of the wrong type answers nothing rather than a reinterpreted field */
	g_assert_null(mig_session_get_param_str(s, MIG_PARAM_DOWNTIME_LIMIT));
	g_assert_cmpuint(mig_session_get_param_u64(s, MIG_PARAM_MODE), ==, 0);
	mig_session_free(s);
}

/* One bad setting in a batch and none of them applies. */
static void test_all_or_nothing(void)
{
	MigSession *s = mig_session_new("cfg");
	GError *err = NULL;
	MigParamSetting params[] = {
		{ .param = MIG_PARAM_MAX_BANDWIDTH, .u64 = 1000 },
		{ .param = MIG_PARAM_X_DEVICE_MAX_QUEUED, .u64 = 1 },   /* under 2 MiB */
	};
	MigCapSetting caps[] = {
		{ MIG_CAP_EVENTS, TRUE },
		{ MIG_CAP_POSTCOPY_PREEMPT, TRUE },   /* without postcopy-ram */
	};

	g_assert_false(mig_session_set_params(s, params, G_N_ELEMENTS(params), &err));
	g_assert_error(err, MIG_ERROR, ERANGE);
	g_clear_error(&err);
	g_assert_cmpuint(mig_session_get_param_u64(s, MIG_PARAM_MAX_BANDWIDTH), ==, 128u << 20);

	g_assert_false(mig_session_set_caps(s, caps, G_N_ELEMENTS(caps), &err));
	g_assert_error(err, MIG_ERROR, EINVAL);
	g_clear_error(&err);
	g_assert_false(mig_session_get_cap(s, MIG_CAP_EVENTS));

	g_assert_false(mig_session_set_cap(s, MIG_CAP_XBZRLE, TRUE, &err));
	g_assert_error(err, MIG_ERROR, ENOTSUP);
	g_clear_error(&err);
	g_assert_false(mig_cap_supported(MIG_CAP_XBZRLE));
	g_assert_true(mig_cap_supported(MIG_CAP_MAPPED_RAM));
	g_assert_cmpstr(mig_cap_name(MIG_CAP_MAPPED_RAM), ==, "mapped-ram");
	g_assert_cmpstr(mig_param_name(MIG_PARAM_DIRECT_IO), ==, "direct-io");
	g_assert_cmpint(mig_param_type(MIG_PARAM_DIRECT_IO), ==, MIG_PARAM_TYPE_BOOL);

	caps[1].cap = MIG_CAP_POSTCOPY_RAM;
	g_assert_true(mig_session_set_caps(s, caps, G_N_ELEMENTS(caps), &err));
	g_assert_true(mig_session_get_cap(s, MIG_CAP_EVENTS));
	g_assert_true(mig_session_get_cap(s, MIG_CAP_POSTCOPY_RAM));
	mig_session_free(s);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/config/names", test_names);
	g_test_add_func("/config/params", test_params);
	g_test_add_func("/config/all-or-nothing", test_all_or_nothing);
	return g_test_run();
}
