/* Unit encoding: every kind of damage a migration can do is told apart. And the
 * guest's generation record: handed out in parts, then the rest; the destination
 * refuses a record that misses a unit or names one it does not have. */
#include "tools/migd/unit.h"
#include "tools/migd/guest.h"
#include "channels/wire.h"
#include <glib.h>
#include <string.h>

static guint8 *unit_new(void)
{
	return g_malloc0(MIGD_UNIT_SIZE);
}

static void test_roundtrip(void)
{
	g_autofree guint8 *u = unit_new();

	for (guint32 gen = 0; gen < 5; gen++) {
		migd_unit_write(u, 42, 7, gen);
		g_assert_cmpint(migd_unit_check_self(u, 42, 7), ==, MIGD_UNIT_OK);
		g_assert_cmpint(migd_unit_check(u, 42, 7, gen), ==, MIGD_UNIT_OK);
		g_assert_cmpuint(migd_unit_gen(u), ==, gen);
	}
}

static void test_zero(void)
{
	g_autofree guint8 *u = unit_new();

	g_assert_cmpuint(migd_unit_gen(u), ==, MIGD_UNIT_ZERO_GEN);
	g_assert_cmpint(migd_unit_check_self(u, 1, 0), ==, MIGD_UNIT_ZERO);
	g_assert_cmpint(migd_unit_check(u, 1, 0, MIGD_UNIT_ZERO_GEN), ==, MIGD_UNIT_OK);
	g_assert_cmpint(migd_unit_check(u, 1, 0, 3), ==, MIGD_UNIT_ZERO);
	migd_unit_write(u, 1, 0, 1);
	g_assert_cmpint(migd_unit_check(u, 1, 0, MIGD_UNIT_ZERO_GEN), ==, MIGD_UNIT_UNEXPECTED_DATA);
}

static void test_stale_and_ahead(void)
{
	g_autofree guint8 *u = unit_new();

	migd_unit_write(u, 9, 100, 3);
	g_assert_cmpint(migd_unit_check(u, 9, 100, 4), ==, MIGD_UNIT_STALE);
	g_assert_cmpint(migd_unit_check(u, 9, 100, 2), ==, MIGD_UNIT_AHEAD);
}

static void test_foreign(void)
{
	g_autofree guint8 *u = unit_new();

	migd_unit_write(u, 9, 100, 3);
	g_assert_cmpint(migd_unit_check(u, 10, 100, 3), ==, MIGD_UNIT_FOREIGN);  /* other guest */
	g_assert_cmpint(migd_unit_check(u, 9, 101, 3), ==, MIGD_UNIT_FOREIGN);   /* misplaced */
}

/* Half of one generation and half of the next: what a copy racing a write produces. */
static void test_torn(void)
{
	g_autofree guint8 *a = unit_new();
	g_autofree guint8 *b = unit_new();

	migd_unit_write(a, 5, 8, 1);
	migd_unit_write(b, 5, 8, 2);
	for (gsize cut = 64; cut < MIGD_UNIT_SIZE; cut += 1000) {
		g_autofree guint8 *t = g_memdup2(a, MIGD_UNIT_SIZE);

		memcpy(t + cut, b + cut, MIGD_UNIT_SIZE - cut);
		g_assert_cmpint(migd_unit_check_self(t, 5, 8), ==, MIGD_UNIT_TORN);
	}
	/* one flipped bit anywhere in the body */
	a[MIGD_UNIT_SIZE - 1] ^= 1;
	g_assert_cmpint(migd_unit_check_self(a, 5, 8), ==, MIGD_UNIT_TORN);
	/* a header torn on its own (generation word replaced) */
	migd_unit_write(b, 5, 8, 2);
	b[16] ^= 1;
	g_assert_cmpint(migd_unit_check_self(b, 5, 8), ==, MIGD_UNIT_TORN);
	/* a unit zeroed except its tail */
	memset(b, 0, 64);
	g_assert_cmpint(migd_unit_check_self(b, 5, 8), ==, MIGD_UNIT_TORN);
}

