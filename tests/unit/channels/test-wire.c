/* channels/wire.h against docs/protocol.md: every example the document gives is
 * rebuilt with the encoders and compared byte for byte, then decoded again; every
 * frame type number in its tables must match the header; the bounded reader must
 * refuse what runs past the end. The document is read at run time (PROTOCOL_MD), so
 * it cannot drift from the code unnoticed. */
#include <errno.h>
#include <glib.h>
#include <stdint.h>
#include <string.h>

#include "channels/hello.h"
#include "channels/wire.h"

static char *doc;

/* The bytes of the fenced block "```wire NAME": two-digit hex tokens from the start
 * of each line; the rest of a line is commentary. NULL when there is none. */
static GByteArray *doc_bytes(const char *name)
{
	g_autofree char *fence = g_strdup_printf("```wire %s\n", name);
	const char *p = strstr(doc, fence);
	GByteArray *out;

	if (!p)
		return NULL;
	out = g_byte_array_new();
	p += strlen(fence);
	while (*p && strncmp(p, "```", 3) != 0) {
		const char *eol = strchrnul(p, '\n');

		for (;;) {
			while (p < eol && *p == ' ')
				p++;
			if (eol - p < 2 || !g_ascii_isxdigit(p[0]) || !g_ascii_isxdigit(p[1]) ||
			    (p + 2 < eol && p[2] != ' '))
				break;
			g_byte_array_append(out, &(guint8){ (guint8)(g_ascii_xdigit_value(p[0]) << 4 |
								     g_ascii_xdigit_value(p[1])) }, 1);
			p += 2;
		}
		p = *eol ? eol + 1 : eol;
	}
	return out;
}

static void put32(GByteArray *b, uint32_t v)
{
	uint8_t w[4];

	mig_put_be32(w, v);
	g_byte_array_append(b, w, 4);
}

static void put64(GByteArray *b, uint64_t v)
{
	uint8_t w[8];

	mig_put_be64(w, v);
	g_byte_array_append(b, w, 8);
}

/* A frame header for a payload of len bytes, of which the example shows the first. */
static void frame(GByteArray *b, uint16_t type, uint32_t len)
{
	uint8_t h[MIG_FRAME_HDR_LEN];

	mig_frame_hdr_pack(&(MigFrameHdr){ .len = len, .type = type }, h);
	g_byte_array_append(b, h, sizeof(h));
}

/* Decodes the header of an example and returns a reader over what it shows of the
 * payload. */
static MigWireRd check_frame(const GByteArray *g, uint16_t type, uint32_t len)
{
	MigFrameHdr h;

	g_assert_cmpuint(g->len, >=, MIG_FRAME_HDR_LEN);
	mig_frame_hdr_unpack(g->data, &h);
	g_assert_cmpuint(h.type, ==, type);
	g_assert_cmpuint(h.len, ==, len);
	g_assert_cmpuint(h.flags, ==, 0);
	return mig_wire_rd(g->data + MIG_FRAME_HDR_LEN, g->len - MIG_FRAME_HDR_LEN);
}

static uint32_t rd32(MigWireRd *r)
{
	uint32_t v = 0;

	g_assert_cmpint(mig_rd_be32(r, &v), ==, 0);
	return v;
}

static uint64_t rd64(MigWireRd *r)
{
	uint64_t v = 0;

	g_assert_cmpint(mig_rd_be64(r, &v), ==, 0);
	return v;
}

static void rd_str(MigWireRd *r, const char *want)
{
	const uint8_t *s = NULL;
	uint8_t n = 0;

	g_assert_cmpint(mig_rd_str8(r, &s, &n), ==, 0);
	g_assert_cmpmem(s, n, want, strlen(want));
}

/* Each case encodes the example's values into enc and decodes the document's bytes
 * g back into those values. */

