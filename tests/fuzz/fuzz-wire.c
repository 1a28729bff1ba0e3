/* Fuzz target for the frame payloads a mig receiver decodes: the input is a run of
 * frames (8-byte header, payload) as they would follow a hello, and every payload of
 * a known type is walked field by field through channels/wire.h's bounded reader, in
 * the layout wire.h gives for it. Whatever the bytes, each read must either return
 * exactly the big-endian value at the cursor and advance by its size, or fail with
 * -EPROTO and leave the cursor alone when the field does not fit; the reader must
 * never look past the payload (run it under ASan). Any mismatch aborts.
 *
 * libFuzzer: build with -fsanitize=fuzzer -DMIG_FUZZ_LIBFUZZER. Otherwise the
 * built-in main() (fuzz-driver.c) replays files or a built-in corpus. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "channels/wire.h"
#include "fuzz.h"

/* Independent of wire.h: the oracle the helpers are checked against. */
static uint64_t be(const uint8_t *p, size_t n)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/* One field of n bytes: checks the reader's verdict and movement, returns the bytes
 * (NULL when the field did not fit). */
static const uint8_t *field(MigWireRd *r, size_t n, int rc, const MigWireRd *before)
{
	if (before->left < n) {
		CHECK(rc == -EPROTO);
		CHECK(r->p == before->p && r->left == before->left);
		return NULL;
	}
	CHECK(rc == 0);
	CHECK(r->p == before->p + n && r->left == before->left - n);
	return before->p;
}

static int rd32(MigWireRd *r, uint32_t *v)
{
	MigWireRd before = *r;
	const uint8_t *p = field(r, 4, mig_rd_be32(r, v), &before);

	if (p)
		CHECK(*v == be(p, 4));
	return p ? 0 : -EPROTO;
}

static int rd64(MigWireRd *r, uint64_t *v)
{
	MigWireRd before = *r;
	const uint8_t *p = field(r, 8, mig_rd_be64(r, v), &before);

	if (p)
		CHECK(*v == be(p, 8));
	return p ? 0 : -EPROTO;
}

static int rd_str8(MigWireRd *r)
{
	MigWireRd before = *r;
	const uint8_t *s;
	uint8_t n;
	int rc = mig_rd_str8(r, &s, &n);

	if (before.left == 0 || before.left - 1 < before.p[0]) {
		CHECK(rc == -EPROTO);
		CHECK(r->p == before.p && r->left == before.left);
		return rc;
	}
	CHECK(rc == 0 && n == before.p[0] && s == before.p + 1);
	CHECK(r->p == before.p + 1 + n && r->left == before.left - 1 - n);
	return 0;
}

/* A fixed head through mig_rd_bytes, decoded with the helpers; NULL if short. */
static const uint8_t *head(MigWireRd *r, size_t n)
{
	MigWireRd before = *r;
	const uint8_t *p = NULL;
	int rc = mig_rd_bytes(r, n, &p);

	CHECK(field(r, n, rc, &before) == (rc == 0 ? p : NULL));
	return rc == 0 ? p : NULL;
}

static void head16(MigWireRd *r)
{
	const uint8_t *p = head(r, 16);
	uint32_t a, b;
	uint64_t c;

	if (!p)
		return;
	mig_get_head16(p, &a, &b, &c);
	CHECK(a == be(p, 4) && b == be(p + 4, 4) && c == be(p + 8, 8));
}

/* n be64 values, at most max of them (the receivers' own cap). */
static void be64s(MigWireRd *r, uint64_t n, uint64_t max)
{
	uint64_t v;

	for (uint64_t i = 0; i < n && i < max; i++)
		if (rd64(r, &v) < 0)
			return;
}

static void setup(MigWireRd *r)
{
	uint32_t n, v;
	uint64_t v64;

	if (rd32(r, &n) < 0)
		return;
	for (uint32_t i = 0; i < n; i++)
		if (rd_str8(r) < 0 || rd64(r, &v64) < 0 || rd64(r, &v64) < 0)
			return;
	if (rd32(r, &v) < 0 || rd32(r, &v) < 0 || rd32(r, &n) < 0)
		return;
	for (uint32_t i = 0; i < n; i++)
		if (rd_str8(r) < 0)
			return;
}

