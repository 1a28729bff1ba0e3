/* Feeding a fuzz input to the engine over a socket while draining what it writes
 * back, so neither side can block the other: shared by the harnesses. */
#pragma once
#include <glib.h>
#include <stddef.h>
#include <stdint.h>

/* Any wait on the engine: above its own bounds (30 s), with room for a loaded host. */
#define FUZZ_WAIT_MS 60000

/* One step: waits up to timeout_ms for fd, drops what came back, sends what it can of
 * data[*off, size) and shuts the write side once everything is sent. FALSE once the
 * engine closed its end (or the socket failed). */
gboolean fuzz_io_step(int fd, const uint8_t *data, size_t size, size_t *off, int timeout_ms);
/* Aborts, naming what the engine failed to do, once the deadline (monotonic µs) passed. */
void fuzz_io_deadline(gint64 end, const char *what);