static void case_hello(GByteArray *enc, const GByteArray *g)
{
	MigHello h = { .version = MIG_PROTO_VERSION, .type = MIG_CHAN_MULTIFD, .index = 2 };
	MigHello back;
	uint8_t out[MIG_HELLO_LEN];
	int status = -1;

	for (unsigned i = 0; i < MIG_SESSION_LEN; i++)
		h.session[i] = (uint8_t)(i * 0x11);
	mig_hello_pack(&h, out);
	g_byte_array_append(enc, out, sizeof(out));
	g_assert_cmpuint(g->len, ==, MIG_HELLO_LEN);
	g_assert_cmpint(mig_hello_parse(g->data, &back, &status), ==, 0);
	g_assert_cmpint(status, ==, MIG_HELLO_OK);
	g_assert_cmpuint(back.type, ==, MIG_CHAN_MULTIFD);
	g_assert_cmpuint(back.index, ==, 2);
	g_assert_cmpmem(back.session, MIG_SESSION_LEN, h.session, MIG_SESSION_LEN);
}

static void case_reply(GByteArray *enc, const GByteArray *g)
{
	static const char msg[] = "other session 7";
	uint8_t hdr[MIG_HELLO_REPLY_HDR_LEN];

	mig_put_be32(hdr, MIG_HELLO_REPLY);
	mig_put_be32(hdr + 4, MIG_HELLO_FOREIGN_SESSION);
	mig_put_be16(hdr + 8, sizeof(msg) - 1);
	g_byte_array_append(enc, hdr, sizeof(hdr));
	g_byte_array_append(enc, (const guint8 *)msg, sizeof(msg) - 1);
	g_assert_cmpuint(g->len, >=, MIG_HELLO_REPLY_HDR_LEN);
	g_assert_cmpuint(mig_get_be32(g->data), ==, MIG_HELLO_REPLY);
	g_assert_cmpuint(mig_get_be32(g->data + 4), ==, MIG_HELLO_FOREIGN_SESSION);
	g_assert_cmpuint(mig_get_be16(g->data + 8), ==, g->len - MIG_HELLO_REPLY_HDR_LEN);
}

static void case_frame(GByteArray *enc, const GByteArray *g)
{
	static const char payload[] = "head-middle-tail";
	uint8_t h[MIG_FRAME_HDR_LEN];
	MigWireRd r;

	mig_frame_hdr_pack(&(MigFrameHdr){ .len = 16, .type = 0xbeef, .flags = 0x0102 }, h);
	g_byte_array_append(enc, h, sizeof(h));
	g_byte_array_append(enc, (const guint8 *)payload, 16);
	r = mig_wire_rd(g->data, g->len);
	g_assert_cmpuint(rd32(&r), ==, 16);
	g_assert_cmpuint(mig_get_be16(r.p), ==, 0xbeef);
	g_assert_cmpuint(mig_get_be16(r.p + 2), ==, 0x0102);
}

static void case_setup(GByteArray *enc, const GByteArray *g)
{
	GByteArray *p = g_byte_array_new();
	MigWireRd r;

	put32(p, 1);
	g_byte_array_append(p, (const guint8 *)"\x06pc.ram", 7);
	put64(p, 64u << 20);
	put64(p, 4096);
	put32(p, 2);
	put32(p, 0);
	put32(p, 1);
	g_byte_array_append(p, (const guint8 *)"\x04" "dev0", 5);
	frame(enc, MIG_F_SETUP, p->len);
	g_byte_array_append(enc, p->data, p->len);
	r = check_frame(g, MIG_F_SETUP, p->len);
	g_byte_array_unref(p);
	g_assert_cmpuint(rd32(&r), ==, 1);
	rd_str(&r, "pc.ram");
	g_assert_cmpuint(rd64(&r), ==, 64u << 20);
	g_assert_cmpuint(rd64(&r), ==, 4096);
	g_assert_cmpuint(rd32(&r), ==, 2);
	g_assert_cmpuint(rd32(&r), ==, 0);
	g_assert_cmpuint(rd32(&r), ==, 1);
	rd_str(&r, "dev0");
	g_assert_cmpuint(r.left, ==, 0);
}

