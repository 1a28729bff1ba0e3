/* fuzz-src-rp with the source in postcopy from its first pass on (fuzz-src-rp.c). */
#define FUZZ_SRC_RP_POSTCOPY 1
#include "fuzz-src-rp.c"
