/* RAM block allocation. hugetlb memory comes from a memfd with MFD_HUGETLB so no
 * hugetlbfs mount is needed; memfd and hugetlb are MAP_SHARED so a later postcopy can
 * place pages through a second mapping (UFFDIO_CONTINUE) if that measures faster. */
#include <mig/ram.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/memfd.h>

#ifndef MFD_HUGE_SHIFT
#define MFD_HUGE_SHIFT 26
#endif

G_DEFINE_QUARK(mig-ram-error-quark, mig_ram_error)

gboolean mig_mem_backend_parse(const char *s, MigMemBackend *out)
{
	if (!g_strcmp0(s, "anon"))
		*out = MIG_MEM_ANON;
	else if (!g_strcmp0(s, "memfd"))
		*out = MIG_MEM_MEMFD;
	else if (!g_strcmp0(s, "hugetlb"))
		*out = MIG_MEM_HUGETLB;
	else
		return FALSE;
	return TRUE;
}

const char *mig_mem_backend_str(MigMemBackend b)
{
	static const char *const names[] = { "anon", "memfd", "hugetlb" };

	return b <= MIG_MEM_HUGETLB ? names[b] : "?";
}

gboolean mig_parse_size(const char *s, guint64 *out)
{
	char *end = NULL;
	guint64 v;
	int shift = 0;

	if (!s || !g_ascii_isdigit(*s))
		return FALSE;
	errno = 0;
	v = g_ascii_strtoull(s, &end, 10);
	if (errno)
		return FALSE;
	switch (g_ascii_toupper(*end)) {
	case 'K': shift = 10; end++; break;
	case 'M': shift = 20; end++; break;
	case 'G': shift = 30; end++; break;
	case 'T': shift = 40; end++; break;
	case '\0': break;
	default: return FALSE;
	}
	if (*end == 'B' || *end == 'b' || *end == 'i')
		end++;
	if (*end || (shift && v > (G_MAXUINT64 >> shift)))
		return FALSE;
	*out = v << shift;
	return TRUE;
}

static int open_memfd(const char *name, MigMemBackend backend, gsize huge)
{
	unsigned int flags = MFD_CLOEXEC;

	if (backend == MIG_MEM_HUGETLB)
		flags |= MFD_HUGETLB | ((unsigned int)g_bit_nth_lsf(huge, -1) << MFD_HUGE_SHIFT);
	return memfd_create(name, flags);
}

MigRamBlock *mig_ram_block_new(const char *name, gsize size, MigMemBackend backend,
			       gsize hugepage_size, GError **err)
{
	g_autofree MigRamBlock *b = g_new0(MigRamBlock, 1);
	int prot = PROT_READ | PROT_WRITE;

	g_strlcpy(b->name, name, sizeof(b->name));
	b->backend = backend;
	b->size = size;
	b->fd = -1;
	b->page_size = backend == MIG_MEM_HUGETLB ? hugepage_size : (gsize)sysconf(_SC_PAGESIZE);
	if (backend == MIG_MEM_HUGETLB && hugepage_size != (2u << 20) && hugepage_size != (1u << 30)) {
		g_set_error(err, mig_ram_error_quark(), EINVAL, "huge page size must be 2M or 1G");
		return NULL;
	}
	if (!size || size % b->page_size) {
		g_set_error(err, mig_ram_error_quark(), EINVAL,
			    "memory size %" G_GSIZE_FORMAT " is not a multiple of the page size %" G_GSIZE_FORMAT,
			    size, b->page_size);
		return NULL;
	}
	if (backend == MIG_MEM_ANON) {
		b->host = mmap(NULL, size, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	} else {
		b->fd = open_memfd(name, backend, hugepage_size);
		if (b->fd < 0 || ftruncate(b->fd, (off_t)size) < 0) {
			int e = errno;

			g_set_error(err, mig_ram_error_quark(), e, "%s memory of %" G_GSIZE_FORMAT " bytes: %s%s",
				    mig_mem_backend_str(backend), size, g_strerror(e),
				    backend == MIG_MEM_HUGETLB ? " (are enough huge pages reserved? see /proc/sys/vm/nr_hugepages)" : "");
			if (b->fd >= 0)
				close(b->fd);
			return NULL;
		}
		b->host = mmap(NULL, size, prot, MAP_SHARED, b->fd, 0);
	}
	if (b->host == MAP_FAILED) {
		int e = errno;

		g_set_error(err, mig_ram_error_quark(), e, "mmap of %" G_GSIZE_FORMAT " bytes of %s memory: %s%s", size,
			    mig_mem_backend_str(backend), g_strerror(e),
			    backend == MIG_MEM_HUGETLB ? " (not enough free huge pages? see /proc/sys/vm/nr_hugepages)" : "");
		if (b->fd >= 0)
			close(b->fd);
		return NULL;
	}
	if (backend == MIG_MEM_ANON) {
		/* 4 KiB pages unless the owner asks for THP (mig_ram_block_set_thp): a
		 * write-protect fault splits a THP, and a destination would populate 2 MiB
		 * per touched 4 KiB */
		madvise(b->host, size, MADV_NOHUGEPAGE);
	}
	return g_steal_pointer(&b);
}

gboolean mig_ram_block_set_thp(MigRamBlock *b, gboolean huge, GError **err)
{
	if (b->backend != MIG_MEM_ANON) {
		g_set_error(err, mig_ram_error_quark(), EINVAL, "transparent huge pages are for anon memory, not %s",
			    mig_mem_backend_str(b->backend));
		return FALSE;
	}
	if (madvise(b->host, b->size, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) < 0) {
		int e = errno;

		g_set_error(err, mig_ram_error_quark(), e, "madvise(%s) of %" G_GSIZE_FORMAT " bytes: %s%s",
			    huge ? "MADV_HUGEPAGE" : "MADV_NOHUGEPAGE", b->size, g_strerror(e),
			    e == EINVAL ? " (a kernel without transparent huge pages?)" : "");
		return FALSE;
	}
	return TRUE;
}

gboolean mig_ram_block_prealloc(MigRamBlock *b, GError **err)
{
	if (madvise(b->host, b->size, MADV_POPULATE_WRITE) < 0) {
		int e = errno;

		g_set_error(err, mig_ram_error_quark(), e, "preallocating %" G_GSIZE_FORMAT " bytes of %s memory: %s",
			    b->size, mig_mem_backend_str(b->backend), g_strerror(e));
		return FALSE;
	}
	return TRUE;
}

int mig_ram_block_discard(MigRamBlock *b, guint64 first, guint64 n)
{
	gsize ps = b->page_size;

	/* shared memory keeps its page cache across MADV_DONTNEED: punch the file instead */
	if (b->fd >= 0)
		return fallocate(b->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(first * ps), (off_t)(n * ps));
	return madvise(b->host + first * ps, n * ps, MADV_DONTNEED);
}

void mig_ram_block_free(MigRamBlock *b)
{
	if (!b)
		return;
	munmap(b->host, b->size);
	if (b->fd >= 0)
		close(b->fd);
	g_free(b);
}

gboolean mig_mem_is_zero(const void *p, gsize len)
{
	const guint64 *w = p;

	/* the first word decides for nearly every populated page */
	for (gsize i = 0; i < len / 8; i += 8) {
		if (w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] | w[i + 6] | w[i + 7])
			return FALSE;
	}
	return TRUE;
}
