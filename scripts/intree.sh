#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# intree.sh [KVER]: build the in-tree form of ich9smi for the Debian kernel
# KVER (default: the newest 7.x of trixie-backports, fetched if needed) the
# way a kernel developer would, from the patch series that
# scripts/patches.sh writes, with KVER's own compiler (the trixie chroot):
#
#  1. KVER's linux-source package (linux-source-7.3 for 7.3.4+deb13-amd64,
#     downloaded from Debian 13's archive, never installed) must be the
#     source of KVER's image (same Debian version), else the patched kvm.ko
#     could not replace Debian's;
#  2. the whole source tree is extracted into $ICH9SMI_CACHE/intree/linux/,
#     and the files the series touches, as shipped, into intree/pristine/;
#  3. the series is written to intree/series/ against those, checked with
#     checkpatch.pl --strict in the tree, and applied (git apply --check,
#     then git apply; whitespace errors fail);
#  4. the tree is configured with KVER's own .config (from its headers
#     package) plus CONFIG_ICH9SMI=m, prepared (olddefconfig,
#     modules_prepare) for release KVER, and given the headers package's
#     Module.symvers, so that the modversion CRCs match Debian's vmlinux;
#  5. kvm.ko, kvm-amd.ko and kvm-intel.ko are built (M=arch/x86/kvm), then
#     ich9smi.ko (M=drivers/virt/ich9smi) against the patched kvm.ko's
#     exports; the four modules are copied to intree/modules/;
#  6. the selftests are built the way kernel CI builds them, with
#     "make -C tools/testing/selftests TARGETS=ich9smi" after
#     "make headers".
#
# Cached: the extracted tree is kept while the package version stays the
# same. A new series replaces the old one in place (git apply -R of the
# series last applied), so only what it changes is rebuilt, and nothing is
# rebuilt when the series, the source and the config are those of the last
# build. Each step is reported through result(); build output goes to
# $ICH9SMI_LOGS/intree.*.log (default $ICH9SMI_CACHE/intree/logs/).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

