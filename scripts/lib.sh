# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# Helpers shared by the harness scripts; sourced, never executed.
#
# Every step of "make check" and "make demo" records its outcome with
# result(); check.sh adds them up. Timings go through timing().

export LC_ALL=C

ICH9SMI_ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
# Downloads, unpacked kernels, the toolchain chroot, builds and logs: outside
# the clone, so that a fresh clone on the same machine starts warm.
ICH9SMI_CACHE=${ICH9SMI_CACHE:-/var/cache/ich9smi}
# Kernel series tested by default: Debian 12's 6.1 LTS, Debian 13's 6.12 and
# the 7.x of trixie-backports (see series_regex).
ICH9SMI_KERNELS=${ICH9SMI_KERNELS:-6.1 6.12 7}
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
# The kselftest build's O=: the programs land in kselftest/ich9smi below it.
KSFT_OUT=$ICH9SMI_CACHE/selftests
SELFTESTS_OUT=$KSFT_OUT/kselftest/ich9smi

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

# print_timings: every timing recorded so far, one per line.
print_timings() {
	awk -F'\t' '{ printf "   %-40s %7.1f\n", $1, $2 }' "$ICH9SMI_TIMES"
}

# count STATUS [NAME PREFIX]: results with STATUS whose name has PREFIX.
count() {
	awk -F'\t' -v s="$1" -v p="${2:-}" \
		'$1 == s && index($2, p) == 1 { n++ } END { print n + 0 }' \
		"$ICH9SMI_RESULTS"
}

# summary [NAME PREFIX]: "N passed, N failed[, N skipped]"; the status is
# 1 when something failed.
summary() {
	local skipped

	printf '%s passed, %s failed' "$(count pass "$@")" "$(count fail "$@")"
	skipped=$(count skip "$@")
	[ "$skipped" -eq 0 ] || printf ', %s skipped' "$skipped"
	printf '\n'
	[ "$(count fail "$@")" -eq 0 ]
}

# logged LOG CMD...: run CMD with its output in LOG, shown only on failure.
logged() {
	local log=$1

	shift
	if ! "$@" >"$log" 2>&1; then
		sed 's/^/    /' "$log"
		return 1
	fi
}

# The Debian mirror the host's apt sources use for its archive ("archive")
# or its security updates ("security"): no host name is written here.
debian_mirror() {
	apt-cache policy | awk -v want="$1" '
		/^ *[0-9]+ [a-z]+:\/\// { uri = $2; suite = $3; next }
		/^ +release / && uri != "" {
			if ($0 ~ /o=Debian,/ && suite ~ /\/main$/ &&
			    ((want == "security") == ($0 ~ /l=Debian-Security/))) {
				print uri
				exit
			}
			uri = ""
		}'
}

# Debian 13's suites, read through a private apt configuration in the cache:
# the host's own sources and lists are never touched.
TRIXIE_APT=$ICH9SMI_CACHE/apt/trixie
trixie_apt_opts() {
	private_apt_opts "$TRIXIE_APT"
}

# private_apt_opts DIR: apt options, one per line, under which apt reads
# its sources, lists and downloads in DIR only (DIR/sources.list).
private_apt_opts() {
	printf '%s\n' -o "Dir::Etc::sourcelist=$1/sources.list" \
		-o Dir::Etc::sourceparts=- \
		-o "Dir::State::Lists=$1/lists" \
		-o "Dir::Cache=$1/cache" \
		-o APT::Sandbox::User=root
}

