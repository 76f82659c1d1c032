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

# Files taken from the kernel source package, relative to its top
# directory: the checkers, the kselftest framework, and the kernel files
# the in-tree series edits (for "make patches" against this version).
mapfile -t KSRC_FILES < <("$ICH9SMI_ROOT/scripts/patches.sh" --files)
KSRC_FILES+=(
	scripts/checkpatch.pl
	scripts/spelling.txt
	scripts/const_structs.checkpatch
	scripts/kernel-doc
	scripts/subarch.include
	tools/testing/selftests/kselftest/prefix.pl
	tools/testing/selftests/kselftest/runner.sh
	tools/testing/selftests/kselftest.h
	tools/testing/selftests/kselftest_harness.h
	tools/testing/selftests/lib.mk
)

# Whether every file above is there: the list grows now and then.
sources_complete() {
	local f

	for f in "${KSRC_FILES[@]}"; do
		[ -f "$KSRC_DIR/$f" ] || return 1
	done
}

# The packages a kernel's headers need besides their own: the common
# headers and the kbuild tools, named in its Depends.
headers_packages() {
	local kver=$1 suite

	suite=$(kernel_suite "$kver")
	printf '%s\n' "linux-headers-$kver"
	suite_apt "$suite" apt-cache show "linux-headers-$kver" |
		sed -n 's/^Depends: //p' | head -n 1 | tr ',' '\n' |
		sed -En 's/^ *(linux-(headers-[^ ]*-common|kbuild-[^ ]*)).*/\1/p'
}

# The image, its modules, and the modules' index, in the kernel's cache
# directory; Debian 13's headers in the trixie chroot.
fetch_kernel() {
	local kver=$1 dir suite pkgs debs ver deb root stamp out

	dir=$(kernel_dir "$kver")
	suite=$(kernel_suite "$kver")
	mapfile -t pkgs < <(image_packages "$kver")
	ver=$(apt_candidates --suite "$suite" "${pkgs[0]}" | cut -d" " -f2)
	[ -n "$ver" ] || die "${pkgs[0]} is not in the apt lists"
	if [ "$(cat "$dir/version" 2>/dev/null)" = "$ver" ]; then
		msg "fetch: $kver ($ver) cached"
	else
		out=$(download "$suite" "${pkgs[@]}") || exit 1
		mapfile -t debs <<<"$out"
		msg "fetch: unpacking ${pkgs[*]}"
		rm -rf "$dir"
		mkdir -p "$dir"
		for deb in "${debs[@]}"; do
			dpkg-deb -x "$deb" "$dir/root"
		done
		# Debian 13 ships modules in /usr/lib/modules (merged /usr).
		[ -e "$dir/root/lib" ] || ln -s usr/lib "$dir/root/lib"
		# and from 7.x keeps the image and its config there too.
		mkdir -p "$dir/root/boot"
		for f in vmlinuz config System.map; do
			[ -e "$dir/root/boot/$f-$kver" ] ||
				ln -s "../lib/modules/$kver/$f" "$dir/root/boot/$f-$kver"
		done
		depmod -b "$dir/root" "$kver"
		printf '%s\n' "$ver" >"$dir/version"
	fi
	[ "$suite" != host ] || return 0

	root=$(toolchain_root)
	stamp=$root/var/lib/ich9smi/headers-$kver
	if [ "$(cat "$stamp" 2>/dev/null)" = "$ver" ]; then
		msg "fetch: linux-headers-$kver ($ver) cached in the toolchain"
		return 0
	fi
	mapfile -t pkgs < <(headers_packages "$kver")
	out=$(download "$suite" "${pkgs[@]}") || exit 1
	mapfile -t debs <<<"$out"
	msg "fetch: unpacking ${pkgs[*]} into the toolchain"
	for deb in "${debs[@]}"; do
		dpkg-deb -x "$deb" "$root"
	done
	mkdir -p "$(dirname "$stamp")"
	printf '%s\n' "$ver" >"$stamp"
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
