#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# module.sh [KBUILD ARGS...]: build drivers/virt/ich9smi/ich9smi.ko out of
# tree against $KDIR, or, without KDIR, against the headers of each Debian
# kernel under test. kbuild writes its objects next to the sources, so each
# kernel gets its own copy of them in $ICH9SMI_CACHE/build/<release>/ and builds for
# different kernels never mix objects.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

# What kbuild reads from this repository, relative to its top.
SOURCES=(Kbuild drivers include)

# The source tree behind a build tree: Debian's headers and O= builds have a
# Makefile that includes the real one.
kdir_srctree() {
	local src

	src=$(sed -n 's|^include \(/.*\)/Makefile$|\1|p' "$1/Makefile" | head -n 1)
	printf '%s\n' "${src:-$1}"
}

# check_kdir KDIR [SYSROOT]: SYSROOT is the root the tree's absolute paths
# are relative to (the trixie chroot's, for Debian 13's headers).
check_kdir() {
	local kdir=$1 sysroot=${2:-} src

	[ -f "$kdir/Makefile" ] ||
		die "KDIR=$kdir is not a kernel build tree (no Makefile there). For a Debian kernel run 'make deps'; otherwise point KDIR at a configured, prepared kernel tree."
	if [ ! -f "$kdir/.config" ] || [ -z "$(kdir_release "$kdir")" ]; then
		die "KDIR=$kdir is not configured and prepared (need .config and include/generated/utsrelease.h: run 'make olddefconfig modules_prepare' there)"
	fi
	grep -Eq '^CONFIG_KVM=[ym]$' "$kdir/.config" ||
		die "KDIR=$kdir lacks KVM: CONFIG_KVM is not set in its .config, and ich9smi extends KVM"
	src=$(kdir_srctree "$kdir")
	[ "$src" = "$kdir" ] || src=$sysroot$src
	[ -f "$src/include/linux/kvm_host.h" ] ||
		die "KDIR=$kdir lacks the KVM headers: no $src/include/linux/kvm_host.h"
}

# build KDIR KVER [KBUILD ARGS...]: KDIR as the host sees it; KVER, when
# it is a Debian kernel under test, picks the toolchain (toolchain_run).
build() {
	local kdir=$1 kver=$2 dest inside=$1 sysroot=

	shift 2
	[ "$(kernel_suite "${kver:-host}")" = host ] ||
		sysroot=$(toolchain_root)
	check_kdir "$kdir" "$sysroot"
	dest=$(build_dir "$(kdir_release "$kdir")")
	mkdir -p "$dest"
	(cd "$ICH9SMI_ROOT" &&
	 rsync -a --delete --prune-empty-dirs --include='*/' \
		--include='*.[chS]' --include=Kbuild --include=Makefile \
		--include=Kconfig --exclude='*' "${SOURCES[@]}" "$dest/")
	[ -z "$kver" ] || inside=$(kernel_headers_inside "$kver")
	toolchain_run "${kver:-host}" make -C "$inside" M="$dest" \
		CONFIG_ICH9SMI=m ICH9SMI_OOT=y -j "$(nproc)" "$@"
}

# KDIR: any kernel build tree, with the host's compiler; KVER: one Debian
# kernel under test; neither: every Debian kernel under test.
if [ -n "${KDIR:-}" ]; then
	build "$KDIR" "" "$@"
else
	kernels=${KVER:-$(debian_kernels)}
	for kver in $kernels; do
		build "$(kernel_headers "$kver")" "$kver" "$@"
	done
fi
