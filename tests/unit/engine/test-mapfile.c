/* The mapped-ram file header (engine/mapfile.c): a packed header reads back; every
 * single flipped byte of it, a header cut short, a file shorter than the layout, an
 * incomplete save and a guest of another shape are refused with an error, never
 * accepted and never a crash; a paused lazy restore's check that a file is the same
 * save. Real files in a temporary directory. */
#include "engine/mapfile.h"
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

typedef struct Fixture {
	char *dir, *path;
	GPtrArray *ram, *devices;
	MigRamBlock blk[2];
} Fixture;

static void fixture_init(Fixture *f)
{
	f->dir = g_dir_make_tmp("mig-mapfile-XXXXXX", NULL);
	g_assert_nonnull(f->dir);
	f->path = g_build_filename(f->dir, "f.img", NULL);
	f->ram = g_ptr_array_new();
	f->devices = g_ptr_array_new();
	f->blk[0] = (MigRamBlock){ .name = "pc.ram", .size = 64 << 20, .page_size = 4096, .fd = -1 };
	f->blk[1] = (MigRamBlock){ .name = "huge", .size = 8 << 20, .page_size = 2 << 20, .fd = -1 };
	g_ptr_array_add(f->ram, &f->blk[0]);
	g_ptr_array_add(f->ram, &f->blk[1]);
}

static void fixture_clear(Fixture *f)
{
	unlink(f->path);
	rmdir(f->dir);
	g_free(f->path);
	g_free(f->dir);
	g_ptr_array_free(f->ram, TRUE);
	g_ptr_array_free(f->devices, TRUE);
}

