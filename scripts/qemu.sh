#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# qemu.sh SERIES...: build Debian 12's QEMU, the source of the host's
# qemu-system-x86 (fetched with a private deb-src configuration in the
# cache, never installed), with the patches of each qemu/SERIES/ applied in
# turn on top of Debian's, for x86_64-softmmu only. The build is cached in
# $ICH9SMI_CACHE/qemu/SERIES+SERIES-<key>/, the key a hash of the source
# version, the patches and the configure options; it prints the path of its
# bin/qemu-system-x86_64, which finds its firmware and keymaps where the
# host's QEMU (the same Debian version) does. "qemu.sh outer ich9smi" is
# the one build that serves both as the test guest's QEMU and as the QEMU
# inside it.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

[ $# -ge 1 ] || die "usage: $0 SERIES... (directories of qemu/)"
series=$(IFS=+; printf '%s' "$*")
patch_files=()
for dir in "$@"; do
	[ -d "$ICH9SMI_ROOT/qemu/$dir" ] || die "no patch series qemu/$dir"
	patch_files+=("$ICH9SMI_ROOT/qemu/$dir"/*.patch)
done

# What the tests need: TCG and KVM, the q35 machine, 9p, no UI or docs.
CONFIGURE=(
	--prefix=/usr --target-list=x86_64-softmmu --disable-docs
	--firmwarepath=/usr/share/qemu:/usr/share/seabios:/usr/lib/ipxe/qemu
	--disable-werror --disable-user --enable-kvm --enable-tcg
	--enable-virtfs --disable-gtk --disable-sdl --disable-vnc
	--disable-spice --disable-opengl --disable-xen --disable-guest-agent
	--disable-tools --disable-capstone --disable-slirp
)

# Its build dependencies, which scripts/deps.sh installs.
for pkg in meson ninja-build pkg-config flex bison libglib2.0-dev \
	   libpixman-1-dev zlib1g-dev libcap-ng-dev libattr1-dev libfdt-dev; do
	[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null)" = "ii " ] ||
		die "$pkg is not installed: run scripts/deps.sh"
done

# A series that imports the UAPI header (linux-headers/linux/ich9smi.h, as
# QEMU's update-linux-headers.sh would) must carry this tree's.
for p in "${patch_files[@]}"; do
	grep -q '^+++ b/linux-headers/linux/ich9smi.h$' "$p" || continue
	awk '/^\+\+\+ b\/linux-headers\/linux\/ich9smi.h$/ { f = 1; next }
	     f && /^(diff|--) / { exit }
	     f && /^\+/ { print substr($0, 2) }' "$p" |
		cmp -s - "$ICH9SMI_ROOT/include/uapi/linux/ich9smi.h" ||
		die "$p: linux-headers/linux/ich9smi.h is not include/uapi/linux/ich9smi.h; regenerate the patch"
done

srcpkg=$(dpkg-query -W -f='${source:Package}' qemu-system-x86)
srcver=$(dpkg-query -W -f='${source:Version}' qemu-system-x86)
key=$({ printf '%s %s\n' "$srcpkg" "$srcver"
	printf '%s\n' "${CONFIGURE[@]}"
	cat "${patch_files[@]}"; } | sha256sum | cut -c1-12)
top=$ICH9SMI_CACHE/qemu
out=$top/$series-$key
if [ -x "$out/bin/qemu-system-x86_64" ]; then
	printf '%s\n' "$out/bin/qemu-system-x86_64"
	exit 0
fi

# Debian 12's sources, from the host's own mirrors.
srcapt=$ICH9SMI_CACHE/apt/bookworm-src
mapfile -t opts < <(private_apt_opts "$srcapt")
mkdir -p "$srcapt/lists/partial" "$srcapt/cache/archives/partial" "$top"
printf 'deb-src %s %s main\n' "$(debian_mirror archive)" bookworm \
	"$(debian_mirror archive)" bookworm-updates \
	"$(debian_mirror security)" bookworm-security >"$srcapt/sources.list"
apt-get "${opts[@]}" update -q --error-on=any >&2

work=$top/$series-$key.partial
rm -rf "$work"
mkdir -p "$work"
(cd "$work" &&
 apt-get "${opts[@]}" source -q --download-only "$srcpkg=$srcver" >&2 &&
 dpkg-source -x ./*.dsc src >&2)
for p in "${patch_files[@]}"; do
	(cd "$work/src" && patch -p1 --forward --quiet <"$p") ||
		die "$p does not apply to $srcpkg $srcver"
done
mkdir -p "$work/build"
(cd "$work/build" && ../src/configure "${CONFIGURE[@]}" >&2 &&
 nice make -j "$(nproc)" qemu-system-x86_64 >&2)
# QEMU 7.2 finds its data relative to its binary (../share/qemu from
# bin/): those paths lead to the host's.
mkdir -p "$out/bin" "$out/share" "$out/lib/ipxe"
cp "$work/build/qemu-system-x86_64" "$out/bin/"
for dir in share/qemu share/seabios lib/ipxe/qemu; do
	ln -s "/usr/$dir" "$out/$dir"
done
rm -rf "$work"
printf '%s\n' "$out/bin/qemu-system-x86_64"
