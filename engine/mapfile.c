/* The mapped-ram file format: layout, header packing and the destination's checks.
 * Integers are big-endian like the wire's; every region starts MIG_MAPF_ALIGN-aligned
 * and a block's pages at a multiple of its page size, so O_DIRECT can move them and a
 * huge page is one extent. */
#include "engine/mapfile.h"
#include "engine/device_int.h"
#include "engine/bitmap.h"
#include "channels/wire.h"
#include <errno.h>
#include <string.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

static guint64 align_up(guint64 v, guint64 a)
{
	return (v + a - 1) / a * a;
}

void mig_mapf_layout(MigMapFile *f, GPtrArray *ram, guint ndevs)
{
	guint64 off;

	memset(f, 0, sizeof(*f));
	f->nblocks = ram->len;
	f->ndevs = ndevs;
	f->blocks = g_new0(MigMapBlock, MAX(ram->len, 1u));
	f->devs = g_new0(MigMapDev, MAX(ndevs, 1u));
	f->header_len = align_up(MIG_MAPF_HEAD_LEN + (guint64)ram->len * MIG_MAPF_BLOCK_LEN +
				 (guint64)ndevs * MIG_MAPF_DEV_LEN + MIG_MAPF_SHA_LEN, MIG_MAPF_ALIGN);
	off = f->header_len;
	for (guint i = 0; i < ram->len; i++) {
		const MigRamBlock *rb = g_ptr_array_index(ram, i);
		MigMapBlock *b = &f->blocks[i];

		g_strlcpy(b->name, rb->name, sizeof(b->name));
		b->size = rb->size;
		b->page_size = rb->page_size;
		b->bitmap_off = off;
		b->bitmap_len = (mig_ram_block_pages(rb) + 7) / 8;
		off = align_up(off + b->bitmap_len, MAX(MIG_MAPF_ALIGN, b->page_size));
		b->pages_off = off;
		off += b->size;
	}
	f->state_off = align_up(off, MIG_MAPF_ALIGN);
	mig_mapf_set_lengths(f, 0, NULL);
}

void mig_mapf_set_lengths(MigMapFile *f, guint64 state_len, const guint64 *dev_lens)
{
	guint64 off;

	f->state_len = state_len;
	off = f->state_off + state_len;
	for (guint i = 0; i < f->ndevs; i++) {
		f->devs[i].off = align_up(off, MIG_MAPF_ALIGN);
		f->devs[i].len = dev_lens ? dev_lens[i] : 0;
		off = f->devs[i].off + f->devs[i].len;
	}
	f->file_len = off;
}

void mig_mapf_clear(MigMapFile *f)
{
	g_clear_pointer(&f->blocks, g_free);
	g_clear_pointer(&f->devs, g_free);
}

/* OpenSSL's, not GChecksum's: a lazy restore checks the guest record's digest before
 * the guest runs, and for migd's record (4 bytes per 4 KiB page) GChecksum took about
 * 10 ms per GiB of guest, OpenSSL's vectorised code about a quarter of that. */
void mig_mapf_sha256(const void *data, gsize len, guint8 out[MIG_MAPF_SHA_LEN])
{
	unsigned int n = MIG_MAPF_SHA_LEN;

	if (!EVP_Digest(data, len, out, &n, EVP_sha256(), NULL))
		g_error("SHA-256: OpenSSL's EVP_Digest failed");
}

