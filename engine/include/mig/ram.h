/* RAM blocks: guest memory of a chosen backing (anonymous, memfd, hugetlb memfd). */
#pragma once
#include <mig/common.h>

MIG_BEGIN_PUBLIC

typedef enum MigMemBackend {
	MIG_MEM_ANON = 0,
	MIG_MEM_MEMFD,
	MIG_MEM_HUGETLB,
} MigMemBackend;

typedef struct MigRamBlock {
	char name[64];
	guint8 *host;
	gsize size;
	gsize page_size;     /* host page size of the mapping: 4 KiB, 2 MiB or 1 GiB */
	MigMemBackend backend;
	int fd;              /* memfd behind the mapping, -1 for anon */
} MigRamBlock;

GQuark mig_ram_error_quark(void);

gboolean mig_mem_backend_parse(const char *s, MigMemBackend *out);
const char *mig_mem_backend_str(MigMemBackend b);

/* hugepage_size is only used for MIG_MEM_HUGETLB (2 MiB or 1 GiB). The memory is
 * mapped but not populated; size must be a multiple of the page size. */
MigRamBlock *mig_ram_block_new(const char *name, gsize size, MigMemBackend backend,
			       gsize hugepage_size, GError **err);
void mig_ram_block_free(MigRamBlock *b);

/* Anonymous memory only: TRUE backs it with transparent huge pages where the kernel
 * can (MADV_HUGEPAGE, as QEMU advises guest RAM), FALSE keeps it in 4 KiB pages (what
 * mig_ram_block_new sets). Call before the memory is touched. On the source, an
 * unwritten 2 MiB region is then one entry for the dirty tracker's page-table walk
 * instead of 512; a write splits it (docs/design.md, Precopy). */
gboolean mig_ram_block_set_thp(MigRamBlock *b, gboolean huge, GError **err);

/* Gives [first, first+n) pages back to the kernel: they read as zero afterwards
 * (punched from the memfd, MADV_DONTNEED for anonymous memory). -1 with errno set. */
int mig_ram_block_discard(MigRamBlock *b, guint64 first, guint64 n);

/* Faults every page in writable now, so receiving later costs no page faults. */
gboolean mig_ram_block_prealloc(MigRamBlock *b, GError **err);

static inline gsize mig_ram_block_pages(const MigRamBlock *b)
{
	return b->size / b->page_size;
}

/* "256M", "1G", "4096", "2M": a size with an optional K/M/G/T suffix (powers of 1024). */
gboolean mig_parse_size(const char *s, guint64 *out);

/* Is [p, p+len) all zero bytes? len is a multiple of 64 (a page). */
gboolean mig_mem_is_zero(const void *p, gsize len);

MIG_END_PUBLIC