# Write the private sources (the host's mirrors, trixie's suites) and
# refresh their lists when they are missing or older than six hours (or
# with --force). An archive that cannot be reached then leaves the previous
# lists in use.
trixie_apt_update() {
	local archive security sources opts

	archive=$(debian_mirror archive)
	security=$(debian_mirror security)
	if [ -z "$archive" ] || [ -z "$security" ]; then
		die "no Debian mirror in the host's apt sources (apt-cache policy)"
	fi
	mkdir -p "$TRIXIE_APT/lists/partial" "$TRIXIE_APT/cache/archives/partial"
	sources=$(printf 'deb %s %s main\n' "$archive" trixie \
		"$archive" trixie-updates "$archive" trixie-backports \
		"$security" trixie-security)
	if [ "$(cat "$TRIXIE_APT/sources.list" 2>/dev/null)" != "$sources" ]; then
		printf '%s\n' "$sources" >"$TRIXIE_APT/sources.list"
		rm -f "$TRIXIE_APT/updated"
	fi
	[ "${1:-}" = --force ] || [ -z "$(find "$TRIXIE_APT/updated" -mmin -360 2>/dev/null)" ] ||
		return 0
	mapfile -t opts < <(trixie_apt_opts)
	# apt-get update exits 0 on an unreachable mirror unless told not to.
	if apt-get "${opts[@]}" update -q --error-on=any \
		>"$TRIXIE_APT/update.log" 2>&1; then
		touch "$TRIXIE_APT/updated"
	elif [ -e "$TRIXIE_APT/updated" ]; then
		msg "warning: trixie apt lists not refreshed (see $TRIXIE_APT/update.log); using the previous ones"
	else
		cat "$TRIXIE_APT/update.log" >&2
		die "cannot read Debian 13's apt lists"
	fi
}

# suite_apt SUITE apt-get|apt-cache ARGS...: SUITE is "host" (the host's
# own Debian 12 lists) or "trixie" (the private configuration).
suite_apt() {
	local suite=$1 tool=$2 opts=()

	shift 2
	[ "$suite" = host ] || mapfile -t opts < <(trixie_apt_opts)
	"$tool" "${opts[@]}" "$@"
}

# The candidate (installable) versions of packages: "package version" lines.
# apt_candidates [--suite SUITE] PACKAGE...
apt_candidates() {
	local suite=host

	if [ "${1:-}" = --suite ]; then
		suite=$2
		shift 2
	fi
	suite_apt "$suite" apt-cache policy "$@" 2>/dev/null | awk '
		/^[^ ].*:$/ { pkg = substr($0, 1, length($0) - 1) }
		$1 == "Candidate:" && $2 != "(none)" { print pkg, $2 }'
}

# download SUITE PACKAGE...: fetch the packages' candidate versions into
# the download cache (kept, so that a re-unpack needs no network) and print
# their paths.
download() {
	local suite=$1 pkg ver deb try

	shift
	mkdir -p "$ICH9SMI_CACHE/debs"
	for pkg; do
		for try in 1 2; do
			ver=$(apt_candidates --suite "$suite" "$pkg" | cut -d" " -f2)
			[ -n "$ver" ] || die "$pkg is not in the apt lists"
			deb=$(deb_path "$pkg" "$ver")
			[ -z "$deb" ] || break
			msg "fetch: downloading $pkg $ver" >&2
			if (cd "$ICH9SMI_CACHE/debs" &&
			    suite_apt "$suite" apt-get download -q \
				-o APT::Sandbox::User=root "$pkg=$ver" >&2); then
				deb=$(deb_path "$pkg" "$ver")
				[ -n "$deb" ] || die "apt-get download $pkg=$ver made no .deb"
				break
			fi
			# The archive may have moved on since the lists were read.
			[ "$try" -eq 1 ] || die "cannot download $pkg=$ver"
			msg "fetch: refreshing the $suite apt lists and trying again" >&2
			if [ "$suite" = host ]; then
				apt-get update -q >&2
			else
				trixie_apt_update --force >&2
			fi
		done
		printf '%s\n' "$deb"
	done
}

# The downloaded .deb of PACKAGE VERSION, if any (apt names it
# PACKAGE_VERSION_ARCH.deb, with the epoch's colon escaped).
deb_path() {
	local deb

	for deb in "$ICH9SMI_CACHE/debs/${1}_${2//:/%3a}_"*.deb; do
		[ -f "$deb" ] && printf '%s\n' "$deb"
		return 0
	done
}

