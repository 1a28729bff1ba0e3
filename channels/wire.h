/* The mig wire in one place: every frame type of every channel, each payload's byte
 * layout, and the one way to encode and decode them. docs/protocol.md says the same in
 * prose; docs/design.md has the checklist for adding a frame type.
 *
 * Every integer is big-endian; nothing is padded or aligned. Fields go through the
 * byte-at-a-time helpers below (compilers fold them into one load/store plus bswap),
 * never through a struct cast over a buffer, so host endianness and alignment do not
 * matter. A receiver reads a variable-length payload through a MigWireRd, which checks
 * each field against what is left before reading it: the peer is trusted with nothing.
 *
 * Layouts are written "offset:size field"; [n] is a repeat, "..." runs to the end of
 * the frame. */
#pragma once
#include <errno.h>
#include <stddef.h>
#include <stdint.h>

/* ---- field helpers ---- */

static inline void mig_put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void mig_put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline void mig_put_be64(uint8_t *p, uint64_t v)
{
	mig_put_be32(p, (uint32_t)(v >> 32));
	mig_put_be32(p + 4, (uint32_t)v);
}

static inline uint16_t mig_get_be16(const uint8_t *p)
{
	return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static inline uint32_t mig_get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t mig_get_be64(const uint8_t *p)
{
	return (uint64_t)mig_get_be32(p) << 32 | mig_get_be32(p + 4);
}

/* n be64 values were read off the wire into v as raw bytes: decode them in place (a
 * page list goes from the socket to its array without a second buffer). */
static inline void mig_be64_decode_array(uint64_t *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		v[i] = mig_get_be64((const uint8_t *)&v[i]);
}

/* ---- bounded reader ---- */

/* A cursor over a received payload. Every read checks the bytes left first and fails
 * with -EPROTO, consuming nothing, when the field would run past the end. */
typedef struct MigWireRd {
	const uint8_t *p;
	size_t left;
} MigWireRd;

static inline MigWireRd mig_wire_rd(const void *buf, size_t len)
{
	return (MigWireRd){ .p = (const uint8_t *)buf, .left = len };
}

/* n bytes in place: *out points into the payload. */
static inline int mig_rd_bytes(MigWireRd *r, size_t n, const uint8_t **out)
{
	if (n > r->left)
		return -EPROTO;
	*out = r->p;
	r->p += n;
	r->left -= n;
	return 0;
}

static inline int mig_rd_u8(MigWireRd *r, uint8_t *v)
{
	const uint8_t *p;
	int rc = mig_rd_bytes(r, 1, &p);

	if (rc == 0)
		*v = p[0];
	return rc;
}

static inline int mig_rd_be32(MigWireRd *r, uint32_t *v)
{
	const uint8_t *p;
	int rc = mig_rd_bytes(r, 4, &p);

	if (rc == 0)
		*v = mig_get_be32(p);
	return rc;
}

static inline int mig_rd_be64(MigWireRd *r, uint64_t *v)
{
	const uint8_t *p;
	int rc = mig_rd_bytes(r, 8, &p);

	if (rc == 0)
		*v = mig_get_be64(p);
	return rc;
}

/* A u8 length, then that many bytes (SETUP's block names and device ids, STATE's id). */
static inline int mig_rd_str8(MigWireRd *r, const uint8_t **s, uint8_t *len)
{
	MigWireRd save = *r;

	if (mig_rd_u8(r, len) < 0 || mig_rd_bytes(r, *len, s) < 0) {
		*r = save;
		return -EPROTO;
	}
	return 0;
}

/* ---- hello and reply: the first bytes of every connection ---- */

/* hello, connecting side -> listening side, MIG_HELLO_LEN bytes:
 *   0:4 magic "MIGC"   4:2 version   6:2 type (MigChanType)   8:4 index
 *   12:4 flags (MIG_HELLO_F_*)   16:16 session id
 * reply, listening side -> connecting side, MIG_HELLO_REPLY_HDR_LEN + msglen bytes:
 *   0:4 magic "MIGA"   4:4 status (MigHelloStatus)   8:2 msglen (<= MIG_HELLO_MSG_MAX)
 *   10:msglen UTF-8 message, no NUL */
#define MIG_HELLO_MAGIC   0x4d494743u  /* "MIGC" */
#define MIG_HELLO_REPLY   0x4d494741u  /* "MIGA" */
#define MIG_PROTO_VERSION 2u          /* 2: the switchover waits for GO (docs/design.md) */
#define MIG_HELLO_LEN     32u
#define MIG_SESSION_LEN   16u
#define MIG_HELLO_REPLY_HDR_LEN 10u
#define MIG_HELLO_MSG_MAX 512u       /* longer reply messages are a protocol error */

typedef enum MigChanType {
	MIG_CHAN_MAIN = 1,      /* index 0 */
	MIG_CHAN_MULTIFD = 2,   /* index 0..multifd-channels-1 */
	MIG_CHAN_PREEMPT = 3,   /* index 0..x-preempt-channels-1 */
} MigChanType;

/* Status codes carried in the reply (0 = accepted). */
typedef enum MigHelloStatus {
	MIG_HELLO_OK = 0,
	MIG_HELLO_BAD_MAGIC = 1,
	MIG_HELLO_BAD_VERSION = 2,
	MIG_HELLO_BAD_TYPE = 3,
	MIG_HELLO_FOREIGN_SESSION = 4,
	MIG_HELLO_DUPLICATE = 5,
	MIG_HELLO_BAD_INDEX = 6,
	MIG_HELLO_NOT_EXPECTED = 7,   /* no incoming migration, or it already started */
	MIG_HELLO_BUSY = 8,
	MIG_HELLO_NO_RECOVERY = 9,    /* a RESUME hello, but no paused postcopy of that session */
	MIG_HELLO_NOT_AUTHORIZED = 10, /* TLS: the client's identity is refused by tls-authz, or a
				      * plain-text channel reached a destination that requires TLS */
} MigHelloStatus;

/* Hello flags. RESUME: this channel re-opens a paused postcopy of the session it names
 * (docs/protocol.md, Postcopy recovery). */
#define MIG_HELLO_F_RESUME (1u << 0)

/* ---- frame header: everything after an accepted hello, both directions ---- */

/* 0:4 payload length (not counting this header)   4:2 type   6:2 flags (0 today) */
#define MIG_FRAME_HDR_LEN 8u
/* Frames other than page data are never larger; a PAGES frame may carry one whole huge
 * page instead, so its receiver allows 16 + its largest page size. */
#define MIG_FRAME_MAX_LEN (64u << 20)
#define MIG_STATE_PART_MAX (1u << 20)   /* bytes of one STATE_PART */

typedef struct MigFrameHdr {
	uint32_t len;
	uint16_t type;
	uint16_t flags;
} MigFrameHdr;

static inline void mig_frame_hdr_pack(const MigFrameHdr *h, uint8_t out[MIG_FRAME_HDR_LEN])
{
	mig_put_be32(out, h->len);
	mig_put_be16(out + 4, h->type);
	mig_put_be16(out + 6, h->flags);
}

static inline void mig_frame_hdr_unpack(const uint8_t in[MIG_FRAME_HDR_LEN], MigFrameHdr *h)
{
	h->len = mig_get_be32(in);
	h->type = mig_get_be16(in + 4);
	h->flags = mig_get_be16(in + 6);
}

/* ---- frame types ---- */

enum {
	/* main channel, source -> destination */
	MIG_F_SETUP = 1,        /* 0:4 nblocks, [nblocks] { u8 len, name, be64 size, be64 page size },
				 * be32 multifd channels (0: off), be32 preempt channels (0: off),
				 * be32 ndevices, [ndevices] { u8 len, id } */
	MIG_F_PAGES = 2,        /* pages head (count 1..MIG_PAGES_MAX), [count] be64 byte offset,
				 * then count pages of the block's page size, in that order */
	MIG_F_ZEROS = 3,        /* pages head, [count] be64 byte offset: these pages are zero */
	MIG_F_PASS = 4,         /* 0:8 pass number: everything of that pass was sent */
	MIG_F_STATE = 5,        /* u8 len, id ("guest"), state bytes ... */
	MIG_F_COMPLETE = 6,     /* empty: the stream is over; check it, answer RP_READY, wait for GO */
	MIG_F_ABORT = 7,        /* UTF-8 reason ...: the source gives up */
	MIG_F_PC_LISTEN = 8,    /* empty: postcopy begins, register RAM with userfaultfd */
	MIG_F_PC_DISCARD = 9,   /* pages head (count = n ranges), [n] { be64 first page,
				 * be64 page count }: drop these, the guest will fault on them */
	MIG_F_PC_RUN = 10,      /* empty: postcopy's COMPLETE: answer RP_READY, wait for GO */
	MIG_F_PC_END = 11,      /* empty: every page was sent; answer RP_DONE once placed */
	MIG_F_PC_RECOVER = 12,  /* empty, first frame of a resumed main channel: send your
				 * received bitmaps (RP_RECV_BITMAP..., RP_RECV_END) */
	MIG_F_PC_RESUME = 13,   /* empty, right after PC_RECOVER: answer RP_RESUME_ACK once
				 * every other channel is back */
	MIG_F_NOP = 14,         /* empty: the source's heartbeat, every quarter of x-channel-timeout
				 * (at least every second) from the hello until COMPLETE / PC_RUN, and in postcopy from
				 * RP_RUNNING / RP_RESUME_ACK until PC_END; ignored */
	MIG_F_GO = 15,          /* empty: start the guest now (only after RP_READY); answer
				 * RP_RUNNING. The source never runs its guest again once sent */
	MIG_F_STATE_PART = 16,  /* state bytes ...: part of the guest's state, sent live
				 * (MigVmLiveOps); STATE follows with the rest */
	MIG_F_DEV_DATA = 0x20,  /* dev head, 1..MIG_DEV_CHUNK state bytes (device lane off) */
	MIG_F_DEV_END = 0x21,   /* 0:4 ndevices, [ndevices] { be64 chunks, be64 bytes } */

	/* multifd channels, source -> destination */
	MIG_F_MF_PAGES = 0x10,  /* MigMfHdr head, [nnormal + nzero] be64 byte offset (normal first),
				 * then nnormal pages; 1 <= nnormal + nzero <= MIG_MF_MAX_PAGES */
	MIG_F_MF_SYNC = 0x11,   /* 0:8 pass: this channel sent everything of that pass */
	MIG_F_MF_DEV = 0x13,    /* dev head, 1..MIG_DEV_CHUNK state bytes (device lane on) */

	/* main or multifd channel in postcopy with x-break-huge, source -> destination */
	MIG_F_CHUNK = 0x12,     /* chunk head, data ...: part of one huge page, in order */

	/* preempt channels carry MIG_F_PAGES and MIG_F_ZEROS of one page each, nothing else */

	/* return path: the main channel, destination -> source */
	MIG_F_RP_RUNNING = 0x41, /* "running": the guest runs on the destination */
	MIG_F_RP_ERROR = 0x42,   /* UTF-8 reason ...: the destination failed */
	MIG_F_RP_REQ_PAGE = 0x43, /* page request head, nothing more: send this page now */
	MIG_F_RP_DONE = 0x44,    /* "done": postcopy finished, every page is present */
	MIG_F_RP_DEVICES = 0x48, /* 0:4 ndevices, [ndevices] be64 load µs: devices loaded */
	MIG_F_RP_PASS = 0x49,    /* 0:8 pass number: all of that pass is in place here */
	MIG_F_RP_RECV_BITMAP = 0x4a, /* 0:4 block index, u8 len, name, be64 pages, then
				      * ceil(pages/8) bytes: page i is bit i%8 (LSB first) of
				      * byte i/8, set when the page is in place here */
	MIG_F_RP_RECV_END = 0x4b, /* 0:4 nblocks (one bitmap each was sent)   4:8 the last
				   * pass in place here (0: none) */
	MIG_F_RP_RESUME_ACK = 0x4c, /* empty: resumed; outstanding page requests follow */
	MIG_F_RP_READY = 0x4d,   /* "ready": COMPLETE / PC_RUN checked, guest stopped, waiting for GO */
	MIG_F_RP_NOP = 0x4e,     /* empty: the destination's heartbeat, every quarter of x-channel-timeout
				  * (at least every second) from its loader's start until RP_RUNNING
				  * (precopy) / RP_DONE (postcopy), and from RP_RESUME_ACK on; ignored */
};

/* ---- fixed payload heads ---- */

/* PAGES, ZEROS, PC_DISCARD: 0:4 block index   4:4 count */
#define MIG_PAGES_HDR_LEN 8u
#define MIG_PAGES_MAX 1024u   /* most pages one PAGES/ZEROS frame may list */

static inline void mig_put_pages_hdr(uint8_t out[MIG_PAGES_HDR_LEN], uint32_t block, uint32_t count)
{
	mig_put_be32(out, block);
	mig_put_be32(out + 4, count);
}

static inline void mig_get_pages_hdr(const uint8_t in[MIG_PAGES_HDR_LEN], uint32_t *block, uint32_t *count)
{
	*block = mig_get_be32(in);
	*count = mig_get_be32(in + 4);
}

/* MF_PAGES: 0:4 block index   4:4 flags (0)   8:8 sequence number (per source,
 * increasing)   16:4 nnormal   20:4 nzero */
#define MIG_MF_HDR_LEN 24u
#define MIG_MF_MAX_PAGES 128u

typedef struct MigMfHdr {
	uint32_t block;
	uint32_t flags;
	uint64_t seq;
	uint32_t nnormal;
	uint32_t nzero;
} MigMfHdr;

static inline void mig_mf_hdr_pack(const MigMfHdr *h, uint8_t out[MIG_MF_HDR_LEN])
{
	mig_put_be32(out, h->block);
	mig_put_be32(out + 4, h->flags);
	mig_put_be64(out + 8, h->seq);
	mig_put_be32(out + 16, h->nnormal);
	mig_put_be32(out + 20, h->nzero);
}

static inline void mig_mf_hdr_unpack(const uint8_t in[MIG_MF_HDR_LEN], MigMfHdr *h)
{
	h->block = mig_get_be32(in);
	h->flags = mig_get_be32(in + 4);
	h->seq = mig_get_be64(in + 8);
	h->nnormal = mig_get_be32(in + 16);
	h->nzero = mig_get_be32(in + 20);
}

/* DEV_DATA, MF_DEV: 0:4 device index   4:4 flags   8:8 sequence number (per device,
 * from 0, no gaps) */
#define MIG_DEV_HDR_LEN 16u
#define MIG_DEV_CHUNK (1u << 20)      /* most state bytes per chunk */
#define MIG_DEV_F_STOP_COPY 1u        /* flag: stop-copy data, not pre-copy */

/* CHUNK: 0:4 block index   4:4 offset within the page   8:8 byte offset of the page */
#define MIG_CHUNK_HDR_LEN 16u
/* Page bytes per CHUNK as sent (the last of a page may carry fewer); a receiver only
 * requires that they stay inside the page */
#define MIG_CHUNK_SIZE (64u << 10)

/* RP_REQ_PAGE: 0:4 block index   4:4 zero   8:8 byte offset of the host page */
#define MIG_PAGE_REQ_LEN 16u

/* The three heads above share one shape, be32 a, be32 b, be64 c, packed and unpacked
 * with these (fields in layout order). */
static inline void mig_put_head16(uint8_t out[16], uint32_t a, uint32_t b, uint64_t c)
{
	mig_put_be32(out, a);
	mig_put_be32(out + 4, b);
	mig_put_be64(out + 8, c);
}

static inline void mig_get_head16(const uint8_t in[16], uint32_t *a, uint32_t *b, uint64_t *c)
{
	*a = mig_get_be32(in);
	*b = mig_get_be32(in + 4);
	*c = mig_get_be64(in + 8);
}