/* PAGES or ZEROS naming one page; the page data (PAGES) is not part of the example. */
static void one_page(GByteArray *enc, const GByteArray *g, uint16_t type, uint64_t off, uint32_t data)
{
	uint8_t h[MIG_PAGES_HDR_LEN];
	uint32_t block, count;
	MigWireRd r;

	frame(enc, type, MIG_PAGES_HDR_LEN + 8 + data);
	mig_put_pages_hdr(h, 0, 1);
	g_byte_array_append(enc, h, sizeof(h));
	put64(enc, off);
	r = check_frame(g, type, MIG_PAGES_HDR_LEN + 8 + data);
	g_assert_cmpuint(r.left, ==, MIG_PAGES_HDR_LEN + 8);
	mig_get_pages_hdr(r.p, &block, &count);
	g_assert_cmpuint(block, ==, 0);
	g_assert_cmpuint(count, ==, 1);
	g_assert_cmpuint(mig_get_be64(r.p + MIG_PAGES_HDR_LEN), ==, off);
}

static void case_pages(GByteArray *enc, const GByteArray *g)
{
	one_page(enc, g, MIG_F_PAGES, 0x3000, 4096);
}

static void case_preempt_zeros(GByteArray *enc, const GByteArray *g)
{
	one_page(enc, g, MIG_F_ZEROS, 0x7000, 0);
}

/* PASS, MF_SYNC, RP_PASS: one be64. */
static void pass_frame(GByteArray *enc, const GByteArray *g, uint16_t type)
{
	MigWireRd r;

	frame(enc, type, 8);
	put64(enc, 3);
	r = check_frame(g, type, 8);
	g_assert_cmpuint(rd64(&r), ==, 3);
	g_assert_cmpuint(r.left, ==, 0);
}

static void case_pass(GByteArray *enc, const GByteArray *g)
{
	pass_frame(enc, g, MIG_F_PASS);
}

static void case_mf_sync(GByteArray *enc, const GByteArray *g)
{
	pass_frame(enc, g, MIG_F_MF_SYNC);
}

static void case_rp_pass(GByteArray *enc, const GByteArray *g)
{
	pass_frame(enc, g, MIG_F_RP_PASS);
}

/* Recovery: block 0 "pc.ram" of 12 pages, pages 0, 1 and 9 in place. */
static void case_rp_recv_bitmap(GByteArray *enc, const GByteArray *g)
{
	static const uint8_t bits[2] = { 0x03, 0x02 };
	MigWireRd r;
	const uint8_t *p = NULL;

	frame(enc, MIG_F_RP_RECV_BITMAP, 4 + 7 + 8 + 2);
	put32(enc, 0);
	g_byte_array_append(enc, (const guint8 *)"\x06pc.ram", 7);
	put64(enc, 12);
	g_byte_array_append(enc, bits, 2);
	r = check_frame(g, MIG_F_RP_RECV_BITMAP, 4 + 7 + 8 + 2);
	g_assert_cmpuint(rd32(&r), ==, 0);
	rd_str(&r, "pc.ram");
	g_assert_cmpuint(rd64(&r), ==, 12);
	g_assert_cmpint(mig_rd_bytes(&r, 2, &p), ==, 0);
	g_assert_cmpmem(p, 2, bits, 2);
	g_assert_cmpuint(r.left, ==, 0);
}

/* Recovery: 1 block, pass 2 in place. */
static void case_rp_recv_end(GByteArray *enc, const GByteArray *g)
{
	MigWireRd r;

	frame(enc, MIG_F_RP_RECV_END, 12);
	put32(enc, 1);
	put64(enc, 2);
	r = check_frame(g, MIG_F_RP_RECV_END, 12);
	g_assert_cmpuint(rd32(&r), ==, 1);
	g_assert_cmpuint(rd64(&r), ==, 2);
	g_assert_cmpuint(r.left, ==, 0);
}

