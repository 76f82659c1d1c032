#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# toolchain.sh: make (once) the cached trixie chroot that builds modules for
# Debian 13's kernels (its 6.12 and the 7.x of trixie-backports). They were
# built with gcc-14, and their headers' host tools (modpost, objtool,
# resolve_btfids) need trixie's glibc and pahole; Debian 12 has neither.
#
# The chroot is a debootstrap "minbase" of trixie plus TOOLCHAIN_PACKAGES,
# from the mirror the host's own apt sources name. It lives in
# $ICH9SMI_CACHE/toolchain/trixie-<hash>/, the hash of that package list
# and of the candidate versions of gcc-14, libc6 and dwarves, so that it is
# made anew when Debian 13 updates its compiler; toolchain/current names it. It is only ever entered through
# toolchain_run (lib.sh), in a private mount namespace, so nothing of it is
# mounted on the host afterwards.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

name=$(toolchain_name)
top=$ICH9SMI_CACHE/toolchain/$name
root=$top/root
if [ -f "$root/.ready" ]; then
	printf '%s\n' "$name" >"$ICH9SMI_CACHE/toolchain/current"
	msg "toolchain: trixie chroot cached ($name)"
	exit 0
fi
[ "$(id -u)" -eq 0 ] || die "toolchain: debootstrap needs root"
command -v debootstrap >/dev/null || die "toolchain: debootstrap is missing (make deps)"

archive=$(debian_mirror archive)
security=$(debian_mirror security)
umount_below "$top"
rm -rf --one-file-system "$top"
mkdir -p "$top"
msg "toolchain: debootstrap trixie from $archive into $top"
packages=$(IFS=,; printf '%s' "${TOOLCHAIN_PACKAGES[*]}")
# debootstrap mounts /proc and /sys in the chroot: in a mount namespace of
# its own, so that a killed run leaves nothing mounted on the host.
if ! unshare --mount --propagation private -- \
	debootstrap --variant=minbase --include="$packages" \
	trixie "$root" "$archive" >"$top/debootstrap.log" 2>&1; then
	tail -n 20 "$top/debootstrap.log" >&2
	die "toolchain: debootstrap failed (log: $top/debootstrap.log)"
fi
# The security suite too, for the record; the chroot is not updated in
# place: new versions of its key packages make a new chroot.
printf 'deb %s trixie main\ndeb %s trixie-security main\n' \
	"$archive" "$security" >"$root/etc/apt/sources.list"
rm -rf "$root/var/cache/apt/archives/"*.deb
date -u +%FT%TZ >"$root/.ready"
printf '%s\n' "$name" >"$ICH9SMI_CACHE/toolchain/current"
# Older chroots are not used again.
for old in "$ICH9SMI_CACHE"/toolchain/trixie-*; do
	[ "$old" = "$top" ] || [ ! -d "$old" ] || {
		umount_below "$old"
		rm -rf --one-file-system "$old"
	}
done
msg "toolchain: ready ($(du -sh "$top" | cut -f1))"