static void test_is_zero(void)
{
	g_autofree guint8 *p = g_malloc0(1 << 21);

	g_assert_true(mig_mem_is_zero(p, 1 << 21));
	p[(1 << 21) - 1] = 1;
	g_assert_false(mig_mem_is_zero(p, 1 << 21));
}

#define REC_UNITS 256u   /* a 1 MiB guest */

static MigdGuest *rec_guest(gboolean incoming)
{
	MigdGuestConfig cfg = { .mem_size = REC_UNITS * MIGD_UNIT_SIZE, .backend = MIG_MEM_ANON, .vcpus = 1,
				.seed = 9, .incoming = incoming };
	g_autoptr(GError) err = NULL;
	MigdGuest *g;

	g_assert_true(migd_workload_parse("idle", &cfg.workload, &err));
	g = migd_guest_new(&cfg, &err);
	g_assert_no_error(err);
	return g;
}

/* Every part the source hands out (max bytes each), loaded on dst as they come. */
static guint rec_send_parts(MigdGuest *src, MigdGuest *dst, gsize max, gboolean drop_last)
{
	g_autoptr(GByteArray) last = NULL;
	guint n = 0;
	gboolean more = TRUE;

	while (more) {
		g_autoptr(GByteArray) part = g_byte_array_new();
		g_autoptr(GError) err = NULL;

		more = migd_guest_save_part(src, part, max);
		g_assert_cmpuint(part->len, <=, max);
		if (!part->len)
			break;
		n++;
		if (last)
			g_assert_true(migd_guest_load_part(dst, last->data, last->len, &err));
		g_assert_no_error(err);
		g_clear_pointer(&last, g_byte_array_unref);
		last = g_steal_pointer(&part);
	}
	if (last && !drop_last) {
		g_autoptr(GError) err = NULL;

		g_assert_true(migd_guest_load_part(dst, last->data, last->len, &err));
		g_assert_no_error(err);
	}
	return n;
}

static void test_record_parts(void)
{
	MigdGuest *src = rec_guest(FALSE), *dst = rec_guest(TRUE);
	g_autoptr(GError) err = NULL;
	g_autoptr(GBytes) rest = NULL;
	guint64 checked, failed, total;

	migd_guest_save_begin(src);
	migd_guest_load_begin(dst);
	/* parts of at most 1100 bytes: one word of 64 units' generations each */
	g_assert_cmpuint(rec_send_parts(src, dst, 1100, FALSE), ==, REC_UNITS / 64);
	migd_guest_stop(src);
	rest = migd_guest_save_record(src);
	/* an idle guest: only the head is left for the downtime */
	g_assert_cmpuint(g_bytes_get_size(rest), ==, 24);
	g_assert_true(migd_guest_load_record(dst, g_bytes_get_data(rest, NULL), g_bytes_get_size(rest), &err));
	g_assert_no_error(err);
	/* the pages, as a migration would have moved them */
	memcpy(migd_guest_ram(dst)->host, migd_guest_ram(src)->host, REC_UNITS * MIGD_UNIT_SIZE);
	migd_guest_start_verifier(dst);
	g_assert_true(migd_guest_wait_verified(dst, 10 * G_USEC_PER_SEC));
	migd_guest_integrity(dst, &checked, &failed, &total);
	g_assert_cmpuint(total, ==, REC_UNITS);
	g_assert_cmpuint(checked, ==, REC_UNITS);
	g_assert_cmpuint(failed, ==, 0);
	migd_guest_free(src);
	migd_guest_free(dst);
}

static void test_record_whole(void)
{
	MigdGuest *src = rec_guest(FALSE), *dst = rec_guest(TRUE);
	g_autoptr(GError) err = NULL;
	g_autoptr(GBytes) all = NULL;

	/* a migration that takes no parts (to a file): the record is in save_record */
	migd_guest_save_begin(src);
	migd_guest_stop(src);
	all = migd_guest_save_record(src);
	g_assert_cmpuint(g_bytes_get_size(all), ==, 24 + 12 + 4 * REC_UNITS);
	migd_guest_load_begin(dst);
	g_assert_true(migd_guest_load_record(dst, g_bytes_get_data(all, NULL), g_bytes_get_size(all), &err));
	g_assert_no_error(err);
	migd_guest_free(src);
	migd_guest_free(dst);
}