static void page_list(MigWireRd *r, unsigned per_entry)
{
	const uint8_t *p = head(r, MIG_PAGES_HDR_LEN);
	uint32_t block, count;

	if (!p)
		return;
	mig_get_pages_hdr(p, &block, &count);
	CHECK(block == be(p, 4) && count == be(p + 4, 4));
	be64s(r, (uint64_t)count * per_entry, MIG_PAGES_MAX * 2);
}

static void mf_pages(MigWireRd *r)
{
	const uint8_t *p = head(r, MIG_MF_HDR_LEN);
	uint64_t offs[MIG_MF_MAX_PAGES];
	MigMfHdr h;
	uint8_t back[MIG_MF_HDR_LEN];
	size_t n;

	if (!p)
		return;
	mig_mf_hdr_unpack(p, &h);
	CHECK(h.block == be(p, 4) && h.flags == be(p + 4, 4) && h.seq == be(p + 8, 8));
	CHECK(h.nnormal == be(p + 16, 4) && h.nzero == be(p + 20, 4));
	mig_mf_hdr_pack(&h, back);
	CHECK(memcmp(back, p, sizeof(back)) == 0);
	/* as the receivers do: raw offsets into the array, decoded in place */
	n = (size_t)h.nnormal + h.nzero;
	if (n > MIG_MF_MAX_PAGES || n * 8 > r->left)
		return;
	memcpy(offs, r->p, n * 8);
	mig_be64_decode_array(offs, n);
	for (size_t i = 0; i < n; i++)
		CHECK(offs[i] == be(r->p + 8 * i, 8));
}

/* be32 n, then n entries of per_entry be64s. */
static void counted(MigWireRd *r, unsigned per_entry)
{
	uint32_t n;

	if (rd32(r, &n) == 0)
		be64s(r, (uint64_t)n * per_entry, UINT64_MAX);
}

/* RP_RECV_BITMAP: be32 block, name, be64 pages, the bitmap's bytes to the end. */
static void recv_bitmap(MigWireRd *r)
{
	const uint8_t *bits;
	uint32_t block;
	uint64_t pages;

	if (rd32(r, &block) < 0 || rd_str8(r) < 0 || rd64(r, &pages) < 0)
		return;
	if (pages / 8 + 1 <= r->left)
		mig_rd_bytes(r, (size_t)((pages + 7) / 8), &bits);
}