# The kernel series under test: the release names of each ("6.1", "6.12",
# "7"), a regex, and the suite whose apt lists, packages and compiler it
# uses. Debian 12's 6.1 builds with the host's gcc-12 and headers installed
# on the host (a Debian 12 package that pulls in no kernel image); Debian
# 13's kernels build in the trixie chroot (scripts/toolchain.sh).
series_regex() {
	case $1 in
	6.1) printf '%s\n' '6\.1\.0-[0-9]+-amd64' ;;
	6.12) printf '%s\n' '6\.12\.[0-9]+\+deb13(\.[0-9]+)?-amd64' ;;
	7) printf '%s\n' '7\.[0-9]+\.[0-9]+\+deb13-amd64' ;;
	*) return 1 ;;
	esac
}

series_suite() {
	case $1 in
	6.1) printf 'host\n' ;;
	*) printf 'trixie\n' ;;
	esac
}

# The series a kernel release belongs to.
kernel_series() {
	local series re

	for series in 6.1 6.12 7; do
		re=$(series_regex "$series")
		if [[ $1 =~ ^$re$ ]]; then
			printf '%s\n' "$series"
			return 0
		fi
	done
	return 1
}

kernel_suite() {
	local series

	series=$(kernel_series "$1") || {
		printf 'host\n'
		return 0
	}
	series_suite "$series"
}

# The image packages of a release: the unsigned image where Debian has one,
# else (7.x) the kernel, its modules and its base files, as split by Debian.
image_packages() {
	local kver=$1 suite

	suite=$(kernel_suite "$kver")
	if [ -n "$(apt_candidates --suite "$suite" \
			"linux-image-$kver-unsigned")" ]; then
		printf '%s\n' "linux-image-$kver-unsigned"
	else
		printf '%s\n' "linux-binary-$kver" "linux-modules-$kver" \
			"linux-base-$kver"
	fi
}

# The Debian kernels under test, one release per line: for each series in
# ICH9SMI_KERNELS, the newest whose image and headers packages have the
# same version in the archive.
debian_kernels() {
	local series re kver found suite pkgs img hdr

	# check.sh looks them up once and exports them.
	if [ -n "${ICH9SMI_RELEASES:-}" ]; then
		for kver in $ICH9SMI_RELEASES; do
			series=$(kernel_series "$kver") || continue
			[[ " $ICH9SMI_KERNELS " != *" $series "* ]] ||
				printf '%s\n' "$kver"
		done
		return 0
	fi
	for series in $ICH9SMI_KERNELS; do
		re=$(series_regex "$series") ||
			die "unknown kernel series '$series' (known: 6.1 6.12 7)"
		suite=$(series_suite "$series")
		found=
		for kver in $(suite_apt "$suite" apt-cache pkgnames \
				linux-headers- | sed -En "s/^linux-headers-($re)\$/\1/p" |
				sort -rV); do
			mapfile -t pkgs < <(image_packages "$kver")
			img=$(apt_candidates --suite "$suite" "${pkgs[0]}" |
				cut -d' ' -f2)
			hdr=$(apt_candidates --suite "$suite" \
				"linux-headers-$kver" | cut -d' ' -f2)
			if [ -n "$hdr" ] && [ "$hdr" = "$img" ]; then
				found=$kver
				break
			fi
		done
		[ -n "$found" ] ||
			die "no Debian $series kernel with matching image and headers in the apt lists (make deps)"
		printf '%s\n' "$found"
	done
}