guint8 *mig_mapf_pack(const MigMapFile *f)
{
	guint8 *h = g_malloc0(f->header_len);
	guint8 *p = h + MIG_MAPF_HEAD_LEN;
	gsize body = MIG_MAPF_HEAD_LEN + (gsize)f->nblocks * MIG_MAPF_BLOCK_LEN + (gsize)f->ndevs * MIG_MAPF_DEV_LEN;

	memcpy(h, MIG_MAPF_MAGIC, 8);
	mig_put_be32(h + 8, MIG_MAPF_VERSION);
	mig_put_be32(h + 12, f->flags);
	mig_put_be32(h + 16, f->nblocks);
	mig_put_be32(h + 20, f->ndevs);
	mig_put_be64(h + 24, f->file_len);
	mig_put_be64(h + 32, f->state_off);
	mig_put_be64(h + 40, f->state_len);
	memcpy(h + 48, f->state_sha, MIG_MAPF_SHA_LEN);
	memcpy(h + 80, f->session, 16);
	for (guint i = 0; i < f->nblocks; i++, p += MIG_MAPF_BLOCK_LEN) {
		const MigMapBlock *b = &f->blocks[i];

		memcpy(p, b->name, strnlen(b->name, sizeof(b->name)));
		mig_put_be64(p + 64, b->size);
		mig_put_be64(p + 72, b->page_size);
		mig_put_be64(p + 80, b->bitmap_off);
		mig_put_be64(p + 88, b->bitmap_len);
		mig_put_be64(p + 96, b->pages_off);
		memcpy(p + 104, b->bitmap_sha, MIG_MAPF_SHA_LEN);
	}
	for (guint i = 0; i < f->ndevs; i++, p += MIG_MAPF_DEV_LEN) {
		const MigMapDev *d = &f->devs[i];

		memcpy(p, d->id, strnlen(d->id, sizeof(d->id)));
		mig_put_be64(p + 64, d->off);
		mig_put_be64(p + 72, d->len);
		memcpy(p + 80, d->sha, MIG_MAPF_SHA_LEN);
	}
	mig_mapf_sha256(h, body, h + body);
	return h;
}

gboolean mig_mapf_pread(int fd, void *buf, gsize len, guint64 off, const char *what, GError **err)
{
	gsize done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (guint8 *)buf + done, len - done, (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			g_set_error(err, MIG_ERROR, n < 0 ? errno : EIO, "reading the %s at file offset %" G_GUINT64_FORMAT ": %s",
				    what, off + done, n < 0 ? g_strerror(errno) : "the file ends there (truncated)");
			return FALSE;
		}
		done += (gsize)n;
	}
	return TRUE;
}