[ $# -le 1 ] || die "usage: $0 [KVER]"
if [ $# -eq 1 ]; then
	kver=$1
else
	kver=$(ICH9SMI_KERNELS=$INTREE_SERIES debian_kernels)
	fetch_kernels "$kver"
fi
suite=$(kernel_suite "$kver")
# linux-source-<major>.<minor>
src_pkg=linux-source-$(sed -E 's/^([0-9]+\.[0-9]+).*/\1/' <<<"$kver")
headers=$(kernel_headers "$kver")
top=$(intree_dir)
tree=$top/linux
pristine=$top/pristine
state=$top/state
series=$top/series
modules=$(intree_modules_dir)
logs=${ICH9SMI_LOGS:-$top/logs}
tag="$kver: in-tree"
# KVM's modules, as built in the tree: the guest loads kvm and the vendor
# module its CPU needs.
KVM_MODULES=(kvm kvm-amd kvm-intel)

mkdir -p "$top" "$logs"
# Runs of make check at the same time share the tree.
exec 9>"$top/lock"
flock 9

# fail NAME DETAIL [LOG]: record the failure, show the log's end, stop.
fail() {
	result fail "$tag: $1" "$2"
	if [ -n "${3:-}" ] && [ -f "$3" ]; then
		tail -n 40 "$3" | sed 's/^/    /'
	fi
	exit 1
}

# run LOG CMD...: CMD's output goes to LOG.
run() {
	local log=$1

	shift
	"$@" >>"$log" 2>&1
}

kmake() {
	toolchain_run "$kver" make -C "$tree" -j "$(nproc)" "$@"
}

# 1. The source must be the image's: same Debian version of the package.
check_versions() {
	local src img hdr

	src=$(apt_candidates --suite "$suite" "$src_pkg" | cut -d' ' -f2)
	[ -n "$src" ] ||
		fail "source matches the kernel" "$src_pkg is not in the apt lists"
	img=$(cat "$(kernel_dir "$kver")/version" 2>/dev/null) ||
		fail "source matches the kernel" "$kver is not in the cache (scripts/fetch.sh $kver)"
	if [ "$src" != "$img" ]; then
		fail "source matches the kernel" \
			"$src_pkg is $src but $kver's image is $img: a kvm.ko built from other sources cannot replace the image's (update the apt lists and rerun)"
	fi
	src_version=$src
	result pass "$tag: source matches the kernel" "$src_pkg $src"
}

# 2. The whole tree, extracted once per package version. Extraction goes to
# a scratch directory first so that an interrupted one is never taken for
# a tree.
# Extracted again too when the series has come to touch a file of which no
# pristine copy was kept.
pristine_complete() {
	local f

	for f in $("$ICH9SMI_ROOT/scripts/patches.sh" --files); do
		[ -f "$pristine/$f" ] || return 1
	done
}

extract() {
	local deb scratch=$top/linux.partial f start=$EPOCHREALTIME

	if [ "$(cat "$state/source" 2>/dev/null)" = "$src_version" ] &&
	   [ -f "$tree/Makefile" ] && pristine_complete; then
		return 0
	fi
	deb=$(download "$suite" "$src_pkg")
	msg "intree: extracting $src_pkg into $tree"
	rm -rf "$tree" "$state" "$scratch" "$modules" "$pristine"
	mkdir -p "$scratch" "$state"
	dpkg-deb --fsys-tarfile "$deb" |
		tar -xO "./usr/src/$src_pkg.tar.xz" |
		tar -xJ -C "$scratch" --strip-components=1
	for f in $("$ICH9SMI_ROOT/scripts/patches.sh" --files); do
		mkdir -p "$pristine/$(dirname "$f")"
		cp "$scratch/$f" "$pristine/$f"
	done
	mv "$scratch" "$tree"
	printf '%s\n' "$src_version" >"$state/source"
	: >"$state/fresh"
	timing "$tag: extract $src_pkg" "$(since "$start")"
}

# git apply outside any repository: the cache may sit inside this one.
tree_git_apply() {
	(cd "$tree" && GIT_CEILING_DIRECTORIES=$top git apply "$@")
}

# 3. The series: written from this tree's sources against the pristine
# files that scripts/fetch.sh keeps, checked, and applied.
write_series() {
	local log=$logs/intree.series.log n

	: >"$log"
	run "$log" "$ICH9SMI_ROOT/scripts/patches.sh" "$pristine" "$series" ||
		fail "series written" "scripts/patches.sh failed" "$log"
	n=$(find "$series" -name '*.patch' | wc -l)
	result pass "$tag: series written" "$n patches in ${series#"$ICH9SMI_ROOT"/}"
	cat "$series"/*.patch >"$top/series.patch"
}

# A series' content: format-patch's commit ids and dates change with every
# run, so they are left out where series are compared.
series_content() {
	sed -e '/^From [0-9a-f]\{40\} /d' -e '/^Date: /d' "$1"
}

# The sha256 of a file, or of stdin.
sha() {
	sha256sum "$@" | cut -d' ' -f1
}

# checkpatch.pl of the tree (so that its tree checks run too); a series
# found clean is not checked again.
checkpatch_series() {
	local log=$logs/intree.checkpatch.log key

	key=$(series_content "$top/series.patch" | sha)
	if [ "$(cat "$state/checkpatch" 2>/dev/null)" = "$key" ]; then
		result pass "$tag: checkpatch --strict on the series" "cached"
		return 0
	fi
	rm -f "$state/checkpatch"
	if (cd "$tree" && perl scripts/checkpatch.pl --strict --quiet \
		--show-types "$series"/*.patch) >"$log" 2>&1; then
		printf '%s\n' "$key" >"$state/checkpatch"
		result pass "$tag: checkpatch --strict on the series"
	else
		sed 's/^/    /' "$log"
		result fail "$tag: checkpatch --strict on the series" "see above"
	fi
}

# The tree files a patch touches.
patch_files() {
	sed -n 's|^--- a/||p; s|^+++ b/||p' "$@" | sort -u
}

# Swapping series rewrites every file they touch; the ones that end up as
# they were get their old times back, so that make does not rebuild them.
keep_times() {
	local f

	rm -rf "$top/times"
	mkdir -p "$top/times"
	for f in $(patch_files "$@"); do
		[ ! -f "$tree/$f" ] ||
			(cd "$tree" && cp -p --parents "$f" "$top/times/")
	done
}

restore_times() {
	local f

	for f in $(cd "$top/times" && find . -type f); do
		! cmp -s "$top/times/$f" "$tree/$f" ||
			touch -r "$top/times/$f" "$tree/$f"
	done
	rm -rf "$top/times"
}

# Put the new series in place of the one applied before, if it differs.
apply_series() {
	local log=$logs/intree.apply.log new=$top/series.patch
	local old=$state/applied.patch

	: >"$log"
	if [ -f "$old" ] &&
	   cmp -s <(series_content "$old") <(series_content "$new"); then
		result pass "$tag: series applies" "applied already"
		return 0
	fi
	if [ -f "$old" ]; then
		keep_times "$old" "$new"
		if ! run "$log" tree_git_apply -R "$old"; then
			msg "intree: the series applied before does not revert; extracting again"
			rm -f "$state/source"
			extract
		fi
		rm -f "$old"
	fi
	# What git am would only warn about counts here. A tree left half
	# patched by an interrupted run is extracted again, once.
	if ! run "$log" tree_git_apply --check --whitespace=error-all "$new" &&
	   [ ! -f "$state/fresh" ]; then
		msg "intree: the series does not apply; extracting the tree again"
		rm -f "$state/source"
		extract
	fi
	run "$log" tree_git_apply --check --whitespace=error-all "$new" ||
		fail "series applies" "git apply --check failed" "$log"
	run "$log" tree_git_apply --whitespace=error-all "$new" ||
		fail "series applies" "git apply failed" "$log"
	[ ! -d "$top/times" ] || restore_times
	cp "$new" "$old"
	rm -f "$state/fresh"
	result pass "$tag: series applies" "git apply --check, git apply"
}

# What a build depends on besides the tree's sources.
build_key() {
	printf '%s %s %s %s\n' "$src_version" "$(toolchain_root)" \
		"$(series_content "$top/series.patch" | sha)" \
		"$(sha "$headers/.config")"
}

# What the configuration depends on: the Kconfig files the series touches.
config_key() {
	local f

	printf '%s %s %s' "$src_version" "$(toolchain_root)" \
		"$(sha "$headers/.config")"
	for f in $(patch_files "$top/series.patch"); do
		case $f in
		*Kconfig*) printf ' %s' "$(sha "$tree/$f")" ;;
		esac
	done
	printf '\n'
}

# 4. Configure and prepare for release KVER: the package's Makefile gives
# the upstream version, LOCALVERSION the Debian suffix ("+deb13-amd64").
configure() {
	local log=$logs/intree.configure.log upstream suffix release

	: >"$log"
	[ -f "$headers/.config" ] ||
		fail "configured" "no $headers/.config (make deps)"
	if [ "$(cat "$state/configured" 2>/dev/null)" = "$(config_key)" ]; then
		result pass "$tag: configured" "cached"
		return 0
	fi
	rm -f "$state/configured"
	upstream=$(kmake -s kernelversion 2>>"$log")
	suffix=${kver#"$upstream"}
	if [ "$suffix" = "$kver" ] || [ -z "$upstream" ]; then
		fail "configured" "the tree is version '$upstream', not the base of $kver"
	fi
	cp "$headers/.config" "$tree/.config"
	"$tree/scripts/config" --file "$tree/.config" --module ICH9SMI
	run "$log" kmake LOCALVERSION="$suffix" olddefconfig ||
		fail "configured" "make olddefconfig failed" "$log"
	grep -qx 'CONFIG_ICH9SMI=m' "$tree/.config" ||
		fail "configured" "CONFIG_ICH9SMI=m did not survive olddefconfig (its Kconfig dependencies?)"
	run "$log" kmake LOCALVERSION="$suffix" modules_prepare ||
		fail "configured" "make modules_prepare failed" "$log"
	release=$(kdir_release "$tree")
	[ "$release" = "$kver" ] ||
		fail "configured" "the tree builds release '$release', not $kver"
	cp "$headers/Module.symvers" "$tree/Module.symvers"
	config_key >"$state/configured"
	result pass "$tag: configured" "$kver's .config, CONFIG_ICH9SMI=m, Debian's Module.symvers"
}

# The vermagic of a module, as modinfo prints it.
vermagic() {
	modinfo -F vermagic "$1"
}

# 5. Build KVM, then the driver against KVM's exports.
build() {
	local log=$logs/intree.build.log mod magic want start=$EPOCHREALTIME

	: >"$log"
	run "$log" kmake M="$tree/arch/x86/kvm" modules ||
		fail "build" "make M=arch/x86/kvm failed" "$log"
	run "$log" kmake M="$tree/drivers/virt/ich9smi" \
		KBUILD_EXTRA_SYMBOLS="$tree/arch/x86/kvm/Module.symvers" modules ||
		fail "build" "make M=drivers/virt/ich9smi failed" "$log"
	rm -rf "$modules"
	mkdir -p "$modules"
	for mod in "${KVM_MODULES[@]}"; do
		cp "$tree/arch/x86/kvm/$mod.ko" "$modules/"
	done
	cp "$tree/drivers/virt/ich9smi/ich9smi.ko" "$modules/"
	# Debian's own kvm.ko says what the image's kernel expects.
	want=$(vermagic "$(kernel_dir "$kver")/root/lib/modules/$kver/kernel/arch/x86/kvm/kvm.ko"*) ||
		fail "build" "no kvm.ko in the cached image of $kver"
	for mod in "$modules"/*.ko; do
		magic=$(vermagic "$mod")
		[ "$magic" = "$want" ] ||
			fail "build" "${mod##*/} has vermagic '$magic', Debian's kvm.ko '$want'"
	done
	timing "$tag: build (make)" "$(since "$start")"
}

# 6. The selftests as kernel CI builds them, in the patched tree: the UAPI
# headers installed in usr/include, then the kselftest Makefile. (The
# guest runs the copy that scripts/selftests.sh builds for the host's C
# library; these are built against trixie's.)
build_selftests() {
	local log=$logs/intree.selftests.log start=$EPOCHREALTIME

	: >"$log"
	run "$log" kmake headers ||
		fail "selftests build" "make headers failed" "$log"
	run "$log" kmake -C tools/testing/selftests TARGETS=ich9smi \
		USERCFLAGS=-Werror ||
		fail "selftests build" \
			"make -C tools/testing/selftests TARGETS=ich9smi failed" "$log"
	timing "$tag: selftests build (kselftest)" "$(since "$start")"
	result pass "$tag: selftests build" \
		"make -C tools/testing/selftests TARGETS=ich9smi: $(
		find "$tree/tools/testing/selftests/ich9smi" -maxdepth 1 \
			-type f -perm -u+x | wc -l) programs"
}

start=$EPOCHREALTIME
check_versions
extract
write_series
checkpatch_series
apply_series
key=$(build_key)
if [ "$(cat "$state/built" 2>/dev/null)" = "$key" ] &&
   [ -f "$modules/ich9smi.ko" ]; then
	result pass "$tag: build" "cached: ${KVM_MODULES[*]/%/.ko} ich9smi.ko"
else
	rm -f "$state/built"
	configure
	build
	printf '%s\n' "$key" >"$state/built"
	result pass "$tag: build" "${KVM_MODULES[*]/%/.ko} ich9smi.ko in $(since "$start")s"
fi
build_selftests
msg "intree: modules in ${modules#"$ICH9SMI_ROOT"/}"
