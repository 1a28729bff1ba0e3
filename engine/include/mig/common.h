/* What every public mig header shares: the error domain and the export markers.
 *
 * libmig exports exactly what the public headers declare: the library is built with
 * hidden visibility, and MIG_BEGIN_PUBLIC gives the declarations between it and
 * MIG_END_PUBLIC default visibility. A function declared only in an engine-internal
 * header stays inside the library even when its name starts with mig_. */
#pragma once
#include <glib.h>

#define MIG_BEGIN_PUBLIC G_BEGIN_DECLS _Pragma("GCC visibility push(default)")
#define MIG_END_PUBLIC _Pragma("GCC visibility pop") G_END_DECLS

MIG_BEGIN_PUBLIC

/* Errors from the engine: codes are errno values (EINVAL, EBUSY, ENOTSUP, ...), messages
 * are QEMU's where QEMU has one, so a QMP layer can pass them on unchanged. */
#define MIG_ERROR (mig_error_quark())
GQuark mig_error_quark(void);

MIG_END_PUBLIC
