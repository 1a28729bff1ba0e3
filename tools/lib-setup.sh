# shellcheck shell=bash
# Shared set-up for tools/run-demo and tools/run-tests: install what the build needs,
# prepare the host (huge pages, tracefs, locked memory) and build with meson.
# Sourced, not executed. Everything here runs as root (developers' machines and CI alike).

# Debian packages the build, the tests and the demo need (gnuplot-nox: the plots of
# migbench and the demo, tools/bench/plot).
MIG_DEPS=(
	meson ninja-build pkg-config gcc clang llvm
	libglib2.0-dev libjson-glib-dev liburing-dev libbpf-dev bpftool libssl-dev
	systemtap-sdt-dev iproute2 python3 linux-libc-dev gnuplot-nox
)

# Free 2 MiB huge pages the tests want: two 1 GiB hugetlb guests (1024) plus room for
# the smaller hugetlb tests.
MIG_HUGEPAGES_WANTED=${MIG_HUGEPAGES_WANTED:-1200}

mig_log() { printf '[mig] %s\n' "$*" >&2; }

# Installs the packages of MIG_DEPS that are missing; nothing when all are there.
mig_install_deps() {
	local missing=() p st
	for p in "${MIG_DEPS[@]}"; do
		st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
		[[ $st == installed ]] || missing+=("$p")
	done
	((${#missing[@]})) || return 0
	mig_log "installing: ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# mig_build DIR [meson options...]: configures DIR (with $CC if set) unless it is already
# configured that way, then builds it. A change of compiler or options (or a DIR that
# was configured by hand) re-runs the configuration with --wipe; otherwise DIR is only
# rebuilt.
mig_build() {
	local dir=$1
	shift
	local want="CC=${CC:-} $*" stamp="$dir/.mig-setup"
	if [[ ! -f $dir/build.ninja || ! -f $stamp || $(<"$stamp") != "$want" ]]; then
		rm -f "$stamp"
		mig_log "configuring $dir ($want)"
		if [[ -d $dir/meson-private ]]; then
			meson setup --wipe "$dir" "$@" || return 1
		else
			meson setup "$dir" "$@" || return 1
		fi
		printf '%s' "$want" >"$stamp" || return 1
	fi
	mig_log "building $dir"
	ninja -C "$dir" || return 1
}

MIG_HUGEPAGES_DIR=/sys/kernel/mm/hugepages/hugepages-2048kB

# Free 2 MiB huge pages nobody has reserved yet.
mig__hugepages_avail() {
	local free rsvd
	free=$(cat "$MIG_HUGEPAGES_DIR/free_hugepages" 2>/dev/null || echo 0)
	rsvd=$(cat "$MIG_HUGEPAGES_DIR/resv_hugepages" 2>/dev/null || echo 0)
	echo $((free - rsvd))
}

# Makes the host ready for the engine and its tests: enough free 2 MiB huge pages,
# tracefs mounted, no limit on locked memory. Problems are reported, not fatal: a test
# that needs what is missing says so and skips.
mig_host_prep() {
	local total avail want
	avail=$(mig__hugepages_avail)
	if ((avail < MIG_HUGEPAGES_WANTED)); then
		total=$(cat "$MIG_HUGEPAGES_DIR/nr_hugepages" 2>/dev/null || echo 0)
		want=$((total + MIG_HUGEPAGES_WANTED - avail))
		mig_log "raising the 2M huge page pool $total -> $want"
		# Compacting first makes contiguous 2 MiB blocks easier to find.
		{ echo 1 >/proc/sys/vm/compact_memory; } 2>/dev/null || true
		{ echo "$want" >"$MIG_HUGEPAGES_DIR/nr_hugepages"; } 2>/dev/null || true
		avail=$(mig__hugepages_avail)
		((avail >= MIG_HUGEPAGES_WANTED)) ||
			mig_log "warning: only $avail free 2M huge pages (wanted $MIG_HUGEPAGES_WANTED); hugetlb tests will skip"
	fi

	if ! grep -qs ' /sys/kernel/tracing tracefs ' /proc/mounts; then
		mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null ||
			mig_log "warning: could not mount tracefs at /sys/kernel/tracing"
	fi

	if ! ulimit -l unlimited 2>/dev/null; then
		ulimit -l "$(ulimit -H -l)" 2>/dev/null || true
		mig_log "warning: could not lift the locked-memory limit (stays at $(ulimit -l) KiB)"
	fi
}

# QEMU's own QMP library (python/qemu/qmp of QEMU's source), for the qemu.qmp case of
# tests/integration/test_libvirt.py. It is no Debian binary package, so it comes from
# the source package: a deb-src entry for bookworm on the mirror this host already uses,
# kept in a private apt configuration under the cache (the host's sources stay as they
# are), `apt-get source --download-only qemu`, and only python/qemu/qmp extracted from
# the orig tarball. The test looks in MIG_QEMU_QMP_DIR (default below). Idempotent: once
# extracted (or when python3 already imports qemu.qmp) it returns at once. A failure is
# reported and leaves no half-extracted tree; the test case then fails naming this step.
MIG_QEMU_QMP_DIR=${MIG_QEMU_QMP_DIR:-/var/cache/mig/qemu-qmp}

mig__debian_mirror() {
	local m
	m=$(grep -hoE '^(URIs:|deb) +[a-z]+://[^ ]+/debian/?( |$)' /etc/apt/sources.list \
		/etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
		grep -oE '[a-z]+://[^ ]+' | head -n1)
	echo "${m:-http://deb.debian.org/debian}"
}

mig_fetch_qemu_qmp() {
	local dir=$MIG_QEMU_QMP_DIR cache apt_opts tarball t0 mirror
	[[ -f $dir/qemu/qmp/__init__.py ]] && return 0
	python3 -c 'import qemu.qmp' 2>/dev/null && return 0
	t0=$SECONDS
	cache=$(dirname "$dir")/qemu-src
	mirror=$(mig__debian_mirror)
	mkdir -p "$cache/lists/partial" "$cache/archives/partial" "$cache/dl" || return 1
	printf 'deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s bookworm main\n' \
		"$mirror" >"$cache/sources.list"
	apt_opts=(-o "Dir::Etc::SourceList=$cache/sources.list" -o "Dir::Etc::SourceParts=/nonexistent"
		-o "Dir::State::Lists=$cache/lists" -o "Dir::Cache=$cache" -o "APT::Sandbox::User=root")
	mig_log "fetching QEMU's python/qemu/qmp from Debian bookworm's qemu source ($mirror)"
	apt-get -qq "${apt_opts[@]}" update || { mig_log "apt-get update of the deb-src entry failed"; return 1; }
	tarball=$(find "$cache/dl" -maxdepth 1 -name 'qemu_*.orig.tar.*' | head -n1)
	if [[ -z $tarball ]]; then
		(cd "$cache/dl" && apt-get -qq "${apt_opts[@]}" source --download-only qemu) ||
			{ mig_log "apt-get source --download-only qemu failed"; return 1; }
		tarball=$(find "$cache/dl" -maxdepth 1 -name 'qemu_*.orig.tar.*' | head -n1)
	fi
	[[ -n $tarball ]] || { mig_log "no qemu orig tarball in $cache/dl"; return 1; }
	rm -rf "$dir.tmp" && mkdir -p "$dir.tmp" || return 1
	tar -xf "$tarball" -C "$dir.tmp" --no-same-owner --strip-components=2 --wildcards '*/python/qemu/qmp/*' ||
		{ rm -rf "$dir.tmp"; mig_log "python/qemu/qmp not found in $tarball"; return 1; }
	[[ -f $dir.tmp/qemu/qmp/__init__.py ]] || { rm -rf "$dir.tmp"; mig_log "no qemu/qmp in $tarball"; return 1; }
	rm -rf "$dir" && mv "$dir.tmp" "$dir" || return 1
	mig_log "qemu.qmp ready in $dir ($((SECONDS - t0)) s)"
}
