/* Postcopy: the guest runs on the destination before all of its memory is there.
 * Destination: guest RAM is registered with userfaultfd; a fault thread asks the
 * source for each missing page; every page that arrives afterwards is placed
 * atomically (UFFDIO_COPY), never written in place. Source: a return-path thread
 * serves requests at once (on the preempt channel when there is one) while the
 * migration thread pushes the rest in the background.
 *
 * This header holds the frames; engine/src/postcopy.h and engine/dst/postcopy.h
 * declare the two sides. */
#pragma once

enum {
	/* main channel, source -> destination */
	MIG_F_PC_LISTEN = 8,    /* register guest RAM with userfaultfd, start the fault thread */
	MIG_F_PC_DISCARD = 9,   /* be32 block, be32 count, count x (be64 first page, be64 pages) */
	MIG_F_PC_RUN = 10,      /* start the guest; answer RP_RUNNING */
	MIG_F_PC_END = 11,      /* every page was sent; answer RP_DONE once all are placed */
	/* return path */
	MIG_F_RP_REQ_PAGE = 0x43, /* be32 block, be32 0, be64 offset: send this page now */
	MIG_F_RP_DONE = 0x44,     /* postcopy finished on the destination */
};
