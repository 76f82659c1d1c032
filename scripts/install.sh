#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# install.sh install|uninstall: "make install" and "make uninstall".
#
# install builds ich9smi.ko for one kernel (scripts/module.sh) and installs
#   $INSTALL_MOD_PATH/lib/modules/$KVER/updates/drivers/virt/ich9smi/ich9smi.ko
#     (kbuild's modules_install with INSTALL_MOD_DIR=updates, compressed and
#     signed as the kernel's config asks, then depmod),
#   $DESTDIR/usr/include/linux/ich9smi.h (the UAPI header) and
#   $DESTDIR/etc/udev/rules.d/60-ich9smi.rules (/dev/ich9smi for group kvm,
#     mode 0660; see packaging/).
# uninstall removes exactly these, the directories install created below
# updates/ if they are left empty, and runs depmod again.
#
# The kernel: KDIR (a configured kernel build tree; its release is KVER) or
# KVER (default: the running kernel; KDIR then /lib/modules/$KVER/build).
# INSTALL_MOD_PATH and DESTDIR, empty by default, make a throw-away root.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

action=${1:-}
case $action in
install | uninstall) ;;
*) die "usage: $0 install|uninstall" ;;
esac

imp=${INSTALL_MOD_PATH:-}
destdir=${DESTDIR:-}
RULES=60-ich9smi.rules
header=$destdir/usr/include/linux/ich9smi.h
rules=$destdir/etc/udev/rules.d/$RULES
# Below lib/modules/$kver: what modules_install writes for this tree.
MODDIR=updates/drivers/virt/ich9smi

# Sets kdir and kver from KDIR and KVER.
pick_kernel() {
	if [ -n "${KDIR:-}" ]; then
		kdir=$KDIR
		kver=$(kdir_release "$kdir")
		[ -n "$kver" ] ||
			die "KDIR=$kdir is not a configured and prepared kernel build tree"
		[ -z "${KVER:-}" ] || [ "$KVER" = "$kver" ] ||
			die "KVER=$KVER but KDIR=$kdir is for $kver"
	else
		kver=${KVER:-$(uname -r)}
		kdir=/lib/modules/$kver/build
	fi
}

run_depmod() {
	local base=${imp:-/}

	if [ ! -d "$base/lib/modules/$kver" ]; then
		return 0
	fi
	msg "install: depmod${imp:+ -b $imp} $kver"
	depmod -b "$base" "$kver"
}

# modules_install signs with the key the kernel's config names; a
# distribution's headers do not have it, so sign only when it is there.
sign_args() {
	local key

	key=$(sed -n 's/^CONFIG_MODULE_SIG_KEY="\(.*\)"$/\1/p' "$kdir/.config")
	grep -qx 'CONFIG_MODULE_SIG_ALL=y' "$kdir/.config" || return 0
	case $key in
	pkcs11:*) return 0 ;;
	/*) [ -f "$key" ] && return 0 ;;
	*) [ -f "$kdir/$key" ] && return 0 ;;
	esac
	msg "install: not signing the module: no key '$key' in $kdir" >&2
	printf '%s\n' CONFIG_MODULE_SIG_ALL=
}

do_install() {
	local build args

	KDIR=$kdir "$ICH9SMI_ROOT/scripts/module.sh"
	build=$(build_dir "$kver")
	mapfile -t args < <(sign_args)
	make -C "$kdir" M="$build" CONFIG_ICH9SMI=m ICH9SMI_OOT=y \
		INSTALL_MOD_PATH="$imp" INSTALL_MOD_DIR=updates \
		"${args[@]}" modules_install
	# kbuild runs depmod only when it finds the kernel's System.map.
	run_depmod
	install -D -m 644 "$ICH9SMI_ROOT/include/uapi/linux/ich9smi.h" "$header"
	install -D -m 644 "$ICH9SMI_ROOT/packaging/$RULES" "$rules"
	msg "install: ich9smi for $kver in ${imp%/}/lib/modules/$kver/$MODDIR/, $header, $rules"
	if [ -z "$destdir" ] && command -v udevadm >/dev/null &&
	   [ -d /run/udev ]; then
		udevadm control --reload-rules || true
	fi
}

do_uninstall() {
	local dir=${imp%/}/lib/modules/$kver/$MODDIR sub

	rm -f "$dir"/ich9smi.ko "$dir"/ich9smi.ko.{gz,xz,zst}
	# The directories below updates/ that modules_install made, and
	# updates/ itself, if nothing else is in them.
	sub=$MODDIR
	while [ "$sub" != . ]; do
		rmdir --ignore-fail-on-non-empty "${imp%/}/lib/modules/$kver/$sub" 2>/dev/null || true
		sub=$(dirname "$sub")
	done
	run_depmod
	rm -f "$header" "$rules"
	msg "uninstall: removed ich9smi for $kver, $header and $rules"
}

pick_kernel
"do_$action"
