#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# debug-kernel.sh [build|guest]: make debug-check, and make check's debug
# lane. Build a debug kernel from
# Debian's linux-source-6.12: x86_64_defconfig, kvm_guest.config and
# scripts/debug-kernel.config (KASAN, PROVE_LOCKING, DEBUG_ATOMIC_SLEEP,
# UBSAN, KMEMLEAK and what the test guest needs). The build is cached in
# $ICH9SMI_CACHE/debug/ and redone only when the source package or the fragment
# change; the kernel is installed in $ICH9SMI_CACHE/kernels/<release>/ as
# scripts/fetch.sh installs Debian's. Then build ich9smi.ko against it and
# run the check job (every selftest, a kmemleak scan at the end) in a guest
# with scripts/vm.sh (job "debug": the check job, where fail_nth_test must
# run, not skip), which fails on any KASAN, lockdep, UBSAN, sleeping in
# atomic context or kmemleak report.
#
# Without an argument (make debug-check) it installs what is missing, does
# all of that with its own results and summary. "build" only builds (or
# finds cached) the kernel, and "guest" only builds the module and runs the
# guest; both record into the caller's results (make check, which has
# built the selftests).
#
# The compile runs at nice 19. ICH9SMI_VM_TIMEOUT and ICH9SMI_TEST_TIMEOUT
# default higher than for make check: the checkers slow the guest down.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

case $#:${1:-} in
0: | 1:build | 1:guest) ;;
*) die "usage: $0 [build|guest]" ;;
esac
stage=${1:-all}

top=$ICH9SMI_CACHE/debug
tree=$top/linux
fragment=$ICH9SMI_ROOT/scripts/debug-kernel.config
tarball=/usr/src/$KSRC_PKG.tar.xz
logs=$ICH9SMI_CACHE/runs/debug
mkdir -p "$top" "$logs"
if [ "$stage" = all ]; then
	ICH9SMI_RESULTS=$logs/results
	ICH9SMI_TIMES=$logs/times
	: >"$ICH9SMI_RESULTS"
	: >"$ICH9SMI_TIMES"
	export ICH9SMI_RESULTS ICH9SMI_TIMES
fi
export ICH9SMI_VM_TIMEOUT=${ICH9SMI_VM_TIMEOUT:-1800}
export ICH9SMI_TEST_TIMEOUT=${ICH9SMI_TEST_TIMEOUT:-900}
# One build at a time in the tree.
exec 9>"$top/lock"
flock 9

kmake() {
	nice -n 19 make -C "$tree" -j "$(nproc)" "$@"
}

# step NAME LOG CMD...: run CMD into LOG; on failure show its end, stop.
step() {
	local name=$1 log=$2

	shift 2
	if ! "$@" >"$log" 2>&1; then
		tail -n 40 "$log" | sed 's/^/    /'
		result fail "debug kernel: $name" "see $log"
		exit 1
	fi
}

# The whole source tree, extracted again when the package changes.
extract() {
	local ver

	ver=$(dpkg-query -W -f='${Version}' "$KSRC_PKG")
	[ "$(cat "$tree/.ich9smi-source" 2>/dev/null)" != "$ver" ] || return 0
	msg "debug kernel: extracting $tarball"
	rm -rf "$tree"
	mkdir -p "$tree"
	nice -n 19 tar -xJf "$tarball" -C "$tree" --strip-components=1
	printf '%s\n' "$ver" >"$tree/.ich9smi-source"
}

# defconfig + kvm_guest.config + the fragment; every line of the fragment
# must hold afterwards (a missing dependency would drop it silently).
configure() {
	local line missing=()

	(cd "$tree" && scripts/kconfig/merge_config.sh -m \
		arch/x86/configs/x86_64_defconfig \
		kernel/configs/kvm_guest.config "$fragment") >/dev/null
	kmake olddefconfig >/dev/null
	while IFS= read -r line; do
		case $line in
		CONFIG_* | "# CONFIG_"*" is not set") ;;
		*) continue ;;
		esac
		grep -qxF -- "$line" "$tree/.config" || missing+=("$line")
	done <"$fragment"
	if [ ${#missing[@]} -ne 0 ]; then
		printf '    %s\n' "${missing[@]}"
		result fail "debug kernel: config" "these lines did not survive olddefconfig"
		exit 1
	fi
}

# What the cached build was made from.
build_key() {
	printf '%s %s\n' "$(cat "$tree/.ich9smi-source")" \
		"$(sha256sum <"$fragment" | cut -d' ' -f1)"
}

# Install image and modules where scripts/vm.sh looks for a kernel.
install_kernel() {
	local kver=$1 root

	root=$(kernel_dir "$kver")/root
	rm -rf "$root"
	mkdir -p "$root/boot"
	cp "$tree/arch/x86/boot/bzImage" "$root/boot/vmlinuz-$kver"
	kmake INSTALL_MOD_PATH="$root" INSTALL_MOD_STRIP=1 modules_install \
		>/dev/null
	depmod -b "$root" "$kver"
}

build_kernel() {
	local kver start

	extract
	if [ "$(cat "$top/built" 2>/dev/null)" = "$(build_key)" ]; then
		kver=$(kmake -s kernelrelease)
		result pass "debug kernel: build" "$kver, cached"
		printf '%s\n' "$kver" >"$top/release"
		return 0
	fi
	rm -f "$top/built"
	configure
	kver=$(kmake -s kernelrelease)
	msg "debug kernel: building $kver at nice 19 ($(nproc) jobs), log in $logs/kernel.log"
	start=$EPOCHREALTIME
	step build "$logs/kernel.log" kmake bzImage modules
	timing "debug kernel: build" "$(since "$start")"
	step install "$logs/install.log" install_kernel "$kver"
	build_key >"$top/built"
	printf '%s\n' "$kver" >"$top/release"
	result pass "debug kernel: build" "$kver in $(since "$start")s"
}

# The module against the debug tree, then the guest.
run_guest() {
	local kver

	kver=$(cat "$top/release")
	# From scratch, as make check does: kbuild goes by modification times.
	KDIR=$tree "$ICH9SMI_ROOT/scripts/module.sh" clean >/dev/null 2>&1 || true
	step "ich9smi.ko" "$logs/module.log" \
		env KDIR="$tree" "$ICH9SMI_ROOT/scripts/module.sh"
	"$ICH9SMI_ROOT/scripts/vm.sh" "$kver" debug
}

case $stage in
build)
	build_kernel
	;;
guest)
	[ -f "$top/built" ] || die "no debug kernel built ($0 build)"
	run_guest
	;;
all)
	"$ICH9SMI_ROOT/scripts/deps.sh"
	build_kernel
	step selftests "$logs/selftests.log" \
		"$ICH9SMI_ROOT/scripts/selftests.sh"
	run_guest || true
	print_timings
	summary ""
	;;
esac
