#!/bin/sh
# Installs this build into a scratch root, builds tests/embed/embed.c against it with
# nothing but pkg-config's answer for mig (no include path into the tree), and runs it
# with the installed libmig.so. A header not installed, a symbol not exported or a
# broken mig.pc fails here as it would for a VMM. Then runs the installed migbench's
# smallest scenario: it needs migd and mig-rawxfer installed beside it.
#   run-embed.sh MESON BUILD_DIR SOURCE CC... (EMBED_CFLAGS: e.g. the build's -fsanitize)
set -eu
meson=$1 build=$2 src=$3
shift 3
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mig-embed-XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

$meson install -C "$build" --no-rebuild --destdir "$tmp/root" >"$tmp/install.log" 2>&1 ||
	{ cat "$tmp/install.log" >&2; echo "meson install failed" >&2; exit 1; }
pc=$(find "$tmp/root" -name mig.pc | head -n 1)
[ -n "$pc" ] || { echo "mig.pc was not installed" >&2; exit 1; }
# the scratch root stands for /: mig.pc's prefix moves with it (GLib's stays where it is)
mkdir "$tmp/pc"
sed "s|^prefix=|prefix=$tmp/root|" "$pc" >"$tmp/pc/mig.pc"
pkgconf() {
	PKG_CONFIG_PATH=$tmp/pc pkg-config "$@" mig
}
cflags=$(pkgconf --cflags)
libs=$(pkgconf --libs)
libdir=$(pkgconf --variable=libdir)
[ -f "$libdir/libmig.so" ] || { echo "libmig.so is not in mig.pc's libdir $libdir" >&2; exit 1; }
echo "cc $cflags embed.c $libs"
# shellcheck disable=SC2086  # pkg-config's words are meant to split
"$@" ${EMBED_CFLAGS:-} -std=gnu11 -Wall -Werror $cflags "$src" -o "$tmp/embed" $libs
LD_LIBRARY_PATH=$libdir "$tmp/embed"

bindir=$(dirname "$(find "$tmp/root" -type f -name migbench | head -n 1)")
[ -x "$bindir/migbench" ] || { echo "migbench was not installed" >&2; exit 1; }
echo "$bindir/migbench precopy-throughput --quick"
LD_LIBRARY_PATH=$libdir "$bindir/migbench" precopy-throughput --quick --runs 1 --guest-mib 64 \
	--json "$tmp/bench.json" >"$tmp/bench.log" 2>&1 ||
	{ cat "$tmp/bench.log" >&2; echo "the installed migbench failed" >&2; exit 1; }
[ -s "$tmp/bench.json" ] || { echo "the installed migbench wrote no JSON" >&2; exit 1; }