/* A complete file of this layout: the header, the rest a hole. Returns its header. */
static guint8 *write_file(Fixture *f, MigMapFile *m, guint32 flags, guint64 start)
{
	int fd = open(f->path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	guint8 *h;

	g_assert_cmpint(fd, >=, 0);
	mig_mapf_layout(m, f->ram, 0);
	mig_mapf_set_lengths(m, 1000, NULL);
	m->flags = flags;
	h = mig_mapf_pack(m);
	g_assert_true(mig_mapf_pwrite(fd, h, m->header_len, start, "header", NULL));
	g_assert_cmpint(ftruncate(fd, (off_t)(start + m->file_len)), ==, 0);
	close(fd);
	return h;
}

static gboolean read_back(Fixture *f, guint64 start, GError **err)
{
	MigMapFile got;
	int fd = open(f->path, O_RDONLY);
	gboolean ok;

	g_assert_cmpint(fd, >=, 0);
	ok = mig_mapf_read_header(fd, start, f->ram, f->devices, &got, err);
	if (ok) {
		g_assert_cmpuint(got.nblocks, ==, 2);
		g_assert_cmpuint(got.blocks[1].pages_off % (2 << 20), ==, 0);
		g_assert_cmpuint(got.blocks[0].pages_off % 4096, ==, 0);
		mig_mapf_clear(&got);
	}
	close(fd);
	return ok;
}

static void test_round_trip(void)
{
	Fixture f;
	MigMapFile m;
	g_autofree guint8 *h = NULL;

	fixture_init(&f);
	h = write_file(&f, &m, MIG_MAPF_F_COMPLETE, 8192);
	g_assert_true(read_back(&f, 8192, NULL));
	mig_mapf_clear(&m);
	fixture_clear(&f);
}

static void test_every_byte_flipped(void)
{
	Fixture f;
	MigMapFile m;
	g_autofree guint8 *h = NULL;
	gsize used;

	fixture_init(&f);
	h = write_file(&f, &m, MIG_MAPF_F_COMPLETE, 0);
	used = MIG_MAPF_HEAD_LEN + 2 * MIG_MAPF_BLOCK_LEN + MIG_MAPF_SHA_LEN;
	for (gsize i = 0; i < used; i++) {
		g_autoptr(GError) err = NULL;
		int fd = open(f.path, O_RDWR);
		guint8 b = h[i] ^ 0x01;

		g_assert_true(mig_mapf_pwrite(fd, &b, 1, i, "byte", NULL));
		close(fd);
		g_assert_false(read_back(&f, 0, &err));
		g_assert_nonnull(err);
		g_assert_nonnull(strstr(err->message, "refused"));
		fd = open(f.path, O_RDWR);
		g_assert_true(mig_mapf_pwrite(fd, &h[i], 1, i, "byte", NULL));
		close(fd);
	}
	g_assert_true(read_back(&f, 0, NULL));
	mig_mapf_clear(&m);
	fixture_clear(&f);
}

/* Bytes no digest covers: the header region past its digest, a name's padding past
 * its NUL and a reserved field (in the digest, but a writer's file has them 0, so only
 * a made-up header gets here). Each nonzero is refused. */
static void test_padding_flipped(void)
{
	Fixture f;
	MigMapFile m;
	g_autofree guint8 *h = NULL;
	gsize used = MIG_MAPF_HEAD_LEN + 2 * MIG_MAPF_BLOCK_LEN;
	const gsize at[] = { used + MIG_MAPF_SHA_LEN, used + MIG_MAPF_SHA_LEN + 1, 1000, 4095 };

	fixture_init(&f);
	h = write_file(&f, &m, MIG_MAPF_F_COMPLETE, 4096);
	for (guint i = 0; i < G_N_ELEMENTS(at); i++) {
		g_autoptr(GError) err = NULL;
		int fd = open(f.path, O_RDWR);
		guint8 b = 0x40;

		g_assert_true(mig_mapf_pwrite(fd, &b, 1, 4096 + at[i], "byte", NULL));
		g_assert_false(read_back(&f, 4096, &err));
		g_assert_nonnull(strstr(err->message, "padding after the header is not zero"));
		b = 0;
		g_assert_true(mig_mapf_pwrite(fd, &b, 1, 4096 + at[i], "byte", NULL));
		close(fd);
	}
	for (guint i = 0; i < 2; i++) {
		g_autoptr(GError) err = NULL;
		guint8 *e = h + MIG_MAPF_HEAD_LEN + MIG_MAPF_BLOCK_LEN;
		int fd;

		e[i ? 136 + 7 : 62] = 0x01;        /* the reserved field; a byte past the name's NUL */
		mig_mapf_sha256(h, used, h + used);
		fd = open(f.path, O_RDWR);
		g_assert_true(mig_mapf_pwrite(fd, h, m.header_len, 4096, "header", NULL));
		close(fd);
		g_assert_false(read_back(&f, 4096, &err));
		g_test_message("%s", err->message);
		g_assert_nonnull(strstr(err->message, i ? "reserved field is not 0" : "RAM block 1: its name is not NUL-padded"));
		e[i ? 136 + 7 : 62] = 0;
	}
	mig_mapf_clear(&m);
	fixture_clear(&f);
}

/* A bitmap region: its digest, no page past the block's end and zero padding to the
 * region's 4 KiB end, each refused naming the block. */
static void test_bitmap_region(void)
{
	Fixture f;
	MigMapFile m;
	MigMapBlock *b;
	g_autofree guint8 *bm = NULL;
	gulong map[2];
	const gsize npages = 70;            /* 9 bytes, the last partial */
	struct { gsize off; guint8 mask; const char *why; } cases[] = {
		{ 0, 0x01, "damaged (checksum)" },
		{ 8, 0x80, "damaged (checksum)" },
		{ 9, 0x01, "padding is not zero" },
		{ 4095, 0x80, "padding is not zero" },
	};
	int fd;

	fixture_init(&f);
	g_free(write_file(&f, &m, MIG_MAPF_F_COMPLETE, 0));
	b = &m.blocks[0];
	b->bitmap_len = (npages + 7) / 8;
	bm = g_malloc0(MIG_MAPF_ALIGN);
	bm[0] = 0x81;
	bm[8] = 0x20;
	mig_mapf_sha256(bm, b->bitmap_len, b->bitmap_sha);
	fd = open(f.path, O_RDWR);
	g_assert_true(mig_mapf_pwrite(fd, bm, MIG_MAPF_ALIGN, b->bitmap_off, "bitmap", NULL));
	g_assert_true(mig_mapf_read_bitmap(fd, 0, b, npages, map, NULL));
	g_assert_cmphex(map[0], ==, 0x81);
	g_assert_cmphex(map[1], ==, 0x20);
	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autoptr(GError) err = NULL;
		guint8 x = bm[cases[i].off] ^ cases[i].mask;

		g_assert_true(mig_mapf_pwrite(fd, &x, 1, b->bitmap_off + cases[i].off, "byte", NULL));
		g_assert_false(mig_mapf_read_bitmap(fd, 0, b, npages, map, &err));
		g_test_message("%s", err->message);
		g_assert_nonnull(strstr(err->message, "page bitmap of RAM block 'pc.ram'"));
		g_assert_nonnull(strstr(err->message, cases[i].why));
		g_assert_true(mig_mapf_pwrite(fd, &bm[cases[i].off], 1, b->bitmap_off + cases[i].off, "byte", NULL));
	}
	/* a page past the end with a digest to match: only a made-up file has one */
	bm[8] |= 0x80;
	mig_mapf_sha256(bm, b->bitmap_len, b->bitmap_sha);
	g_assert_true(mig_mapf_pwrite(fd, bm, b->bitmap_len, b->bitmap_off, "bitmap", NULL));
	{
		g_autoptr(GError) err = NULL;

		g_assert_false(mig_mapf_read_bitmap(fd, 0, b, npages, map, &err));
		g_assert_nonnull(strstr(err->message, "marks pages past its end"));
	}
	close(fd);
	mig_mapf_clear(&m);
	fixture_clear(&f);
}