static void payload(uint16_t type, const uint8_t *p, size_t len)
{
	MigWireRd r = mig_wire_rd(p, len);
	uint64_t v;
	uint32_t n32;

	switch (type) {
	case MIG_F_SETUP:
		setup(&r);
		break;
	case MIG_F_PAGES:
	case MIG_F_ZEROS:
		page_list(&r, 1);
		break;
	case MIG_F_PC_DISCARD:
		page_list(&r, 2);
		break;
	case MIG_F_PASS:
	case MIG_F_MF_SYNC:
	case MIG_F_RP_PASS:
		rd64(&r, &v);
		break;
	case MIG_F_STATE:
		rd_str8(&r);
		break;
	case MIG_F_DEV_DATA:
	case MIG_F_MF_DEV:
	case MIG_F_CHUNK:
	case MIG_F_RP_REQ_PAGE:
		head16(&r);
		break;
	case MIG_F_DEV_END:
		counted(&r, 2);
		break;
	case MIG_F_RP_DEVICES:
		counted(&r, 1);
		break;
	case MIG_F_MF_PAGES:
		mf_pages(&r);
		break;
	case MIG_F_RP_RECV_BITMAP:
		recv_bitmap(&r);
		break;
	case MIG_F_RP_RECV_END:
		if (rd32(&r, &n32) == 0)
			rd64(&r, &v);
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;

	while (size - off >= MIG_FRAME_HDR_LEN) {
		uint8_t back[MIG_FRAME_HDR_LEN];
		MigFrameHdr h;

		mig_frame_hdr_unpack(data + off, &h);
		CHECK(h.len == be(data + off, 4) && h.type == be(data + off + 4, 2) &&
		      h.flags == be(data + off + 6, 2));
		mig_frame_hdr_pack(&h, back);
		CHECK(memcmp(back, data + off, sizeof(back)) == 0);
		off += MIG_FRAME_HDR_LEN;
		/* a receiver reads only what arrived: a short last payload is what is there */
		payload(h.type, data + off, h.len < size - off ? h.len : size - off);
		if (h.len >= size - off)
			break;
		off += h.len;
	}
	return 0;
}

const char fuzz_name[] = "fuzz-wire";

static size_t frame(uint8_t *buf, uint16_t type, const uint8_t *p, uint32_t len)
{
	mig_frame_hdr_pack(&(MigFrameHdr){ .len = len, .type = type }, buf);
	memcpy(buf + MIG_FRAME_HDR_LEN, p, len);
	return MIG_FRAME_HDR_LEN + len;
}

/* Well-formed frames of every layout, several to an input, with counts that sit
 * right at their payload's end so that a mutation tips them over. */
size_t fuzz_seed(uint8_t buf[FUZZ_INPUT_MAX], unsigned which)
{
	static const uint8_t setup_p[] = {
		0, 0, 0, 1, 6, 'p', 'c', '.', 'r', 'a', 'm', 0, 0, 0, 0, 4, 0, 0, 0,
		0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 4, 'd', 'e', 'v', '0',
	};
	uint8_t p[64] = { 0 };
	size_t len = 0;

	len += frame(buf + len, MIG_F_SETUP, setup_p, sizeof(setup_p));
	switch (which % 4) {
	case 0:
		mig_put_pages_hdr(p, 0, 2);
		mig_put_be64(p + 8, 0x1000);
		mig_put_be64(p + 16, 0x2000);
		len += frame(buf + len, MIG_F_ZEROS, p, 24);
		mig_put_pages_hdr(p, 1, 1);
		mig_put_be64(p + 8, 16);
		mig_put_be64(p + 16, 4);
		len += frame(buf + len, MIG_F_PC_DISCARD, p, 24);
		break;
	case 1:
		mig_mf_hdr_pack(&(MigMfHdr){ .seq = 7, .nnormal = 1, .nzero = 2 }, p);
		mig_put_be64(p + 24, 0x2000);
		mig_put_be64(p + 32, 0x3000);
		mig_put_be64(p + 40, 0x4000);
		len += frame(buf + len, MIG_F_MF_PAGES, p, 48);
		mig_put_be64(p, 3);
		len += frame(buf + len, MIG_F_MF_SYNC, p, 8);
		break;
	case 2:
		mig_put_head16(p, 1, MIG_DEV_F_STOP_COPY, 2);
		memcpy(p + 16, "hello", 5);
		len += frame(buf + len, MIG_F_DEV_DATA, p, 21);
		mig_put_be32(p, 1);
		mig_put_be64(p + 4, 3);
		mig_put_be64(p + 12, 2u << 20);
		len += frame(buf + len, MIG_F_DEV_END, p, 20);
		len += frame(buf + len, MIG_F_RP_DEVICES, p, 12);
		break;
	case 3:
		mig_put_head16(p, 0, 0, 0x5000);
		len += frame(buf + len, MIG_F_RP_REQ_PAGE, p, 16);
		p[0] = 5;
		memcpy(p + 1, "guest", 5);
		len += frame(buf + len, MIG_F_STATE, p, 10);
		mig_put_head16(p, 0, 64u << 10, 2u << 20);
		len += frame(buf + len, MIG_F_CHUNK, p, 16);
		/* the switchover of protocol 2, with a heartbeat before it */
		len += frame(buf + len, MIG_F_NOP, p, 0);
		len += frame(buf + len, MIG_F_COMPLETE, p, 0);
		len += frame(buf + len, MIG_F_RP_READY, (const uint8_t *)"ready", 5);
		len += frame(buf + len, MIG_F_RP_NOP, p, 0);
		len += frame(buf + len, MIG_F_GO, p, 0);
		len += frame(buf + len, MIG_F_RP_RUNNING, (const uint8_t *)"running", 7);
		break;
	}
	return len;
}