static void case_pc_discard(GByteArray *enc, const GByteArray *g)
{
	uint8_t h[MIG_PAGES_HDR_LEN];
	uint32_t block, n;
	MigWireRd r;
	const uint8_t *p = NULL;

	frame(enc, MIG_F_PC_DISCARD, MIG_PAGES_HDR_LEN + 16);
	mig_put_pages_hdr(h, 1, 1);
	g_byte_array_append(enc, h, sizeof(h));
	put64(enc, 16);
	put64(enc, 4);
	r = check_frame(g, MIG_F_PC_DISCARD, MIG_PAGES_HDR_LEN + 16);
	g_assert_cmpint(mig_rd_bytes(&r, MIG_PAGES_HDR_LEN, &p), ==, 0);
	mig_get_pages_hdr(p, &block, &n);
	g_assert_cmpuint(block, ==, 1);
	g_assert_cmpuint(n, ==, 1);
	g_assert_cmpuint(rd64(&r), ==, 16);
	g_assert_cmpuint(rd64(&r), ==, 4);
}

/* DEV_DATA or MF_DEV: device 1, stop-copy, sequence 2, "hello". */
static void case_dev_data(GByteArray *enc, const GByteArray *g)
{
	uint8_t h[MIG_DEV_HDR_LEN];
	uint32_t dev, flags;
	uint64_t seq;
	MigWireRd r;

	frame(enc, MIG_F_DEV_DATA, MIG_DEV_HDR_LEN + 5);
	mig_put_head16(h, 1, MIG_DEV_F_STOP_COPY, 2);
	g_byte_array_append(enc, h, sizeof(h));
	g_byte_array_append(enc, (const guint8 *)"hello", 5);
	r = check_frame(g, MIG_F_DEV_DATA, MIG_DEV_HDR_LEN + 5);
	g_assert_cmpuint(r.left, ==, MIG_DEV_HDR_LEN + 5);
	mig_get_head16(r.p, &dev, &flags, &seq);
	g_assert_cmpuint(dev, ==, 1);
	g_assert_cmpuint(flags, ==, MIG_DEV_F_STOP_COPY);
	g_assert_cmpuint(seq, ==, 2);
	g_assert_cmpmem(r.p + MIG_DEV_HDR_LEN, 5, "hello", 5);
}

static void case_dev_end(GByteArray *enc, const GByteArray *g)
{
	MigWireRd r;

	frame(enc, MIG_F_DEV_END, 4 + 16);
	put32(enc, 1);
	put64(enc, 3);
	put64(enc, 2u << 20);
	r = check_frame(g, MIG_F_DEV_END, 4 + 16);
	g_assert_cmpuint(rd32(&r), ==, 1);
	g_assert_cmpuint(rd64(&r), ==, 3);
	g_assert_cmpuint(rd64(&r), ==, 2u << 20);
}

static void case_rp_req_page(GByteArray *enc, const GByteArray *g)
{
	uint8_t h[MIG_PAGE_REQ_LEN];
	uint32_t block, zero;
	uint64_t off;
	MigWireRd r;

	frame(enc, MIG_F_RP_REQ_PAGE, MIG_PAGE_REQ_LEN);
	mig_put_head16(h, 0, 0, 0x5000);
	g_byte_array_append(enc, h, sizeof(h));
	r = check_frame(g, MIG_F_RP_REQ_PAGE, MIG_PAGE_REQ_LEN);
	g_assert_cmpuint(r.left, ==, MIG_PAGE_REQ_LEN);
	mig_get_head16(r.p, &block, &zero, &off);
	g_assert_cmpuint(block, ==, 0);
	g_assert_cmpuint(zero, ==, 0);
	g_assert_cmpuint(off, ==, 0x5000);
}

static void case_rp_devices(GByteArray *enc, const GByteArray *g)
{
	MigWireRd r;

	frame(enc, MIG_F_RP_DEVICES, 4 + 8);
	put32(enc, 1);
	put64(enc, 1234);
	r = check_frame(g, MIG_F_RP_DEVICES, 4 + 8);
	g_assert_cmpuint(rd32(&r), ==, 1);
	g_assert_cmpuint(rd64(&r), ==, 1234);
}

