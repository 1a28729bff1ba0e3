/* <mig/dirty.h>'s uffd trackers (mig_dirty_tracker_uffd_new, the default, and
 * mig_dirty_tracker_uffd_log_new) over each backend. */
#include <glib.h>

#include <mig/dirty.h>
#include "uffd/testmem.h"
#include "uffd/uffd.h"

static const TmBackend backends[] = {
	{ TM_ANON, "anon" },
	{ TM_MEMFD, "memfd" },
	{ TM_HUGETLB, "hugetlb-2M" },
};

typedef struct {
	const char *name;	/* ops->name before start */
	MigDirtyTracker *(*new_)(void);
} Kind;

static const Kind kinds[] = {
	{ "uffd-wp", mig_dirty_tracker_uffd_new },
	{ "uffd-wp-log", mig_dirty_tracker_uffd_log_new },
};

typedef struct {
	const TmBackend *b;
	const Kind *k;
} Case;

static Case cases[G_N_ELEMENTS(kinds)][G_N_ELEMENTS(backends)];

static TmHugeResv huge_resv;
static int huge_err;

static void test_adapter(gconstpointer data)
{
	const Case *c = data;
	const TmBackend *b = c->b;
	size_t len = b->kind == TM_HUGETLB ? 8 * TM_HUGE_2M : 1UL << 20;
	g_autoptr(GError) err = NULL;
	g_autofree gulong *map = NULL;
	MigDirtyTracker *t;
	guint64 n = 12345;
	unsigned long long mig0;
	size_t nlongs;
	int ret;
	TmMem m;

	if (b->kind == TM_HUGETLB && huge_err) {
		g_test_skip("cannot reserve free 2 MiB huge pages");
		return;
	}
	mig0 = tm_pgmigrate_success();
	ret = tm_map(b->kind, len, &m);
	if (ret < 0 && b->kind == TM_HUGETLB) {
		/* The pool is shared; another suite may have taken the pages since main(). */
		g_autofree char *msg = g_strdup_printf("mapping hugetlb memory: %s", g_strerror(-ret));

		g_test_skip(msg);
		return;
	}
	g_assert_cmpint(ret, ==, 0);
	nlongs = tm_bitmap_longs(m.npages);
	map = g_new0(gulong, nlongs);

	t = c->k->new_();
	g_assert_nonnull(t);
	g_assert_cmpstr(t->ops->name, ==, c->k->name);

	/* sync before start is an error, not a crash */
	g_assert_false(t->ops->sync(t, map, &n, &err));
	g_assert_nonnull(err);
	g_clear_error(&err);

	if (!t->ops->start(t, m.base, m.len, m.page_size, &err)) {
		if (g_error_matches(err, g_quark_from_static_string("mig-dirty-uffd-error-quark"),
				    EOPNOTSUPP)) {
			g_test_skip(err->message);
			mig_dirty_tracker_free(t);
			tm_unmap(&m);
			return;
		}
		g_error("start: %s", err->message);
	}
	/* The log runs wherever never-touched pages can be write-protected (which the
	 * scan needs too); it falls back to the scan only without that. */
	if (c->k->new_ == mig_dirty_tracker_uffd_log_new &&
	    (mig_uffd_probe_features() & UFFD_FEATURE_WP_UNPOPULATED))
		g_assert_cmpstr(t->ops->name, ==, "uffd-wp-log");
	else
		g_assert_cmpstr(t->ops->name, ==, "uffd-wp");
	/* a second start is refused while the first is live */
	g_assert_false(t->ops->start(t, m.base, m.len, m.page_size, &err));
	g_assert_error(err, g_quark_from_static_string("mig-dirty-uffd-error-quark"), EBUSY);
	g_clear_error(&err);

	m.base[0] = 1;
	m.base[m.len - 1] = 1;
	m.base[2 * m.page_size + 17] = 1;

	/* bits are ORed in: a bit already set stays set */
	map[0] = 1UL << 1;
	g_assert_true(t->ops->sync(t, map, &n, &err));
	g_assert_no_error(err);
	g_assert_cmpuint(n, ==, 3);
	for (size_t p = 0; p < m.npages; p++)
		g_assert_cmpint(tm_test_bit(map, p), ==, p == 0 || p == 1 || p == 2 || p == m.npages - 1);

	/* Nothing written since: nothing reported, unless the system migrated one of the
	 * three pages mid-sync (see test-uffd-wp.c), which may report it once more. */
	memset(map, 0, nlongs * sizeof(gulong));
	g_assert_true(t->ops->sync(t, map, &n, &err));
	if (n && tm_pgmigrate_success() != mig0)
		g_test_message("%" G_GUINT64_FORMAT " page(s) re-reported after page migration", n);
	else
		for (size_t i = 0; i < nlongs; i++)
			g_assert_cmpuint(map[i], ==, 0);

	/* stop then start again is a fresh session */
	t->ops->stop(t);
	m.base[m.page_size] = 7;	/* untracked */
	g_assert_true(t->ops->start(t, m.base, m.len, m.page_size, &err));
	m.base[m.page_size] = 8;
	memset(map, 0, nlongs * sizeof(gulong));
	g_assert_true(t->ops->sync(t, map, &n, &err));
	g_assert_true(tm_test_bit(map, 1));
	if (n != 1 && tm_pgmigrate_success() != mig0)
		g_test_message("%" G_GUINT64_FORMAT " page(s) reported after page migration", n);
	else
		g_assert_cmpuint(n, ==, 1);

	mig_dirty_tracker_free(t);	/* free while started stops first */
	m.base[0] = 9;
	tm_unmap(&m);
}

static void test_bad_range(void)
{
	g_autoptr(GError) err = NULL;
	MigDirtyTracker *t = mig_dirty_tracker_uffd_new();
	TmMem m;

	g_assert_cmpint(tm_map(TM_ANON, 1 << 20, &m), ==, 0);
	g_assert_false(t->ops->start(t, m.base + 1, 4096, 4096, &err));
	g_assert_error(err, g_quark_from_static_string("mig-dirty-uffd-error-quark"), EINVAL);
	g_test_message("%s", err->message);
	mig_dirty_tracker_free(t);
	mig_dirty_tracker_free(NULL);
	tm_unmap(&m);
}

int main(int argc, char **argv)
{
	int ret;

	g_test_init(&argc, &argv, NULL);
	huge_err = tm_reserve_huge(16, &huge_resv);
	for (size_t k = 0; k < G_N_ELEMENTS(kinds); k++)
		for (size_t i = 0; i < G_N_ELEMENTS(backends); i++) {
			/* the default's paths as they always were */
			g_autofree char *path = g_strdup_printf("/uffd/dirty/%s%s", k ? "log/" : "",
								backends[i].name);

			cases[k][i] = (Case){ &backends[i], &kinds[k] };
			g_test_add_data_func(path, &cases[k][i], test_adapter);
		}
	g_test_add_func("/uffd/dirty/bad-range", test_bad_range);
	ret = g_test_run();
	tm_release_huge(&huge_resv);
	return ret;
}