static void test_record_refused(void)
{
	MigdGuest *src = rec_guest(FALSE), *dst = rec_guest(TRUE);
	g_autoptr(GError) err = NULL;
	g_autoptr(GBytes) rest = NULL;
	guint8 run[20] = { 0 };

	migd_guest_save_begin(src);
	migd_guest_load_begin(dst);
	rec_send_parts(src, dst, 1100, TRUE);   /* the last part lost */
	migd_guest_stop(src);
	rest = migd_guest_save_record(src);
	g_assert_false(migd_guest_load_record(dst, g_bytes_get_data(rest, NULL), g_bytes_get_size(rest), &err));
	g_assert_nonnull(strstr(err->message, "incomplete"));
	g_clear_error(&err);
	/* a run past the guest's units, an empty run, a truncated one */
	mig_put_be64(run, REC_UNITS - 1);
	mig_put_be32(run + 8, 2);
	g_assert_false(migd_guest_load_part(dst, run, sizeof(run), &err));
	g_assert_nonnull(strstr(err->message, "outside"));
	g_clear_error(&err);
	mig_put_be32(run + 8, 0);
	g_assert_false(migd_guest_load_part(dst, run, 12, &err));
	g_clear_error(&err);
	mig_put_be64(run, 0);
	mig_put_be32(run + 8, 1);
	g_assert_false(migd_guest_load_part(dst, run, 15, &err));
	g_clear_error(&err);
	migd_guest_free(src);
	migd_guest_free(dst);
}

/* used=SIZE: the tail past it starts zero, is recorded zero, and no write reaches it. */
static void test_workload_used(void)
{
	MigdGuestConfig cfg = { .mem_size = REC_UNITS * MIGD_UNIT_SIZE, .backend = MIG_MEM_ANON, .vcpus = 2,
				.seed = 9 };
	g_autoptr(GError) err = NULL;
	guint64 checked, failed;
	MigdWorkload w;
	MigdGuest *g;

	g_assert_true(migd_workload_parse("idle,used=6G", &w, &err));
	g_assert_cmpuint(w.used, ==, 6ull << 30);
	for (guint i = 0; i < 3; i++) {
		static const char *const bad[] = { "idle,used=0", "idle,used=4095", "idle,used=lots" };

		g_assert_false(migd_workload_parse(bad[i], &w, &err));
		g_assert_error(err, migd_guest_error_quark(), EINVAL);
		g_clear_error(&err);
	}
	/* a quarter used, a writing workload: it stays in its quarter */
	g_assert_true(migd_workload_parse("random,rate=0,used=256K", &cfg.workload, &err));
	g = migd_guest_new(&cfg, &err);
	g_assert_no_error(err);
	migd_guest_cont(g);
	g_usleep(20000);
	migd_guest_stop(g);
	g_assert_cmpuint(migd_guest_writes(g), >, 0);
	for (guint64 i = 0; i < REC_UNITS; i++) {
		const guint8 *u = migd_guest_ram(g)->host + i * MIGD_UNIT_SIZE;

		g_assert_cmpint(migd_unit_check_self(u, 9, i), ==, i < REC_UNITS / 4 ? MIGD_UNIT_OK : MIGD_UNIT_ZERO);
	}
	migd_guest_self_check(g, &checked, &failed);
	g_assert_cmpuint(checked, ==, REC_UNITS);
	g_assert_cmpuint(failed, ==, 0);
	migd_guest_free(g);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/unit/roundtrip", test_roundtrip);
	g_test_add_func("/unit/zero", test_zero);
	g_test_add_func("/unit/stale-ahead", test_stale_and_ahead);
	g_test_add_func("/unit/foreign", test_foreign);
	g_test_add_func("/unit/torn", test_torn);
	g_test_add_func("/unit/is-zero", test_is_zero);
	g_test_add_func("/workload/used", test_workload_used);
	g_test_add_func("/record/parts", test_record_parts);
	g_test_add_func("/record/whole", test_record_whole);
	g_test_add_func("/record/refused", test_record_refused);
	return g_test_run();
}
