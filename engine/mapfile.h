/* The mapped-ram file format (capability mapped-ram, URI file:): a header with a block
 * table, then per RAM block a bitmap of the pages present and the pages at fixed
 * offsets, then the guest record. Byte by byte in docs/protocol.md ("Mapped-ram file").
 * Both halves use it: the source lays the file out and fills the header, the
 * destination checks every field against its own RAM before a byte goes into the guest. */
#pragma once
#include "engine/session_int.h"

#define MIG_MAPF_MAGIC "MIGMAPRM"
#define MIG_MAPF_VERSION 1u
#define MIG_MAPF_F_COMPLETE 1u          /* set only once everything else is on disk */
#define MIG_MAPF_HEAD_LEN 96u           /* fixed head before the block table */
#define MIG_MAPF_BLOCK_LEN 144u         /* one block table entry */
#define MIG_MAPF_DEV_LEN 112u           /* one device table entry */
#define MIG_MAPF_MAX_DEVS 64u
#define MIG_MAPF_MAX_DEV_STATE (1ull << 30) /* one device's state, at most */
#define MIG_MAPF_SHA_LEN 32u            /* SHA-256 */
#define MIG_MAPF_ALIGN 4096u            /* every region: O_DIRECT's and a 4K page's alignment */
#define MIG_MAPF_MAX_BLOCKS 1024u
#define MIG_MAPF_MAX_STATE (256u << 20) /* the guest record, at most */

typedef struct MigMapBlock {
	char name[64];
	guint64 size, page_size;
	guint64 bitmap_off, bitmap_len;    /* relative to the migration's start in the file */
	guint64 pages_off;
	guint8 bitmap_sha[MIG_MAPF_SHA_LEN];
} MigMapBlock;

typedef struct MigMapDev {
	char id[64];
	guint64 off, len;                  /* the device's state region */
	guint8 sha[MIG_MAPF_SHA_LEN];
} MigMapDev;

typedef struct MigMapFile {
	guint32 flags;
	guint32 nblocks;
	guint32 ndevs;
	MigMapDev *devs;                   /* ids set by the caller (registration order) */
	guint64 header_len;                /* the header region, MIG_MAPF_ALIGN-aligned */
	guint64 file_len;                  /* from the start to the end of the guest record */
	guint64 state_off, state_len;
	guint8 state_sha[MIG_MAPF_SHA_LEN];
	guint8 session[16];
	guint8 header_sha[MIG_MAPF_SHA_LEN]; /* the header's digest, as read (mig_mapf_read_header) */
	MigMapBlock *blocks;
} MigMapFile;

/* The layout for these RAM blocks (MigRamBlock*) and ndevs devices: the one layout a
 * file of them may have. Free with mig_mapf_clear. The guest record's and the devices'
 * offsets follow from their lengths: mig_mapf_set_lengths (all 0 until then). */
void mig_mapf_layout(MigMapFile *f, GPtrArray *ram, guint ndevs);
/* dev_lens: ndevs lengths, or NULL for none yet. */
void mig_mapf_set_lengths(MigMapFile *f, guint64 state_len, const guint64 *dev_lens);
void mig_mapf_clear(MigMapFile *f);
/* The header region's bytes (header_len of them, digest included). */
guint8 *mig_mapf_pack(const MigMapFile *f);
/* Reads and checks the header at offset start of fd against the session's RAM blocks,
 * its devices (MigDevice*: ids in order) and the file's size: magic, version, flags (COMPLETE set), digest, every block's
 * name, size, page size and offsets (they must be the layout mig_mapf_layout gives),
 * the guest record's bounds. A clear error names the first thing wrong. */
gboolean mig_mapf_read_header(int fd, guint64 start, GPtrArray *ram, GPtrArray *devices, MigMapFile *f,
			      GError **err);
/* Whether b, read from a file given to a paused lazy restore, is the save a was read
 * from: the same session id, lengths, and every digest (bitmaps, devices' state, guest
 * record, the header's own); both as mig_mapf_read_header returned them. FALSE with an
 * error naming the first difference: the restore takes pages from b at a's offsets,
 * which only the same save's pages fill. */
gboolean mig_mapf_same_save(const MigMapFile *a, const MigMapFile *b, GError **err);

/* Block b's bitmap (its region, after the header was read and checked) into map:
 * its digest, no page past npages, the region's padding zero. */
gboolean mig_mapf_read_bitmap(int fd, guint64 start, const MigMapBlock *b, gsize npages, gulong *map, GError **err);
/* The padding between the guest record and each device's state (what the digests leave
 * out): zero, as a writer leaves it. */
gboolean mig_mapf_check_tail_pads(int fd, guint64 start, const MigMapFile *f, GError **err);

/* A block's bitmap in the file's byte order (page i: byte i/8, bit i%8) from an
 * in-memory gulong bitmap, and back (checking that no bit past npages is set). */
void mig_mapf_bitmap_pack(const gulong *map, gsize npages, guint8 *out);
gboolean mig_mapf_bitmap_unpack(const guint8 *in, gsize npages, gulong *map);
void mig_mapf_sha256(const void *data, gsize len, guint8 out[MIG_MAPF_SHA_LEN]);

/* pread/pwrite of exactly len bytes, with a clear error naming what and where. */
gboolean mig_mapf_pread(int fd, void *buf, gsize len, guint64 off, const char *what, GError **err);
gboolean mig_mapf_pwrite(int fd, const void *buf, gsize len, guint64 off, const char *what, GError **err);