static void expect_refused(Fixture *f, const char *why)
{
	g_autoptr(GError) err = NULL;

	g_assert_false(read_back(f, 0, &err));
	g_test_message("%s", err->message);
	g_assert_nonnull(strstr(err->message, why));
}

static void test_refusals(void)
{
	Fixture f;
	MigMapFile m;
	g_autofree guint8 *h = NULL;

	fixture_init(&f);
	g_free(write_file(&f, &m, 0, 0));
	mig_mapf_clear(&m);
	expect_refused(&f, "marked incomplete");

	h = write_file(&f, &m, MIG_MAPF_F_COMPLETE, 0);
	g_assert_cmpint(truncate(f.path, (off_t)m.file_len - 1), ==, 0);
	expect_refused(&f, "truncated");
	g_assert_cmpint(truncate(f.path, 100), ==, 0);
	expect_refused(&f, "truncated");
	g_assert_cmpint(truncate(f.path, 0), ==, 0);
	expect_refused(&f, "too few");
	mig_mapf_clear(&m);

	g_free(write_file(&f, &m, MIG_MAPF_F_COMPLETE, 0));
	mig_mapf_clear(&m);
	f.blk[1].page_size = 4096;
	expect_refused(&f, "-byte pages in the file");
	f.blk[1].page_size = 2 << 20;
	f.blk[0].size = 32 << 20;
	expect_refused(&f, "bytes in the file");
	f.blk[0].size = 64 << 20;
	g_ptr_array_remove_index(f.ram, 1);
	expect_refused(&f, "holds 2 RAM blocks");
	g_ptr_array_add(f.ram, &f.blk[1]);
	fixture_clear(&f);
}

