#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# dkms.sh [--root DIR] install|remove [KVER]: "make dkms" and
# "make dkms-remove".
#
# install copies what DKMS builds from (Kbuild, drivers/, include/ and
# dkms.conf) to /usr/src/ich9smi-<version>/, then runs dkms add, and dkms
# build and install for KVER (default: the running kernel; the headers in
# KDIR, default /lib/modules/KVER/build). remove runs dkms remove for every
# kernel and deletes that copy.
#
# --root DIR puts dkms's three trees below DIR (DIR/usr/src,
# DIR/var/lib/dkms, DIR/lib/modules), as make install's INSTALL_MOD_PATH
# does, with the signing key dkms makes in DIR/var/lib/dkms, and without
# dkms's depmod (DIR/lib/modules holds only what dkms installs): nothing
# outside DIR changes. make check uses it with a throw-away DIR.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

usage() {
	die "usage: $0 [--root DIR] install|remove [KVER]"
}

root=
if [ "${1:-}" = --root ]; then
	[ $# -ge 2 ] || usage
	root=$(realpath -m -- "$2")
	shift 2
fi
action=${1:-}
case $action in
install | remove) ;;
*) usage ;;
esac
kver=${2:-$(uname -r)}

name=ich9smi
version=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"$/\1/p' "$ICH9SMI_ROOT/dkms.conf")
[ -n "$version" ] || die "no PACKAGE_VERSION in dkms.conf"
command -v dkms >/dev/null || die "dkms is not installed (apt-get install dkms)"

src_tree=/usr/src
dkms_args=()
if [ -n "$root" ]; then
	src_tree=$root/usr/src
	dkms_args=(--sourcetree "$src_tree" --dkmstree "$root/var/lib/dkms"
		   --installtree "$root/lib/modules" --no-depmod)
	mkdir -p "$src_tree" "$root/var/lib/dkms" "$root/lib/modules"
	# dkms (3.0) takes these from the environment as well as from
	# /etc/dkms/framework.conf; without them it would make its key in
	# /var/lib/dkms.
	export mok_signing_key=$root/var/lib/dkms/mok.key
	export mok_certificate=$root/var/lib/dkms/mok.pub
fi
source=$src_tree/$name-$version

do_remove() {
	if [ -e "${root:-}/var/lib/dkms/$name/$version" ]; then
		dkms remove "${dkms_args[@]}" -m "$name" -v "$version" --all
	fi
	rm -rf "$source"
}

do_install() {
	local kargs=()

	[ -z "${KDIR:-}" ] || kargs=(--kernelsourcedir "$KDIR")
	# A new version of the same sources replaces the old.
	do_remove
	msg "dkms: copying the sources to $source"
	mkdir -p "$source"
	(cd "$ICH9SMI_ROOT" &&
	 rsync -a --prune-empty-dirs --include='*/' --include='*.[chS]' \
		--include=Kbuild --include=Makefile --include=Kconfig \
		--exclude='*' Kbuild drivers include "$source/" &&
	 cp dkms.conf "$source/")
	# dkms installs only for a kernel whose modules directory exists.
	[ -z "$root" ] || mkdir -p "$root/lib/modules/$kver"
	dkms add "${dkms_args[@]}" -m "$name" -v "$version"
	dkms build "${dkms_args[@]}" "${kargs[@]}" -m "$name" -v "$version" -k "$kver"
	dkms install "${dkms_args[@]}" "${kargs[@]}" -m "$name" -v "$version" -k "$kver"
}

"do_$action"
