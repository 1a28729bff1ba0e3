/* Atomic page placement into userfaultfd-registered memory, and fault reading.
 * Placement never overwrites: a page already present gives -EEXIST, which is how two
 * copies of one page (bulk and urgent) can race without the later one clobbering
 * whatever the guest wrote after the first. */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "uffd/compat.h"

/* UFFDIO_COPY of len bytes (one whole host page) and wake the waiters.
 * 0, -EEXIST if the page was already there, or -errno. */
int mig_uffd_copy(int uffd, void *dst, const void *src, size_t len);
/* UFFDIO_COPY of npages whole pages of ps bytes, in as few ioctls as it can: a page
 * already there (another thread's copy won) is left alone and its waiters woken, and
 * the copy goes on after it. 0 or -errno. */
int mig_uffd_copy_pages(int uffd, void *dst, const void *src, size_t ps, size_t npages);
/* UFFDIO_ZEROPAGE (anon, shmem). 0, -EEXIST or -errno. */
int mig_uffd_zeropage(int uffd, void *dst, size_t len);
/* UFFDIO_CONTINUE (shared memory registered MINOR): maps the page cache's page, which
 * the caller filled through another mapping, and wakes the waiters. 0, -EEXIST if it
 * was mapped already, or -errno. */
int mig_uffd_continue(int uffd, void *dst, size_t len);
/* Wakes threads waiting on [addr, addr+len) (e.g. after -EEXIST). */
int mig_uffd_wake(int uffd, void *addr, size_t len);

/* Reads up to n pending messages without blocking: count, 0 if none, or -errno. */
int mig_uffd_read_msgs(int uffd, struct uffd_msg *msgs, int n);