/* A header read back from a file of this layout, after mutate (if any) changed it. */
static void read_mutated(Fixture *f, void (*mutate)(MigMapFile *m), MigMapFile *got)
{
	MigMapFile m;
	g_autofree guint8 *h = NULL;
	int fd = open(f->path, O_RDWR | O_CREAT | O_TRUNC, 0600);

	g_assert_cmpint(fd, >=, 0);
	mig_mapf_layout(&m, f->ram, 0);
	mig_mapf_set_lengths(&m, 1000, NULL);
	m.flags = MIG_MAPF_F_COMPLETE;
	memset(m.session, 0x5a, sizeof(m.session));
	if (mutate)
		mutate(&m);
	h = mig_mapf_pack(&m);
	g_assert_true(mig_mapf_pwrite(fd, h, m.header_len, 0, "header", NULL));
	g_assert_cmpint(ftruncate(fd, (off_t)m.file_len), ==, 0);
	g_assert_true(mig_mapf_read_header(fd, 0, f->ram, f->devices, got, NULL));
	close(fd);
	mig_mapf_clear(&m);
}

static void other_session(MigMapFile *m)
{
	m->session[15] ^= 1;
}

static void other_bitmap(MigMapFile *m)
{
	m->blocks[1].bitmap_sha[0] ^= 1;
}

static void other_record(MigMapFile *m)
{
	m->state_sha[31] ^= 1;
}

static void longer_record(MigMapFile *m)
{
	mig_mapf_set_lengths(m, 5000, NULL);
}

/* A paused lazy restore takes a file again only if it is the same save: every field the
 * header holds compared, the first difference named. */
static void test_same_save(void)
{
	static const struct {
		void (*mutate)(MigMapFile *m);
		const char *why;
	} cases[] = {
		{ other_session, "session id" },
		{ other_bitmap, "bitmap of RAM block 'huge'" },
		{ other_record, "guest record differs" },
		{ longer_record, "length or layout" },
	};
	Fixture f;
	MigMapFile a, b;

	fixture_init(&f);
	read_mutated(&f, NULL, &a);
	read_mutated(&f, NULL, &b);
	g_assert_true(mig_mapf_same_save(&a, &b, NULL));
	mig_mapf_clear(&b);
	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autoptr(GError) err = NULL;

		read_mutated(&f, cases[i].mutate, &b);
		g_assert_false(mig_mapf_same_save(&a, &b, &err));
		g_assert_nonnull(err);
		g_assert_nonnull(strstr(err->message, cases[i].why));
		g_assert_nonnull(strstr(err->message, "not the save being restored"));
		mig_mapf_clear(&b);
	}
	mig_mapf_clear(&a);
	fixture_clear(&f);
}

static void test_bitmap(void)
{
	gulong map[2] = { 0, 0 }, back[2] = { 0, 0 };
	guint8 bytes[9];

	map[0] = 0x8001ul;
	map[1] = 1ul;   /* page 64 */
	mig_mapf_bitmap_pack(map, 70, bytes);
	g_assert_cmphex(bytes[0], ==, 0x01);
	g_assert_cmphex(bytes[1], ==, 0x80);
	g_assert_cmphex(bytes[8], ==, 0x01);
	g_assert_true(mig_mapf_bitmap_unpack(bytes, 70, back));
	g_assert_cmphex(back[0], ==, map[0]);
	g_assert_cmphex(back[1], ==, map[1]);
	bytes[8] |= 0x80;   /* page 71: past the last */
	g_assert_false(mig_mapf_bitmap_unpack(bytes, 70, back));
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/mapfile/round-trip", test_round_trip);
	g_test_add_func("/mapfile/every-byte-flipped", test_every_byte_flipped);
	g_test_add_func("/mapfile/padding-flipped", test_padding_flipped);
	g_test_add_func("/mapfile/bitmap-region", test_bitmap_region);
	g_test_add_func("/mapfile/refusals", test_refusals);
	g_test_add_func("/mapfile/bitmap", test_bitmap);
	g_test_add_func("/mapfile/same-save", test_same_save);
	return g_test_run();
}