static void case_mf_pages(GByteArray *enc, const GByteArray *g)
{
	const MigMfHdr h = { .block = 0, .seq = 7, .nnormal = 1, .nzero = 1 };
	uint8_t raw[MIG_MF_HDR_LEN];
	uint64_t offs[2];
	MigMfHdr back;
	MigWireRd r;
	const uint8_t *p = NULL;

	frame(enc, MIG_F_MF_PAGES, MIG_MF_HDR_LEN + 16 + 4096);
	mig_mf_hdr_pack(&h, raw);
	g_byte_array_append(enc, raw, sizeof(raw));
	put64(enc, 0x2000);
	put64(enc, 0x5000);
	r = check_frame(g, MIG_F_MF_PAGES, MIG_MF_HDR_LEN + 16 + 4096);
	g_assert_cmpint(mig_rd_bytes(&r, MIG_MF_HDR_LEN, &p), ==, 0);
	mig_mf_hdr_unpack(p, &back);
	g_assert_cmpuint(back.block, ==, 0);
	g_assert_cmpuint(back.flags, ==, 0);
	g_assert_cmpuint(back.seq, ==, 7);
	g_assert_cmpuint(back.nnormal, ==, 1);
	g_assert_cmpuint(back.nzero, ==, 1);
	/* as the receivers do: raw offsets into the array, decoded in place */
	g_assert_cmpuint(r.left, ==, sizeof(offs));
	memcpy(offs, r.p, sizeof(offs));
	mig_be64_decode_array(offs, 2);
	g_assert_cmpuint(offs[0], ==, 0x2000);
	g_assert_cmpuint(offs[1], ==, 0x5000);
}

static void case_chunk(GByteArray *enc, const GByteArray *g)
{
	uint8_t h[MIG_CHUNK_HDR_LEN];
	uint32_t block, off;
	uint64_t page;
	MigWireRd r;

	frame(enc, MIG_F_CHUNK, MIG_CHUNK_HDR_LEN + (64u << 10));
	mig_put_head16(h, 0, 64u << 10, 2u << 20);
	g_byte_array_append(enc, h, sizeof(h));
	r = check_frame(g, MIG_F_CHUNK, MIG_CHUNK_HDR_LEN + (64u << 10));
	g_assert_cmpuint(r.left, ==, MIG_CHUNK_HDR_LEN);
	mig_get_head16(r.p, &block, &off, &page);
	g_assert_cmpuint(block, ==, 0);
	g_assert_cmpuint(off, ==, 64u << 10);
	g_assert_cmpuint(page, ==, 2u << 20);
}

/* The payload is the VM's; migd's run (be64 first unit, be32 count, be32 gen) here. */
static void case_state_part(GByteArray *enc, const GByteArray *g)
{
	MigWireRd r;
	uint64_t first = 0;
	uint32_t n = 0, gen = 0;

	frame(enc, MIG_F_STATE_PART, 16);
	put64(enc, 0x40);
	put32(enc, 1);
	put32(enc, 3);
	r = check_frame(g, MIG_F_STATE_PART, 16);
	g_assert_cmpint(mig_rd_be64(&r, &first), ==, 0);
	g_assert_cmpint(mig_rd_be32(&r, &n), ==, 0);
	g_assert_cmpint(mig_rd_be32(&r, &gen), ==, 0);
	g_assert_cmpuint(first, ==, 0x40);
	g_assert_cmpuint(n, ==, 1);
	g_assert_cmpuint(gen, ==, 3);
	g_assert_cmpuint(r.left, ==, 0);
}

static void case_go(GByteArray *enc, const GByteArray *g)
{
	MigWireRd r;

	frame(enc, MIG_F_GO, 0);
	r = check_frame(g, MIG_F_GO, 0);
	g_assert_cmpuint(r.left, ==, 0);
}

static void case_rp_ready(GByteArray *enc, const GByteArray *g)
{
	MigWireRd r;

	frame(enc, MIG_F_RP_READY, 5);
	g_byte_array_append(enc, (const guint8 *)"ready", 5);
	r = check_frame(g, MIG_F_RP_READY, 5);
	g_assert_cmpmem(r.p, r.left, "ready", 5);
}

static void case_rp_nop(GByteArray *enc, const GByteArray *g)
{
	MigWireRd r;

	frame(enc, MIG_F_RP_NOP, 0);
	r = check_frame(g, MIG_F_RP_NOP, 0);
	g_assert_cmpuint(r.left, ==, 0);
}

