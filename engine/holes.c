/* Holes of RAM blocks, from the kernel's page tables (anonymous memory) or the memfd's
 * page cache (shared memory). */
#include "engine/holes.h"
#include "engine/bitmap.h"
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#define PM_PRESENT (1ull << 63)
#define PM_SWAPPED (1ull << 62)
#define PM_SWAP_TYPE 31ull      /* the swap type: the frame's low 5 bits */
#define SWP_PTE_MARKER 31ull    /* the last swap type: a pte marker */
#define PM_BATCH 512u

/* A page table entry that holds no page: none, or a pte marker, which the dirty
 * tracker's userfaultfd write-protection leaves on a page never populated (and which
 * pagemap shows as swapped with the marker's swap type). The type is shown only to
 * CAP_SYS_ADMIN (else the frame reads 0): then a marker is taken for data and read.
 * Real swap, migration entries: other types. */
static gboolean pm_empty(guint64 e)
{
	if (e & PM_PRESENT)
		return FALSE;
	if (!(e & PM_SWAPPED))
		return TRUE;
	return (e & PM_SWAP_TYPE) == SWP_PTE_MARKER;
}

struct MigHoles {
	int pagemap;          /* /proc/self/pagemap, -1 if it could not be opened */
};

MigHoles *mig_holes_new(void)
{
	MigHoles *h = g_new0(MigHoles, 1);

	h->pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	return h;
}

void mig_holes_free(MigHoles *h)
{
	if (!h)
		return;
	if (h->pagemap >= 0)
		close(h->pagemap);
	g_free(h);
}

static gsize anon_holes(MigHoles *h, const MigRamBlock *b, gsize first, gsize n, gulong *out)
{
	guint64 ent[PM_BATCH];
	guint64 vpn = (guint64)(uintptr_t)(b->host + first * b->page_size) / 4096;
	gsize found = 0;

	if (h->pagemap < 0 || b->page_size != 4096)
		return 0;
	for (gsize done = 0; done < n;) {
		gsize k = MIN(n - done, (gsize)PM_BATCH);
		ssize_t r = pread(h->pagemap, ent, k * sizeof(ent[0]), (off_t)((vpn + done) * sizeof(ent[0])));

		if (r != (ssize_t)(k * sizeof(ent[0]))) {
			memset(out, 0, mig_bitmap_longs(n) * sizeof(gulong));
			return 0;
		}
		for (gsize i = 0; i < k; i++) {
			if (pm_empty(ent[i])) {
				mig_bitmap_set(out, done + i);
				found++;
			}
		}
		done += k;
	}
	return found;
}

static gsize memfd_holes(const MigRamBlock *b, gsize first, gsize n, gulong *out)
{
	off_t pos = (off_t)(first * b->page_size), end = (off_t)((first + n) * b->page_size);
	gsize found = 0;

	while (pos < end) {
		off_t data = lseek(b->fd, pos, SEEK_DATA), hole;

		if (data < 0 && errno == ENXIO)
			data = end;   /* nothing but holes from pos on */
		else if (data < 0)
			goto fail;
		for (off_t p = pos; p + (off_t)b->page_size <= MIN(data, end); p += (off_t)b->page_size, found++)
			mig_bitmap_set(out, (gsize)p / b->page_size - first);
		if (data >= end)
			break;
		hole = lseek(b->fd, data, SEEK_HOLE);
		if (hole < 0)
			goto fail;
		/* a hole starts on a page boundary of the file's pages */
		pos = (hole + (off_t)b->page_size - 1) / (off_t)b->page_size * (off_t)b->page_size;
	}
	return found;
fail:
	memset(out, 0, mig_bitmap_longs(n) * sizeof(gulong));
	return 0;
}

gsize mig_holes_find(MigHoles *h, const MigRamBlock *b, gsize first, gsize n, gulong *out)
{
	memset(out, 0, mig_bitmap_longs(n) * sizeof(gulong));
	switch (b->backend) {
	case MIG_MEM_ANON:
		return anon_holes(h, b, first, n, out);
	case MIG_MEM_MEMFD:
		return b->fd >= 0 ? memfd_holes(b, first, n, out) : 0;
	default:
		return 0;
	}
}
