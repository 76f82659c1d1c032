#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Install what the build and the test guest need, from Debian's archive.
# Only missing packages are installed, so a re-run costs a dpkg query.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

# Tools for building, checking and booting; kernel headers are added below.
packages=(
	make gcc libc6-dev perl rsync
	sparse shellcheck "$KSRC_PKG"
	qemu-system-x86 ovmf busybox-static cpio kmod xz-utils
	# the test guest applies packaging/60-ich9smi.rules with udevd
	udev
	gnuplot-nox
	# the in-tree build in linux-source (scripts/intree.sh) and dkms
	flex bison bc libelf-dev libssl-dev dkms
	# the series leaves the out-of-tree code out (scripts/patches.sh)
	unifdef
	# the trixie chroot that builds Debian 13's kernels' modules
	debootstrap
	# the documentation check (scripts/doccheck.py)
	python3-sphinx
	# QEMU with the project's series (scripts/qemu.sh); flex and bison
	# are above
	meson ninja-build pkg-config libglib2.0-dev libpixman-1-dev
	zlib1g-dev libcap-ng-dev libattr1-dev libfdt-dev
	# the UEFI application of the multi-vCPU firmware test
	gnu-efi
)

installed() {
	[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = \
	  'install ok installed' ]
}

export DEBIAN_FRONTEND=noninteractive

# A fresh machine may have no package lists yet.
if [ -z "$(apt-cache pkgnames linux-image-6.)" ]; then
	apt-get update -q
fi

# Debian 13's lists, private to the cache; they name its kernels.
trixie_apt_update

# Only Debian 12's own kernels' headers go on the host: they pull in no
# kernel image. Debian 13's are unpacked into the trixie chroot (fetch.sh).
kernels=$(debian_kernels)
for kver in $kernels; do
	[ "$(kernel_suite "$kver")" != host ] || packages+=("linux-headers-$kver")
done

missing=()
for pkg in "${packages[@]}"; do
	installed "$pkg" || missing+=("$pkg")
done

if [ ${#missing[@]} -eq 0 ]; then
	msg "deps: all ${#packages[@]} packages present"
	exit 0
fi
msg "deps: installing ${missing[*]}"
[ "$(id -u)" -eq 0 ] || die "not root: install these packages: ${missing[*]}"
if ! apt-get install -y -q --no-install-recommends "${missing[@]}"; then
	# The lists may be older than the archive (a kernel ABI bump).
	apt-get update -q
	apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
