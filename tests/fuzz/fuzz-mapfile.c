/* Fuzz target: the head of a mapped-ram file (engine/mapfile.c) as a destination reads
 * it before a byte goes into the guest: the header region and the page bitmap of a
 * 250-page (4 KiB) RAM block "pc.ram", no devices. Input: a mode byte, then the file's
 * first bytes (the header region; what is past 4096 of them goes into the bitmap's);
 * the rest of the file is zero, as long as the header's file_len says (capped). Mode
 * bit 0 recomputes the header's digest, bit 1 the bitmap's first, so mutations get
 * past the digests to the checks behind them. Every verdict is checked against an
 * independent one: a file is accepted exactly when its header region is the layout's
 * to the byte (but the session id, the digests and state_len) and its bitmap region
 * matches its digest, marks no page past the 250th and is zero past its 32 bytes.
 *
 * libFuzzer: -Dfuzzing=true. Otherwise fuzz-driver.c replays the corpus. */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "channels/wire.h"
#include "engine/mapfile.h"
#include "fuzz.h"

#define PAGES 250u
#define BITMAP_LEN ((PAGES + 7) / 8)
#define BODY (MIG_MAPF_HEAD_LEN + MIG_MAPF_BLOCK_LEN)
#define MAX_FILE (MIG_MAPF_MAX_STATE + (8u << 20))   /* sparse: costs nothing */

static MigRamBlock block = { .name = "pc.ram", .size = PAGES * 4096ull, .page_size = 4096, .fd = -1 };

static gboolean zero(const guint8 *p, gsize len)
{
	for (gsize i = 0; i < len; i++)
		if (p[i])
			return FALSE;
	return TRUE;
}

/* The verdict the format gives (docs/protocol.md, Mapped-ram file), from the bytes. */
static gboolean want_header(const guint8 *h, guint64 file_size)
{
	const guint8 *b = h + MIG_MAPF_HEAD_LEN;
	guint8 sha[MIG_MAPF_SHA_LEN];
	guint64 state_off = 4096 + 4096 + block.size, state_len = mig_get_be64(h + 40);
	char name[64] = "pc.ram";

	mig_mapf_sha256(h, BODY, sha);
	return !memcmp(h, "MIGMAPRM", 8) && mig_get_be32(h + 8) == 1 && mig_get_be32(h + 12) == 1 &&
	       mig_get_be32(h + 16) == 1 && mig_get_be32(h + 20) == 0 && !memcmp(sha, h + BODY, sizeof(sha)) &&
	       zero(h + BODY + MIG_MAPF_SHA_LEN, 4096 - BODY - MIG_MAPF_SHA_LEN) && state_len <= MIG_MAPF_MAX_STATE &&
	       mig_get_be64(h + 32) == state_off && mig_get_be64(h + 24) == state_off + state_len &&
	       file_size >= state_off + state_len && !memcmp(b, name, 64) && mig_get_be64(b + 64) == block.size &&
	       mig_get_be64(b + 72) == 4096 && mig_get_be64(b + 80) == 4096 && mig_get_be64(b + 88) == BITMAP_LEN &&
	       mig_get_be64(b + 96) == 8192 && zero(b + 136, 8);
}

static gboolean want_bitmap(const guint8 *h, const guint8 *bm)
{
	guint8 sha[MIG_MAPF_SHA_LEN];

	mig_mapf_sha256(bm, BITMAP_LEN, sha);
	return !memcmp(sha, h + MIG_MAPF_HEAD_LEN + 104, sizeof(sha)) && !(bm[BITMAP_LEN - 1] >> (PAGES % 8)) &&
	       zero(bm + BITMAP_LEN, 4096 - BITMAP_LEN);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static guint8 file[8192];
	GPtrArray *ram = g_ptr_array_new(), *devices = g_ptr_array_new();
	gulong map[(PAGES + 63) / 64];
	MigMapFile f;
	GError *err = NULL;
	guint64 file_size;
	gsize len;
	gboolean ok;
	guint8 mode;
	int fd;

	if (!size)
		return 0;
	mode = data[0];
	len = MIN(size - 1, sizeof(file));
	memset(file, 0, sizeof(file));
	memcpy(file, data + 1, len);
	/* a digest made here is in the file, however short the input */
	if (mode & 2) {
		mig_mapf_sha256(file + 4096, BITMAP_LEN, file + MIG_MAPF_HEAD_LEN + 104);
		len = MAX(len, (gsize)MIG_MAPF_HEAD_LEN + 136);
	}
	if (mode & 1) {
		mig_mapf_sha256(file, BODY, file + BODY);
		len = MAX(len, (gsize)BODY + MIG_MAPF_SHA_LEN);
	}
	file_size = len >= 32 ? MAX(len, MIN(mig_get_be64(file + 24), (guint64)MAX_FILE)) : len;
	fd = memfd_create("fuzz-mapfile", MFD_CLOEXEC);
	CHECK(fd >= 0);
	CHECK(pwrite(fd, file, len, 0) == (ssize_t)len);
	CHECK(ftruncate(fd, (off_t)file_size) == 0);
	g_ptr_array_add(ram, &block);

	ok = mig_mapf_read_header(fd, 0, ram, devices, &f, &err);
	CHECK(ok == want_header(file, file_size));
	CHECK(ok ? !err : err && strstr(err->message, "mapped-ram file refused: "));
	g_clear_error(&err);
	if (ok) {
		ok = mig_mapf_read_bitmap(fd, 0, &f.blocks[0], PAGES, map, &err);
		CHECK(ok == want_bitmap(file, file + 4096));
		CHECK(ok ? !err : err && strstr(err->message, "mapped-ram file refused: "));
		for (guint i = 0; ok && i < PAGES; i++)
			CHECK(!!(map[i / 64] & (1ul << (i % 64))) == !!(file[4096 + i / 8] & (1u << (i % 8))));
		g_clear_error(&err);
		mig_mapf_clear(&f);
	}
	close(fd);
	g_ptr_array_free(ram, TRUE);
	g_ptr_array_free(devices, TRUE);
	return 0;
}

/* A file of the layout, both digests made by the harness (mode 3): seed 0 as is; the
 * driver mutates the rest. Its bitmap bytes lie past FUZZ_INPUT_MAX, so they are zero
 * here: the corpus file (corpus/mapfile/) holds a bitmap with pages in it. */
size_t fuzz_seed(uint8_t buf[FUZZ_INPUT_MAX], unsigned which)
{
	MigMapFile m;
	GPtrArray *ram = g_ptr_array_new();
	guint8 *h;
	gsize len = MIN((gsize)BODY + MIG_MAPF_SHA_LEN + 1 + which % 64, (gsize)FUZZ_INPUT_MAX);

	g_ptr_array_add(ram, &block);
	mig_mapf_layout(&m, ram, 0);
	mig_mapf_set_lengths(&m, 64000 + which, NULL);
	m.flags = MIG_MAPF_F_COMPLETE;
	h = mig_mapf_pack(&m);
	buf[0] = 3;
	memcpy(buf + 1, h, len - 1);
	g_free(h);
	mig_mapf_clear(&m);
	g_ptr_array_free(ram, TRUE);
	return len;
}

const char fuzz_name[] = "fuzz-mapfile";