static const struct {
	const char *name;
	void (*fn)(GByteArray *enc, const GByteArray *golden);
} cases[] = {
	{ "hello", case_hello },
	{ "reply", case_reply },
	{ "frame", case_frame },
	{ "setup", case_setup },
	{ "pages", case_pages },
	{ "pass", case_pass },
	{ "pc-discard", case_pc_discard },
	{ "rp-recv-bitmap", case_rp_recv_bitmap },
	{ "rp-recv-end", case_rp_recv_end },
	{ "dev-data", case_dev_data },
	{ "dev-end", case_dev_end },
	{ "rp-req-page", case_rp_req_page },
	{ "rp-devices", case_rp_devices },
	{ "rp-pass", case_rp_pass },
	{ "preempt-zeros", case_preempt_zeros },
	{ "mf-pages", case_mf_pages },
	{ "mf-sync", case_mf_sync },
	{ "chunk", case_chunk },
	{ "state-part", case_state_part },
	{ "go", case_go },
	{ "rp-ready", case_rp_ready },
	{ "rp-nop", case_rp_nop },
};

static void test_golden(gconstpointer data)
{
	guint i = GPOINTER_TO_UINT(data);
	g_autoptr(GByteArray) golden = doc_bytes(cases[i].name);
	g_autoptr(GByteArray) enc = g_byte_array_new();

	if (!golden)
		g_error("docs/protocol.md has no ```wire %s block", cases[i].name);
	cases[i].fn(enc, golden);
	g_assert_cmpmem(enc->data, enc->len, golden->data, golden->len);
}

/* Every example in the document has a case here: an example nobody checks rots. */
static void test_every_example_checked(void)
{
	for (const char *p = doc; (p = strstr(p, "```wire ")) != NULL; p++) {
		g_autofree char *name = g_strndup(p + 8, strcspn(p + 8, "\n"));
		gboolean known = FALSE;

		for (guint i = 0; i < G_N_ELEMENTS(cases); i++)
			known |= strcmp(cases[i].name, name) == 0;
		if (!known)
			g_error("docs/protocol.md: ```wire %s has no case in test-wire.c", name);
	}
}

static const struct {
	const char *name;
	unsigned value;
} types[] = {
	{ "SETUP", MIG_F_SETUP }, { "PAGES", MIG_F_PAGES }, { "ZEROS", MIG_F_ZEROS },
	{ "PASS", MIG_F_PASS }, { "STATE", MIG_F_STATE }, { "COMPLETE", MIG_F_COMPLETE },
	{ "ABORT", MIG_F_ABORT }, { "PC_LISTEN", MIG_F_PC_LISTEN }, { "PC_DISCARD", MIG_F_PC_DISCARD },
	{ "PC_RUN", MIG_F_PC_RUN }, { "PC_END", MIG_F_PC_END }, { "DEV_DATA", MIG_F_DEV_DATA },
	{ "DEV_END", MIG_F_DEV_END }, { "MF_PAGES", MIG_F_MF_PAGES }, { "MF_SYNC", MIG_F_MF_SYNC },
	{ "MF_DEV", MIG_F_MF_DEV }, { "CHUNK", MIG_F_CHUNK }, { "RP_RUNNING", MIG_F_RP_RUNNING },
	{ "RP_ERROR", MIG_F_RP_ERROR }, { "RP_REQ_PAGE", MIG_F_RP_REQ_PAGE }, { "RP_DONE", MIG_F_RP_DONE },
	{ "RP_DEVICES", MIG_F_RP_DEVICES }, { "RP_PASS", MIG_F_RP_PASS },
	{ "PC_RECOVER", MIG_F_PC_RECOVER }, { "PC_RESUME", MIG_F_PC_RESUME }, { "RP_RECV_BITMAP", MIG_F_RP_RECV_BITMAP },
	{ "RP_RECV_END", MIG_F_RP_RECV_END }, { "RP_RESUME_ACK", MIG_F_RP_RESUME_ACK },
	{ "RP_READY", MIG_F_RP_READY }, { "NOP", MIG_F_NOP }, { "GO", MIG_F_GO },
	{ "RP_NOP", MIG_F_RP_NOP },
	{ "STATE_PART", MIG_F_STATE_PART },
	{ "main", MIG_CHAN_MAIN }, { "multifd", MIG_CHAN_MULTIFD }, { "preempt", MIG_CHAN_PREEMPT },
	{ "OK", MIG_HELLO_OK }, { "BAD_MAGIC", MIG_HELLO_BAD_MAGIC }, { "BAD_VERSION", MIG_HELLO_BAD_VERSION },
	{ "BAD_TYPE", MIG_HELLO_BAD_TYPE }, { "FOREIGN_SESSION", MIG_HELLO_FOREIGN_SESSION },
	{ "DUPLICATE", MIG_HELLO_DUPLICATE }, { "BAD_INDEX", MIG_HELLO_BAD_INDEX },
	{ "NOT_EXPECTED", MIG_HELLO_NOT_EXPECTED }, { "BUSY", MIG_HELLO_BUSY },
	{ "NO_RECOVERY", MIG_HELLO_NO_RECOVERY },
	{ "NOT_AUTHORIZED", MIG_HELLO_NOT_AUTHORIZED },
};

