#!/bin/sh
# libmig.so exports the public API and nothing else: every defined dynamic symbol is a
# mig_* function (the version node MIG_x.y aside), and the API is really there.
set -eu
nm=$1 lib=$2
syms=$("$nm" -D --defined-only "$lib" | awk '$2 != "A" { sub(/@.*/, "", $3); print $3 }')
stray=$(printf '%s\n' "$syms" | grep -v '^mig_' || true)
if [ -n "$stray" ]; then
	echo "exported but not mig_*:" >&2
	printf '%s\n' "$stray" >&2
	exit 1
fi
for want in mig_session_new mig_session_migrate mig_ram_block_new; do
	printf '%s\n' "$syms" | grep -qx "$want" || { echo "$want is not exported" >&2; exit 1; }
done
echo "$(printf '%s\n' "$syms" | wc -l) symbols, all mig_*"
