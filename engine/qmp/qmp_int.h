/* The QMP server's internal entry points, outside its public API (qmp.h): for the
 * fuzz harness (tests/fuzz/fuzz-qmp.c). */
#pragma once
#include "engine/qmp/qmp.h"

/* Serves on the caller's thread the clients already connected (and any that connects
 * meanwhile) until none is left: in-band commands run there too, each as soon as the
 * reader has it, in order, instead of on qmp/dispatch; a client that hangs up after
 * its input is dropped with what is still unsent. Instead of mig_qmp_server_run:
 * one client's whole input with no thread and no handoff. */
void mig_qmp_server_run_inline(MigQmpServer *s);