gboolean mig_mapf_pwrite(int fd, const void *buf, gsize len, guint64 off, const char *what, GError **err)
{
	gsize done = 0;

	while (done < len) {
		ssize_t n = pwrite(fd, (const guint8 *)buf + done, len - done, (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = n < 0 ? errno : ENOSPC;

			g_set_error(err, MIG_ERROR, e, "writing the %s at file offset %" G_GUINT64_FORMAT ": %s", what,
				    off + done, g_strerror(e));
			return FALSE;
		}
		done += (gsize)n;
	}
	return TRUE;
}

void mig_mapf_bitmap_pack(const gulong *map, gsize npages, guint8 *out)
{
	memset(out, 0, (npages + 7) / 8);
	for (gsize i = mig_bitmap_next(map, npages, 0); i < npages; i = mig_bitmap_next(map, npages, i + 1))
		out[i / 8] |= (guint8)(1u << (i % 8));
}

gboolean mig_mapf_bitmap_unpack(const guint8 *in, gsize npages, gulong *map)
{
	gsize len = (npages + 7) / 8;

	if (npages % 8 && (in[len - 1] >> (npages % 8)))
		return FALSE;
	/* a word at a time: a lazy restore does this before the guest runs */
	mig_bitmap_from_bytes(map, npages, in, FALSE);
	return TRUE;
}

static gboolean bad(GError **err, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static gboolean bad(GError **err, const char *fmt, ...)
{
	va_list ap;
	g_autofree char *msg = NULL;

	va_start(ap, fmt);
	msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	g_set_error(err, MIG_ERROR, EINVAL, "mapped-ram file refused: %s", msg);
	return FALSE;
}

static gboolean all_zero(const guint8 *p, gsize len)
{
	return !len || (!p[0] && !memcmp(p, p + 1, len - 1));
}

/* A name field of 64 bytes: a string and NUL padding to its end. */
static gboolean name_ok(const char *field)
{
	gsize n = strnlen(field, 64);

	return n < 64 && all_zero((const guint8 *)field + n, 64 - n);
}

/* Bytes [off, end) of fd, less than MIG_MAPF_ALIGN of them, the padding after what:
 * no digest covers them, a writer leaves them zero. */
static gboolean check_pad(int fd, guint64 off, guint64 end, const char *what, GError **err)
{
	g_autofree guint8 *buf = NULL;

	if (end <= off)
		return TRUE;
	g_assert(end - off < MIG_MAPF_ALIGN);
	buf = g_malloc(end - off);
	if (!mig_mapf_pread(fd, buf, end - off, off, what, err))
		return FALSE;
	if (!all_zero(buf, end - off))
		return bad(err, "the padding after the %s is not zero (damaged)", what);
	return TRUE;
}

/* A block table entry against the block this side has and where the layout puts it. */
static gboolean check_block(const guint8 *p, guint i, const MigMapBlock *want, MigMapBlock *got, GError **err)
{
	memcpy(got->name, p, 64);
	if (!name_ok(got->name))
		return bad(err, "RAM block %u: its name is not NUL-padded (damaged)", i);
	if (strcmp(got->name, want->name))
		return bad(err, "RAM block %u is '%.63s' in the file, '%s' here", i, got->name, want->name);
	if (!all_zero(p + 136, 8))
		return bad(err, "RAM block '%s': its reserved field is not 0", want->name);
	got->size = mig_get_be64(p + 64);
	got->page_size = mig_get_be64(p + 72);
	got->bitmap_off = mig_get_be64(p + 80);
	got->bitmap_len = mig_get_be64(p + 88);
	got->pages_off = mig_get_be64(p + 96);
	memcpy(got->bitmap_sha, p + 104, MIG_MAPF_SHA_LEN);
	if (got->size != want->size)
		return bad(err, "RAM block '%s' has %" G_GUINT64_FORMAT " bytes in the file, %" G_GUINT64_FORMAT " here",
			   want->name, got->size, want->size);
	if (got->page_size != want->page_size)
		return bad(err, "RAM block '%s' has %" G_GUINT64_FORMAT "-byte pages in the file, %" G_GUINT64_FORMAT " here",
			   want->name, got->page_size, want->page_size);
	if (got->bitmap_off != want->bitmap_off || got->bitmap_len != want->bitmap_len || got->pages_off != want->pages_off)
		return bad(err, "RAM block '%s': bitmap or page offsets are not the format's layout", want->name);
	return TRUE;
}

gboolean mig_mapf_read_header(int fd, guint64 start, GPtrArray *ram, GPtrArray *devices, MigMapFile *f,
			      GError **err)
{
	g_autofree guint8 *h = g_malloc0(MIG_MAPF_ALIGN);
	MigMapFile want;
	guint8 sha[MIG_MAPF_SHA_LEN];
	guint32 version, nblocks, ndevs;
	gsize body;
	struct stat st;
	gboolean ok = FALSE;

	memset(f, 0, sizeof(*f));
	if (fstat(fd, &st) < 0)
		return bad(err, "cannot stat it: %s", g_strerror(errno));
	if ((guint64)st.st_size < start + MIG_MAPF_HEAD_LEN)
		return bad(err, "it has %lld bytes, too few for a header at offset %" G_GUINT64_FORMAT " (truncated or empty)",
			   (long long)st.st_size, start);
	if (!mig_mapf_pread(fd, h, MIG_MAPF_HEAD_LEN, start, "header", err))
		return FALSE;
	if (memcmp(h, MIG_MAPF_MAGIC, 8))
		return bad(err, "no mapped-ram header at offset %" G_GUINT64_FORMAT " (bad magic)", start);
	version = mig_get_be32(h + 8);
	if (version != MIG_MAPF_VERSION)
		return bad(err, "format version %u, this mig reads version %u", version, MIG_MAPF_VERSION);
	f->flags = mig_get_be32(h + 12);
	nblocks = mig_get_be32(h + 16);
	if (nblocks != ram->len)
		return bad(err, "it holds %u RAM blocks, this guest has %u", nblocks, ram->len);
	if (nblocks > MIG_MAPF_MAX_BLOCKS)
		return bad(err, "%u RAM blocks, more than the %u the format allows", nblocks, MIG_MAPF_MAX_BLOCKS);
	ndevs = mig_get_be32(h + 20);
	if (ndevs != devices->len)
		return bad(err, "it holds the state of %u devices, this VM has %u", ndevs, devices->len);
	if (ndevs > MIG_MAPF_MAX_DEVS)
		return bad(err, "%u devices, more than the %u the format allows", ndevs, MIG_MAPF_MAX_DEVS);
	body = MIG_MAPF_HEAD_LEN + (gsize)nblocks * MIG_MAPF_BLOCK_LEN + (gsize)ndevs * MIG_MAPF_DEV_LEN;
	h = g_realloc(h, body + MIG_MAPF_SHA_LEN);
	if ((guint64)st.st_size < start + body + MIG_MAPF_SHA_LEN)
		return bad(err, "the file ends inside its header (truncated)");
	if (!mig_mapf_pread(fd, h + MIG_MAPF_HEAD_LEN, body + MIG_MAPF_SHA_LEN - MIG_MAPF_HEAD_LEN,
			    start + MIG_MAPF_HEAD_LEN, "block table", err))
		return FALSE;
	mig_mapf_sha256(h, body, sha);
	if (memcmp(sha, h + body, MIG_MAPF_SHA_LEN))
		return bad(err, "the header's checksum does not match (damaged header)");
	memcpy(f->header_sha, sha, MIG_MAPF_SHA_LEN);
	/* the rest of the header region is not in the digest: a writer leaves it zero */
	if ((guint64)st.st_size < start + align_up(body + MIG_MAPF_SHA_LEN, MIG_MAPF_ALIGN))
		return bad(err, "the file ends inside its header (truncated)");
	if (!check_pad(fd, start + body + MIG_MAPF_SHA_LEN, start + align_up(body + MIG_MAPF_SHA_LEN, MIG_MAPF_ALIGN), "header",
		       err))
		return FALSE;
	if (!(f->flags & MIG_MAPF_F_COMPLETE))
		return bad(err, "it is marked incomplete: the save that wrote it did not finish");
	if (f->flags & ~MIG_MAPF_F_COMPLETE)
		return bad(err, "unknown flags 0x%x", f->flags & ~MIG_MAPF_F_COMPLETE);
	f->nblocks = nblocks;
	f->file_len = mig_get_be64(h + 24);
	f->state_off = mig_get_be64(h + 32);
	f->state_len = mig_get_be64(h + 40);
	memcpy(f->state_sha, h + 48, MIG_MAPF_SHA_LEN);
	memcpy(f->session, h + 80, 16);
	if (f->state_len > MIG_MAPF_MAX_STATE)
		return bad(err, "a guest record of %" G_GUINT64_FORMAT " bytes, more than %u", f->state_len, MIG_MAPF_MAX_STATE);
	mig_mapf_layout(&want, ram, ndevs);
	f->header_len = want.header_len;
	f->ndevs = ndevs;
	f->blocks = g_new0(MigMapBlock, MAX(nblocks, 1u));
	f->devs = g_new0(MigMapDev, MAX(ndevs, 1u));
	for (guint i = 0; i < nblocks; i++)
		if (!check_block(h + MIG_MAPF_HEAD_LEN + (gsize)i * MIG_MAPF_BLOCK_LEN, i, &want.blocks[i], &f->blocks[i], err))
			goto out;
	{
		g_autofree guint64 *lens = g_new0(guint64, MAX(ndevs, 1u));

		for (guint i = 0; i < ndevs; i++) {
			const guint8 *p = h + MIG_MAPF_HEAD_LEN + (gsize)nblocks * MIG_MAPF_BLOCK_LEN + (gsize)i * MIG_MAPF_DEV_LEN;
			const MigDevice *dev = g_ptr_array_index(devices, i);
			MigMapDev *d = &f->devs[i];

			memcpy(d->id, p, 64);
			if (!name_ok(d->id)) {
				bad(err, "device %u: its id is not NUL-padded (damaged)", i);
				goto out;
			}
			if (strcmp(d->id, dev->id)) {
				bad(err, "device %u is '%.63s' in the file, '%s' here", i, d->id, dev->id);
				goto out;
			}
			d->off = mig_get_be64(p + 64);
			d->len = lens[i] = mig_get_be64(p + 72);
			memcpy(d->sha, p + 80, MIG_MAPF_SHA_LEN);
			if (d->len > MIG_MAPF_MAX_DEV_STATE) {
				bad(err, "device '%s' has %" G_GUINT64_FORMAT " bytes of state, more than %llu", d->id, d->len,
				    (unsigned long long)MIG_MAPF_MAX_DEV_STATE);
				goto out;
			}
		}
		mig_mapf_set_lengths(&want, f->state_len, lens);
		for (guint i = 0; i < ndevs; i++) {
			if (f->devs[i].off != want.devs[i].off) {
				bad(err, "device '%s': its state's offset is not the format's layout", f->devs[i].id);
				goto out;
			}
		}
	}
	if (f->state_off != want.state_off || f->file_len != want.file_len) {
		bad(err, "the guest record's offset or the file length is not the format's layout");
		goto out;
	}
	if ((guint64)st.st_size < start + f->file_len) {
		bad(err, "it has %lld bytes, the header says %" G_GUINT64_FORMAT " from offset %" G_GUINT64_FORMAT " (truncated)",
		    (long long)st.st_size, f->file_len, start);
		goto out;
	}
	ok = TRUE;
out:
	mig_mapf_clear(&want);
	if (!ok)
		mig_mapf_clear(f);
	return ok;
}

gboolean mig_mapf_same_save(const MigMapFile *a, const MigMapFile *b, GError **err)
{
#define differs(...) (g_set_error(err, MIG_ERROR, EINVAL, "not the save being restored: " __VA_ARGS__), FALSE)
	if (memcmp(a->session, b->session, sizeof(a->session)))
		return differs("another migration's (its session id differs)");
	if (a->nblocks != b->nblocks || a->ndevs != b->ndevs || a->file_len != b->file_len || a->state_len != b->state_len)
		return differs("the same migration's, but its length or layout differs (%" G_GUINT64_FORMAT " bytes, want %"
			       G_GUINT64_FORMAT ")", b->file_len, a->file_len);
	for (guint i = 0; i < a->nblocks; i++)
		if (memcmp(a->blocks[i].bitmap_sha, b->blocks[i].bitmap_sha, MIG_MAPF_SHA_LEN))
			return differs("the bitmap of RAM block '%s' differs (another save of the same migration)",
				       a->blocks[i].name);
	for (guint i = 0; i < a->ndevs; i++)
		if (memcmp(a->devs[i].sha, b->devs[i].sha, MIG_MAPF_SHA_LEN))
			return differs("the state of device '%s' differs", a->devs[i].id);
	if (memcmp(a->state_sha, b->state_sha, MIG_MAPF_SHA_LEN))
		return differs("its guest record differs");
	/* the digest covers every field: one differing that none above names */
	if (memcmp(a->header_sha, b->header_sha, MIG_MAPF_SHA_LEN))
		return differs("its header differs");
	return TRUE;
#undef differs
}

gboolean mig_mapf_read_bitmap(int fd, guint64 start, const MigMapBlock *b, gsize npages, gulong *map, GError **err)
{
	gsize len = align_up(b->bitmap_len, MIG_MAPF_ALIGN);   /* the region, its padding too */
	g_autofree guint8 *buf = g_malloc0(MAX(len, 1u));
	guint8 sha[MIG_MAPF_SHA_LEN];

	if (!mig_mapf_pread(fd, buf, len, start + b->bitmap_off, "page bitmap", err))
		return FALSE;
	mig_mapf_sha256(buf, b->bitmap_len, sha);
	if (memcmp(sha, b->bitmap_sha, sizeof(sha)))
		return bad(err, "the page bitmap of RAM block '%s' is damaged (checksum)", b->name);
	if (!mig_mapf_bitmap_unpack(buf, npages, map))
		return bad(err, "the page bitmap of RAM block '%s' marks pages past its end", b->name);
	if (!all_zero(buf + b->bitmap_len, len - b->bitmap_len))
		return bad(err, "the page bitmap of RAM block '%s' is damaged (its padding is not zero)", b->name);
	return TRUE;
}

gboolean mig_mapf_check_tail_pads(int fd, guint64 start, const MigMapFile *f, GError **err)
{
	guint64 end = f->state_off + f->state_len;

	for (guint i = 0; i < f->ndevs; i++) {
		g_autofree char *what = i ? g_strdup_printf("state of device '%s'", f->devs[i - 1].id) : g_strdup("guest record");

		if (!check_pad(fd, start + end, start + f->devs[i].off, what, err))
			return FALSE;
		end = f->devs[i].off + f->devs[i].len;
	}
	return TRUE;
}