/* Table rows "| value | NAME |" (NAME possibly in backticks): each name the header
 * defines appears with the header's value, and never with another. */
static void test_type_tables(void)
{
	g_autoptr(GRegex) row = g_regex_new("^\\| *(0x[0-9a-fA-F]+|[0-9]+) *\\| *`?([A-Za-z_]+)`? *\\|",
					    G_REGEX_MULTILINE, 0, NULL);
	g_autoptr(GMatchInfo) m = NULL;
	guint seen[G_N_ELEMENTS(types)] = { 0 };

	g_regex_match(row, doc, 0, &m);
	for (; g_match_info_matches(m); g_match_info_next(m, NULL)) {
		g_autofree char *num = g_match_info_fetch(m, 1);
		g_autofree char *name = g_match_info_fetch(m, 2);
		guint64 v = g_ascii_strtoull(num, NULL, 0);

		for (guint i = 0; i < G_N_ELEMENTS(types); i++) {
			if (strcmp(types[i].name, name) != 0)
				continue;
			if (v != types[i].value)
				g_error("docs/protocol.md says %s is %s, channels/wire.h %#x", name, num, types[i].value);
			seen[i]++;
		}
	}
	for (guint i = 0; i < G_N_ELEMENTS(types); i++)
		if (!seen[i])
			g_error("docs/protocol.md has no table row for %s", types[i].name);
}

static void test_be_helpers(void)
{
	const uint8_t want[8] = { 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef };
	uint8_t b[8];
	g_autoptr(GRand) rand = g_rand_new_with_seed(13);

	mig_put_be16(b, 0x0123);
	g_assert_cmpmem(b, 2, want, 2);
	mig_put_be32(b, 0x01234567u);
	g_assert_cmpmem(b, 4, want, 4);
	mig_put_be64(b, 0x0123456789abcdefull);
	g_assert_cmpmem(b, 8, want, 8);
	g_assert_cmpuint(mig_get_be16(want), ==, 0x0123);
	g_assert_cmpuint(mig_get_be32(want), ==, 0x01234567u);
	g_assert_cmpuint(mig_get_be64(want), ==, 0x0123456789abcdefull);
	for (int i = 0; i < 1000; i++) {
		uint64_t v = (uint64_t)g_rand_int(rand) << 32 | g_rand_int(rand);

		mig_put_be64(b, v);
		g_assert_cmpuint(mig_get_be64(b), ==, v);
		mig_put_be32(b, (uint32_t)v);
		g_assert_cmpuint(mig_get_be32(b), ==, (uint32_t)v);
		mig_put_be16(b, (uint16_t)v);
		g_assert_cmpuint(mig_get_be16(b), ==, (uint16_t)v);
	}
}

/* Every prefix of a payload shorter than a field is refused, with the cursor left
 * where it was; exactly enough bytes read to the end. */
