# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# Helpers shared by the harness scripts; sourced, never executed.
#
# Every step of "make check" and "make demo" records its outcome with
# result(); check.sh adds them up. Timings go through timing().

export LC_ALL=C

ICH9SMI_ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
ICH9SMI_CACHE=${ICH9SMI_CACHE:-$ICH9SMI_ROOT/.cache}
# Kernel series tested by default: Debian's 6.1 LTS and its 6.12 kernel.
ICH9SMI_KERNELS=${ICH9SMI_KERNELS:-6.1 6.12}
# Where result() and timing() append; check.sh points them at its run.
ICH9SMI_RESULTS=${ICH9SMI_RESULTS:-/dev/null}
ICH9SMI_TIMES=${ICH9SMI_TIMES:-/dev/null}
export ICH9SMI_ROOT ICH9SMI_CACHE ICH9SMI_KERNELS ICH9SMI_RESULTS ICH9SMI_TIMES

# The kernel sources whose checkpatch.pl and kselftest framework we use, and
# which scripts/intree.sh builds the in-tree form in.
KSRC_PKG=linux-source-6.12
KSRC_SERIES=${KSRC_PKG#linux-source-}
KSRC_DIR=$ICH9SMI_CACHE/src/$KSRC_PKG
KSFT_DIR=$KSRC_DIR/tools/testing/selftests
SELFTESTS_OUT=$ICH9SMI_CACHE/selftests

msg() { printf '%s\n' "$*"; }
die() {
	printf 'error: %s\n' "$*" >&2
	exit 1
}

# result STATUS NAME [DETAIL]: STATUS is pass, fail or skip.
result() {
	printf '%s\t%s\t%s\n' "$1" "$2" "${3:-}" >>"$ICH9SMI_RESULTS"
	case $1 in
	pass) msg "ok - $2${3:+ ($3)}" ;;
	skip) msg "ok - $2 # SKIP ${3:-}" ;;
	*) msg "not ok - $2${3:+: $3}" ;;
	esac
}

# Seconds since a $EPOCHREALTIME value, one decimal.
since() {
	awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'
}

# timing NAME SECONDS
timing() {
	printf '%s\t%s\n' "$1" "$2" >>"$ICH9SMI_TIMES"
}

# The candidate (installable) versions of packages: "package version" lines.
apt_candidates() {
	apt-cache policy "$@" 2>/dev/null | awk '
		/^[^ ].*:$/ { pkg = substr($0, 1, length($0) - 1) }
		$1 == "Candidate:" && $2 != "(none)" { print pkg, $2 }'
}

# The release names of a Debian kernel series ("6.1", "6.12"), a regex.
series_regex() {
	case $1 in
	6.1) printf '%s\n' '6\.1\.0-[0-9]+-amd64' ;;
	6.12) printf '%s\n' '6\.12\.[0-9]+\+deb12-amd64' ;;
	*) return 1 ;;
	esac
}

# The Debian kernels under test, one release per line: for each series in
# ICH9SMI_KERNELS, the newest whose unsigned image and headers packages have
# the same version in the archive.
debian_kernels() {
	local images series re kver found pkg version pkgs
	local -A releases candidate

	images=$(apt-cache pkgnames linux-image-)
	for series in $ICH9SMI_KERNELS; do
		re=$(series_regex "$series") ||
			die "unknown kernel series '$series' (known: 6.1 6.12)"
		releases[$series]=$(sed -En \
			"s/^linux-image-($re)-unsigned\$/\1/p" <<<"$images" |
			sort -rV)
	done
	pkgs=()
	for series in $ICH9SMI_KERNELS; do
		for kver in ${releases[$series]}; do
			pkgs+=("linux-image-$kver-unsigned" \
			       "linux-headers-$kver")
		done
	done
	[ ${#pkgs[@]} -eq 0 ] ||
		while read -r pkg version; do
			candidate[$pkg]=$version
		done < <(apt_candidates "${pkgs[@]}")
	for series in $ICH9SMI_KERNELS; do
		found=
		for kver in ${releases[$series]}; do
			if [ -n "${candidate[linux-headers-$kver]:-}" ] &&
			   [ "${candidate[linux-headers-$kver]}" = \
			     "${candidate[linux-image-$kver-unsigned]:-}" ]; then
				found=$kver
				break
			fi
		done
		[ -n "$found" ] ||
			die "no Debian $series kernel with matching unsigned image and headers in the apt lists (apt-get update?)"
		printf '%s\n' "$found"
	done
}

# The kernel release a build tree was configured for.
kdir_release() {
	sed -n 's/^#define UTS_RELEASE "\(.*\)"$/\1/p' \
		"$1/include/generated/utsrelease.h" 2>/dev/null
}

# Unpacked guest kernel: image, modules and the initramfs made from them.
kernel_dir() {
	printf '%s\n' "$ICH9SMI_CACHE/kernels/$1"
}

# Per-kernel module build tree (a copy of the sources kbuild needs).
build_dir() {
	printf '%s\n' "$ICH9SMI_CACHE/build/$1"
}

module_path() {
	printf '%s\n' "$(build_dir "$1")/drivers/virt/ich9smi/ich9smi.ko"
}

# The kernel among the arguments of the linux-source package's series: the
# one the in-tree form and the packaging are checked with.
ksrc_kernel() {
	local re kver

	re=$(series_regex "$KSRC_SERIES")
	for kver; do
		if [[ $kver =~ ^$re$ ]]; then
			printf '%s\n' "$kver"
			return 0
		fi
	done
	return 1
}

# The in-tree build (scripts/intree.sh): the patched linux-source tree, the
# series applied to it, and the modules built there, copied out for guests.
intree_dir() {
	printf '%s\n' "$ICH9SMI_CACHE/intree"
}

intree_modules_dir() {
	printf '%s\n' "$(intree_dir)/modules"
}

# The module that dkms built and installed in scripts/packaging.sh's
# throw-away trees, copied out for the guest (its name keeps the
# compression suffix dkms chose).
dkms_module() {
	local ko

	for ko in "$ICH9SMI_CACHE/dkms/module/ich9smi.ko"*; do
		[ -f "$ko" ] || continue
		printf '%s\n' "$ko"
		return 0
	done
	return 1
}

# Names of the selftest programs, from the kselftest "emit_tests" target.
selftest_names() {
	make -s -C "$KSFT_DIR/ich9smi" OUTPUT="$SELFTESTS_OUT" emit_tests |
		sed 's/^[^:]*://'
}