# The trixie chroot that builds Debian 13's kernels' modules
# (scripts/toolchain.sh), named after a hash of what goes into it. It
# also signs the firmware guests' UEFI application and enrolls the test
# key (scripts/sb-test-key.sh): Debian 12 has no virt-fw-vars. debootstrap
# does not resolve virtual packages: python3-cryptography's cffi API range
# is provided by python3-cffi-backend, named here.
TOOLCHAIN_PACKAGES=(
	gcc-14 gcc make libc6-dev bc bison flex libelf-dev libssl-dev
	dwarves kmod xz-utils zstd sparse perl python3 rsync cpio
	openssl sbsigntool python3-virt-firmware python3-cffi-backend
)
# The packages whose versions name the chroot besides the list: a new
# compiler, C library or pahole in Debian 13 makes a new chroot.
TOOLCHAIN_KEY_PACKAGES=(gcc-14 libc6 dwarves)

# The chroot for the current trixie lists: toolchain.sh writes its name to
# toolchain/current once it is ready.
toolchain_root() {
	local name

	name=$(cat "$ICH9SMI_CACHE/toolchain/current" 2>/dev/null) ||
		die "no toolchain chroot yet (scripts/toolchain.sh)"
	printf '%s\n' "$ICH9SMI_CACHE/toolchain/$name/root"
}

# The name the chroot for the current trixie lists should have.
toolchain_name() {
	local key

	key=$({ printf '%s\n' trixie minbase "${TOOLCHAIN_PACKAGES[@]}"
		apt_candidates --suite trixie "${TOOLCHAIN_KEY_PACKAGES[@]}"; } |
		sha256sum | cut -c1-12)
	printf 'trixie-%s\n' "$key"
}

# umount_below DIR: what a killed debootstrap may have left mounted there.
umount_below() {
	local mnt

	findmnt -rn -o TARGET | awk -v d="$1/" 'index($0 "/", d) == 1' |
		sort -r | while read -r mnt; do
			umount -l "$mnt"
		done
}

# toolchain_run KVER CMD...: run CMD with the compiler KVER was built with:
# on the host for Debian 12's kernels, else in the trixie chroot, where the
# clone and the cache appear at their host paths. The mounts live in a
# private mount namespace and vanish with CMD.
toolchain_run() {
	local kver=$1

	shift
	if [ "$(kernel_suite "$kver")" = host ]; then
		"$@"
		return
	fi
	trixie_run "$@"
}

# trixie_run CMD...: run CMD in the trixie chroot, which sees this
# repository and the cache at their own paths, and a /proc and the host's
# /dev, nothing else of the host.
trixie_run() {
	# shellcheck disable=SC2016 # expanded by the inner shell
	unshare --mount --propagation private -- /bin/bash -c '
		set -e
		root=$1
		shift
		for dir in "$ICH9SMI_ROOT" "$ICH9SMI_CACHE"; do
			mkdir -p "$root$dir"
			mount --bind "$dir" "$root$dir"
		done
		mount -t proc proc "$root/proc"
		mount --bind /dev "$root/dev"
		exec chroot "$root" /usr/bin/env -i HOME=/root LC_ALL=C.UTF-8 \
			PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"' \
		toolchain "$(toolchain_root)" "$@"
}

# fetch_kernels KVER...: the toolchain chroot, when one of the kernels is
# Debian 13's, then the kernels themselves (scripts/fetch.sh).
fetch_kernels() {
	local kver

	for kver; do
		[ "$(kernel_suite "$kver")" != host ] || continue
		"$ICH9SMI_ROOT/scripts/toolchain.sh" || return
		break
	done
	"$ICH9SMI_ROOT/scripts/fetch.sh" "$@"
}

# A Debian kernel's headers as the host sees them, and as its toolchain
# sees them (the same for Debian 12's, installed on the host).
kernel_headers() {
	if [ "$(kernel_suite "$1")" = host ]; then
		printf '%s\n' "/usr/src/linux-headers-$1"
	else
		printf '%s\n' "$(toolchain_root)/usr/src/linux-headers-$1"
	fi
}

kernel_headers_inside() {
	printf '%s\n' "/usr/src/linux-headers-$1"
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

# The kernel series the in-tree form is built and tested for.
export INTREE_SERIES=7

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