static void test_bounded(void)
{
	const uint8_t buf[16] = { 0, 0, 0, 7, 1, 2, 3, 4, 5, 6, 7, 8, 3, 'a', 'b', 'c' };

	for (size_t len = 0; len <= sizeof(buf); len++) {
		MigWireRd r = mig_wire_rd(buf, len), before;
		const uint8_t *s = NULL;
		uint32_t v32 = 0xdead;
		uint64_t v64 = 0xdead;
		uint8_t n = 0;

		before = r;
		g_assert_cmpint(mig_rd_be32(&r, &v32), ==, len >= 4 ? 0 : -EPROTO);
		if (len < 4) {
			g_assert_true(r.p == before.p && r.left == before.left);
			g_assert_cmpuint(v32, ==, 0xdead);
			continue;
		}
		g_assert_cmpuint(v32, ==, 7);
		before = r;
		g_assert_cmpint(mig_rd_be64(&r, &v64), ==, len >= 12 ? 0 : -EPROTO);
		if (len < 12) {
			g_assert_true(r.p == before.p && r.left == before.left);
			g_assert_cmpuint(v64, ==, 0xdead);
			/* what is left is still readable in smaller pieces */
			g_assert_cmpint(mig_rd_bytes(&r, len - 4, &s), ==, 0);
			g_assert_cmpuint(r.left, ==, 0);
			continue;
		}
		g_assert_cmpuint(v64, ==, 0x0102030405060708ull);
		before = r;
		/* a u8 length that promises more than is there fails as a whole */
		g_assert_cmpint(mig_rd_str8(&r, &s, &n), ==, len == 16 ? 0 : -EPROTO);
		if (len < 16) {
			g_assert_true(r.p == before.p && r.left == before.left);
			continue;
		}
		g_assert_cmpmem(s, n, "abc", 3);
		g_assert_cmpuint(r.left, ==, 0);
		g_assert_cmpint(mig_rd_u8(&r, &n), ==, -EPROTO);
	}
}

/* Truncating a golden payload anywhere makes the structured read of it fail. */
static void test_truncated_setup(void)
{
	g_autoptr(GByteArray) g = doc_bytes("setup");

	g_assert_nonnull(g);
	for (size_t len = 0; len < g->len - MIG_FRAME_HDR_LEN; len++) {
		MigWireRd r = mig_wire_rd(g->data + MIG_FRAME_HDR_LEN, len);
		const uint8_t *s;
		uint32_t n = 0, v32;
		uint64_t v64;
		uint8_t l;
		int rc = mig_rd_be32(&r, &n);

		for (uint32_t i = 0; rc == 0 && i < n; i++)
			rc = mig_rd_str8(&r, &s, &l) ?: mig_rd_be64(&r, &v64) ?: mig_rd_be64(&r, &v64);
		if (rc == 0)
			rc = mig_rd_be32(&r, &v32) ?: mig_rd_be32(&r, &v32) ?: mig_rd_be32(&r, &n);
		for (uint32_t i = 0; rc == 0 && i < n; i++)
			rc = mig_rd_str8(&r, &s, &l);
		g_assert_cmpint(rc, ==, -EPROTO);
	}
}

int main(int argc, char **argv)
{
	g_autoptr(GError) err = NULL;

	g_test_init(&argc, &argv, NULL);
	if (!g_file_get_contents(PROTOCOL_MD, &doc, NULL, &err))
		g_error("%s", err->message);
	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autofree char *name = g_strdup_printf("/channels/wire/golden/%s", cases[i].name);

		g_test_add_data_func(name, GUINT_TO_POINTER(i), test_golden);
	}
	g_test_add_func("/channels/wire/every-example-checked", test_every_example_checked);
	g_test_add_func("/channels/wire/type-tables", test_type_tables);
	g_test_add_func("/channels/wire/be-helpers", test_be_helpers);
	g_test_add_func("/channels/wire/bounded", test_bounded);
	g_test_add_func("/channels/wire/truncated-setup", test_truncated_setup);
	return g_test_run();
}
