/* Pages of a RAM block that hold nothing yet: never touched (or discarded), so they
 * read as zero, found without reading them. Reading one to check it would populate it:
 * a page fault per page (the cost of a scattered file save on this host), and for
 * shared memory a page allocated. */
#pragma once
#include "engine/session_int.h"

typedef struct MigHoles MigHoles;

/* NULL never: a MigHoles that cannot tell (no /proc/self/pagemap) finds none. */
MigHoles *mig_holes_new(void);
void mig_holes_free(MigHoles *h);
/* Sets bit k of out (n bits, cleared first) for each page first + k of b that holds
 * nothing: anonymous memory, neither present nor swapped in /proc/self/pagemap (a
 * private page nobody else maps); memfd, a hole of the file (SEEK_DATA/SEEK_HOLE, which
 * count swapped pages as data); hugetlb, none (hugetlbfs has no SEEK_DATA, and the
 * page table shows only this process's mappings). Returns the pages marked. Any
 * failure marks none: the caller then reads them as before. Thread-safe. */
gsize mig_holes_find(MigHoles *h, const MigRamBlock *b, gsize first, gsize n, gulong *out);
