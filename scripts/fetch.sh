#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Fill the cache: the guest kernels under test, unpacked from Debian's
# unsigned image packages (downloaded, never installed: installing would
# rebuild the host's initramfs), and the few files of the kernel sources the
# checks and the selftests use (checkpatch.pl, the kselftest framework, the
# kernel files the in-tree series patches). Each piece is redone only when
# its package version changes. (scripts/intree.sh extracts the whole tree.)
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

# Files taken from the kernel source package, relative to its top directory.
KSRC_FILES=(
	scripts/checkpatch.pl
	scripts/spelling.txt
	scripts/const_structs.checkpatch
	tools/testing/selftests/kselftest.h
	tools/testing/selftests/kselftest_harness.h
	tools/testing/selftests/lib.mk
	# what scripts/patches.sh reads to write the in-tree series
	virt/kvm/kvm_main.c
	include/linux/export.h
	Documentation/userspace-api/ioctl/ioctl-number.rst
	drivers/virt/Kconfig
	drivers/virt/Makefile
	MAINTAINERS
	Documentation/virt/index.rst
	tools/testing/selftests/Makefile
)

# Whether every file above is there: the list grows now and then.
sources_complete() {
	local f

	for f in "${KSRC_FILES[@]}"; do
		[ -f "$KSRC_DIR/$f" ] || return 1
	done
}

fetch_kernel() {
	local kver=$1 pkg="linux-image-$1-unsigned" dir ver deb

	dir=$(kernel_dir "$kver")
	ver=$(apt_candidates "$pkg" | cut -d" " -f2)
	[ -n "$ver" ] || die "$pkg is not in the apt lists"
	if [ "$(cat "$dir/version" 2>/dev/null)" = "$ver" ]; then
		msg "fetch: $kver ($ver) cached"
		return 0
	fi
	mkdir -p "$ICH9SMI_CACHE/apt"
	deb="$ICH9SMI_CACHE/apt/${pkg}_${ver//:/%3a}_amd64.deb"
	if [ ! -f "$deb" ]; then
		msg "fetch: downloading $pkg $ver"
		(cd "$ICH9SMI_CACHE/apt" &&
		 apt-get download -q -o APT::Sandbox::User=root "$pkg=$ver")
	fi
	msg "fetch: unpacking $pkg"
	rm -rf "$dir"
	mkdir -p "$dir"
	dpkg-deb -x "$deb" "$dir/root"
	depmod -b "$dir/root" "$kver"
	printf '%s\n' "$ver" >"$dir/version"
}

fetch_sources() {
	local tarball="/usr/src/$KSRC_PKG.tar.xz" ver

	ver=$(dpkg-query -W -f='${Version}' "$KSRC_PKG")
	if [ "$(cat "$KSRC_DIR/version" 2>/dev/null)" = "$ver" ] &&
	   sources_complete; then
		msg "fetch: $KSRC_PKG ($ver) cached"
		return 0
	fi
	msg "fetch: extracting ${#KSRC_FILES[@]} files from $tarball"
	rm -rf "$KSRC_DIR"
	mkdir -p "$KSRC_DIR"
	tar -xJf "$tarball" -C "$KSRC_DIR" --strip-components=1 \
		--occurrence=1 "${KSRC_FILES[@]/#/$KSRC_PKG/}"
	printf '%s\n' "$ver" >"$KSRC_DIR/version"
}

fetch_sources
for kver in "$@"; do
	fetch_kernel "$kver"
done
