#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# packaging.sh KVER: make check's packaging checks for the Debian kernel
# KVER (headers installed, image in the cache), each through result():
#
#  - "make install" into a throw-away root (a copy of the image's
#    /lib/modules/KVER and the empty directories a system has): the module
#    lands in updates/ and depmod indexes it after kvm, the UAPI header and
#    the udev rule land as shipped; "make uninstall" leaves the root exactly
#    as it was;
#  - scripts/dkms.sh with throw-away trees: dkms add, build and install
#    against KVER's headers, then remove; the host's own dkms trees and
#    modules directory do not change. The module dkms installed is kept in
#    $ICH9SMI_CACHE/dkms/module/ for the guest (vm.sh KVER dkms).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

[ $# -eq 1 ] || die "usage: $0 KVER"
kver=$1
headers=/usr/src/linux-headers-$kver
logs=${ICH9SMI_LOGS:-$ICH9SMI_CACHE/runs/packaging}
failed=0

mkdir -p "$logs"

record() {
	result "$@"
	[ "$1" != fail ] || failed=1
}

# A listing of a tree with every file's checksum, to compare two states.
manifest() {
	(cd "$1" && find . -printf '%y %P %l\n' | sort &&
	 find . -type f -exec sha256sum {} + | sort -k 2)
}

# The throw-away root: the image's modules (hard links, the index files
# copied, since depmod replaces them) and the directories that
# make install expects a system to have.
make_root() {
	local root=$1 mods

	mods=$(kernel_dir "$kver")/root/lib/modules/$kver
	mkdir -p "$root/lib/modules" "$root/usr/include/linux" \
		"$root/etc/udev/rules.d"
	cp -al "$mods" "$root/lib/modules/"
	cp --remove-destination "$mods"/modules.* "$root/lib/modules/$kver/"
}

# make install builds in a cache of its own: the guests load the module of
# $ICH9SMI_CACHE/build/ while this runs.
check_install() {
	local work root log=$logs/install.log before ko deps

	work=$(mktemp -d "$ICH9SMI_CACHE/install-test.XXXXXX")
	# shellcheck disable=SC2064 # expand now: work is local
	trap "rm -rf '$work'" EXIT
	root=$work/root
	make_root "$root"
	before=$(manifest "$root")

	if ! ICH9SMI_CACHE=$work/cache make -C "$ICH9SMI_ROOT" install \
		KDIR="$headers" INSTALL_MOD_PATH="$root" DESTDIR="$root" \
		>"$log" 2>&1; then
		tail -n 30 "$log" | sed 's/^/    /'
		record fail "$kver: make install (throw-away root)" "see above"
		return
	fi
	ko=$(find "$root/lib/modules/$kver/updates" -name 'ich9smi.ko*' 2>/dev/null)
	if [ -z "$ko" ]; then
		record fail "$kver: make install (throw-away root)" "no ich9smi.ko below updates/"
	elif ! cmp -s "$root/usr/include/linux/ich9smi.h" \
		     "$ICH9SMI_ROOT/include/uapi/linux/ich9smi.h"; then
		record fail "$kver: make install (throw-away root)" "/usr/include/linux/ich9smi.h is not the UAPI header"
	elif ! cmp -s "$root/etc/udev/rules.d/60-ich9smi.rules" \
		     "$ICH9SMI_ROOT/packaging/60-ich9smi.rules"; then
		record fail "$kver: make install (throw-away root)" "/etc/udev/rules.d/60-ich9smi.rules is not packaging's"
	else
		record pass "$kver: make install (throw-away root)" \
			"${ko#"$root"}, ich9smi.h, 60-ich9smi.rules"
	fi

	# What modprobe would do: load kvm, then the module from updates/.
	deps=$(modprobe -d "$root" -S "$kver" --show-depends ich9smi 2>&1 |
	       sed -n 's|^insmod .*/lib/modules/[^/]*/\([^ ]*\).*|\1|p' | paste -sd ' ')
	case $deps in
	*kernel/arch/x86/kvm/kvm.ko*updates/*ich9smi.ko*)
		record pass "$kver: depmod indexes ich9smi" "modprobe loads: $deps"
		;;
	*)
		record fail "$kver: depmod indexes ich9smi" "modprobe --show-depends: '$deps'"
		;;
	esac

	if ! make -C "$ICH9SMI_ROOT" uninstall KVER="$kver" \
		INSTALL_MOD_PATH="$root" DESTDIR="$root" >>"$log" 2>&1; then
		tail -n 30 "$log" | sed 's/^/    /'
		record fail "$kver: make uninstall leaves the root as it was" "see above"
	elif ! diff -u <(printf '%s\n' "$before") <(manifest "$root") \
		>"$logs/install.diff"; then
		head -n 20 "$logs/install.diff" | sed 's/^/    /'
		record fail "$kver: make uninstall leaves the root as it was" "see above"
	else
		record pass "$kver: make uninstall leaves the root as it was"
	fi
	rm -rf "$work"
	trap - EXIT
}

# What dkms may touch on the host when it is not told otherwise.
host_dkms_state() {
	find /var/lib/dkms /usr/src /lib/modules/"$kver" -maxdepth 2 \
		-printf '%y %p %s %T@\n' 2>/dev/null | sort
}

check_dkms() {
	local top=$ICH9SMI_CACHE/dkms root log=$logs/dkms.log before ko left

	root=$top/root
	before=$(host_dkms_state)
	rm -rf "$root" "$top/module"
	mkdir -p "$top/module"
	if ! KDIR=$headers "$ICH9SMI_ROOT/scripts/dkms.sh" --root "$root" \
		install "$kver" >"$log" 2>&1; then
		tail -n 30 "$log" | sed 's/^/    /'
		record fail "$kver: dkms add, build, install" "see above"
		return
	fi
	ko=$(find "$root/lib/modules/$kver/updates/dkms" -name 'ich9smi.ko*' 2>/dev/null)
	if [ -z "$ko" ] ||
	   [ "$(modinfo -F vermagic "$ko" | cut -d' ' -f1)" != "$kver" ]; then
		record fail "$kver: dkms add, build, install" "no ich9smi.ko for $kver in updates/dkms/"
		return
	fi
	cp "$ko" "$top/module/"
	record pass "$kver: dkms add, build, install" "throw-away trees, ${ko#"$root"}"

	if ! "$ICH9SMI_ROOT/scripts/dkms.sh" --root "$root" remove "$kver" \
		>>"$log" 2>&1; then
		tail -n 30 "$log" | sed 's/^/    /'
		record fail "$kver: dkms remove" "see above"
	elif left=$(find "$root" -name 'ich9smi*' | head -n 3) && [ -n "$left" ]; then
		record fail "$kver: dkms remove" "left $left"
	else
		record pass "$kver: dkms remove"
	fi
	rm -rf "$root"

	if [ "$(host_dkms_state)" = "$before" ]; then
		record pass "$kver: dkms left the host's trees alone" \
			"/var/lib/dkms, /usr/src, /lib/modules/$kver"
	else
		diff <(printf '%s\n' "$before") <(host_dkms_state) | head -n 10 |
			sed 's/^/    /'
		record fail "$kver: dkms left the host's trees alone" "see above"
	fi
}

[ -f "$headers/Makefile" ] || die "no headers for $kver in $headers (make deps)"
# Runs of make check at the same time share $ICH9SMI_CACHE/dkms.
mkdir -p "$ICH9SMI_CACHE/dkms"
exec 9>"$ICH9SMI_CACHE/dkms/lock"
flock 9
check_install
check_dkms
exit "$failed"
