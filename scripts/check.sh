#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# check.sh MODE: the make targets that run guests, one path for all of
# them: install what is missing, build, run job MODE (a job of
# scripts/guest-job.sh) in a guest of each kernel, report.
#
# check: also the static checks (checkpatch, sparse, W=1, shellcheck,
#        kernel-doc and Sphinx); builds with W=1 and sparse; then the
#        real-firmware job (e2e) on 6.12. On Debian 12's 6.1 also: make
#        install/uninstall and dkms in throw-away roots
#        (scripts/packaging.sh) and the dkms-built module in a guest; on the
#        7.x kernel the upstream series applied to its linux-source and
#        built there (scripts/intree.sh), and a guest running Debian's
#        kernel with that KVM and both builds of the module. Beside the
#        guests, on the second core: the debug kernel
#        (scripts/debug-kernel.sh: KASAN, lockdep, UBSAN, kmemleak, fault
#        injection), built once and cached, and every selftest, with
#        fail_nth_test, in a guest of it; ICH9SMI_CHECK_DEBUG=0 leaves it
#        out. At the end: the host's /boot and kernel images unchanged.
# demo:  the demo job, console shown.
# e2e:   unmodified QEMU and OVMF boot a Debian kernel with Secure Boot,
#        once served by QEMU and once by ich9smi (scripts/e2e-guest.sh;
#        ICH9SMI_E2E_ARGS passes it options), then QEMU with qemu/ich9smi/
#        serves it itself: boot, SMI_EN, migration
#        (scripts/kernel-apm-guest.py); the guest runs on the QEMU that
#        scripts/qemu.sh builds with qemu/outer/ and qemu/ich9smi/; each
#        kernel's table at the end.
# bench: smi_bench, console shown, on the newest kernel of the series in
#        ICH9SMI_BENCH_KERNEL (default 6.12); scripts/bench.sh then leaves
#        the table, CSV, JSON and plot in out/bench/.
# trace: on the same kernel, function_graph of each path's SMIs, counted
#        by scripts/graph-calls.py.
#
# All print timings, a summary per kernel and, last, one line
# "N passed, N failed[, N skipped]"; the exit status is 1 if anything failed.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

mode=${1:-}
case $mode in
check | demo | e2e) ;;
bench | trace) ICH9SMI_KERNELS=${ICH9SMI_BENCH_KERNEL:-6.12} ;;
*) die "usage: $0 check|demo|e2e|bench|trace" ;;
esac

scripts=$ICH9SMI_ROOT/scripts
logs=$ICH9SMI_CACHE/runs/$mode
# Two runs on one cache would delete each other's logs and guest results:
# the second waits.
mkdir -p "$ICH9SMI_CACHE/runs"
exec 8>"$ICH9SMI_CACHE/runs/check.lock"
if ! flock -n 8; then
	msg "check: waiting for another make check or make demo on this cache"
	flock 8
fi
rm -rf "$logs"
mkdir -p "$logs"
ICH9SMI_RESULTS=$logs/results
ICH9SMI_TIMES=$logs/times
: >"$ICH9SMI_RESULTS"
: >"$ICH9SMI_TIMES"
export ICH9SMI_RESULTS ICH9SMI_TIMES

# timed NAME CMD...: run CMD and record how long it took.
timed() {
	local name=$1 start rc=0

	shift
	start=$EPOCHREALTIME
	"$@" || rc=$?
	timing "$name" "$(since "$start")"
	return "$rc"
}

# judged NAME CMD...: run CMD, a script that records its own results; if
# it fails without recording a failure (it died early), record one for it.
judged() {
	local name=$1 before rc=0

	shift
	before=$(count fail)
	"$@" || rc=$?
	if [ "$rc" -ne 0 ] && [ "$(count fail)" -eq "$before" ]; then
		result fail "$name" "$* exited with status $rc and reported nothing"
	fi
	return 0
}

# The lines of a build log that make a check fail.
complaints() {
	grep -E '(warning|error):' "$1"
}

# Also sets kernels: the releases under test, exported as ICH9SMI_RELEASES
# so that no script looks them up again. Each stage is timed on its own;
# every step is checked here because errexit does not apply inside timed.
install_all() {
	local found kver

	timed "install: packages (apt)" "$scripts/deps.sh" || return
	found=$(debian_kernels) || return
	mapfile -t kernels <<<"$found"
	ICH9SMI_RELEASES=${kernels[*]}
	export ICH9SMI_RELEASES
	for kver in "${kernels[@]}"; do
		[ "$(kernel_suite "$kver")" = host ] && continue
		timed "install: toolchain (trixie chroot)" \
			"$scripts/toolchain.sh" || return
		break
	done
	timed "install: kernels (download, unpack)" \
		"$scripts/fetch.sh" "${kernels[@]}"
}

# What make check must not change on the host: its boot files and its
# installed kernel images. (Debian 12's 6.1 headers may be installed: they
# pull in no image.)
host_state() {
	ls -lA --time-style=+%s /boot 2>/dev/null || true
	dpkg-query -W -f='${db:Status-Abbrev} ${Package} ${Version}\n' \
		'linux-image-*' 'linux-binary-*' 'linux-modules-*' \
		'linux-headers-*+deb13*' 2>/dev/null | grep -v '^un' || true
}

check_host_unchanged() {
	if host_state | cmp -s - "$logs/host.before"; then
		result pass "host: /boot and installed kernel images unchanged"
	else
		host_state | diff "$logs/host.before" - | sed 's/^/    /'
		result fail "host: /boot and installed kernel images unchanged" "see above"
	fi
}

# The compiler KVER's module was built with must be the one its config
# names (CONFIG_CC_VERSION_TEXT): its first word is the command.
check_compiler() {
	local kver=$1 want cc got

	want=$(sed -n 's/^CONFIG_CC_VERSION_TEXT="\(.*\)"$/\1/p' \
		"$(kernel_headers "$kver")/.config")
	cc=${want%% *}
	got=$(toolchain_run "$kver" "$cc" --version 2>/dev/null | head -n 1)
	if [ -n "$want" ] && [ "$got" = "$want" ]; then
		result pass "$kver: compiler is the kernel's own" "$want"
	else
		result fail "$kver: compiler is the kernel's own" \
			"config names '$want', '$cc' is '${got:-missing}'"
	fi
}

# checked NAME CMD...: CMD's output is the result's detail when it passes,
# shown when it fails.
checked() {
	local name=$1 out

	shift
	if out=$(cd "$ICH9SMI_ROOT" && "$@" 2>&1); then
		result pass "$name" "$(printf '%s\n' "$out" | tr '\n' ';' | sed 's/;$//')"
	else
		printf '%s\n' "$out" | sed 's/^/    /'
		result fail "$name" "see above"
	fi
}

# checkpatch on every source file, quietly: no output when clean. The
# UEFI application (*-efi.c) is firmware code, not kernel code: it calls
# UEFI's CamelCase interfaces with their EFIAPI calling convention, which
# checkpatch cannot pass.
checkpatch() {
	local files

	mapfile -t files < <(find Kbuild drivers/virt/ich9smi \
		include/uapi/linux/ich9smi.h tools/ich9smi \
		tools/testing/selftests/ich9smi -type f \( -name '*.[chS]' \
		-o -name Makefile -o -name Kbuild -o -name Kconfig \) \
		! -name '*-efi.c' | sort)
	perl "$KSRC_DIR/scripts/checkpatch.pl" --strict --no-tree --quiet \
		--show-types -f "${files[@]}" && echo "${#files[@]} files"
}

static_checks() {
	checked "checkpatch --strict" checkpatch
	checked "shellcheck" shellcheck -x scripts/*.sh scripts/guest-init .ci/run
	# kernel-doc -none -Wall on the header and sources, and a Sphinx
	# build of Documentation/ with warnings as errors.
	checked "docs: kernel-doc and Sphinx" \
		/usr/bin/python3 scripts/doccheck.py "$KSRC_DIR" .
}

# build_module KVER: a clean W=1 build, then sparse over every source
# (C=2; same flags, so nothing is rebuilt). Either may print nothing.
build_module() {
	local kver=$1 log=$logs/$1.build.log

	check_compiler "$kver"
	env KVER="$kver" "$scripts/module.sh" clean >/dev/null 2>&1 || true
	if [ "$mode" != check ]; then
		logged "$log" env KVER="$kver" "$scripts/module.sh" || {
			result fail "$kver: build"
			return 1
		}
		result pass "$kver: build"
		return 0
	fi
	if ! logged "$log" env KVER="$kver" "$scripts/module.sh" W=1; then
		result fail "$kver: build (W=1)"
		return 1
	elif complaints "$log"; then
		result fail "$kver: build (W=1)" "warnings, see above"
	else
		result pass "$kver: build (W=1)"
	fi
	log=$logs/$kver.sparse.log
	if ! logged "$log" env KVER="$kver" "$scripts/module.sh" W=1 C=2; then
		result fail "$kver: sparse (C=2)"
	elif complaints "$log"; then
		result fail "$kver: sparse (C=2)" "warnings, see above"
	elif grep -q ' CHECK ' "$log"; then
		result pass "$kver: sparse (C=2)" "$(grep -c ' CHECK ' "$log") files"
	elif [ "$(kernel_series "$kver")" = 7 ] &&
	     toolchain_run "$kver" sparse --version >/dev/null 2>&1 &&
	     grep -q 'sparse is not available or not up to date' "$log"; then
		# 7.x headers use __typeof_unqual__, which Debian 13's sparse
		# 0.6.4 does not parse; the kernel's checker-valid.sh says so.
		result skip "$kver: sparse (C=2)" \
			"sparse $(toolchain_run "$kver" sparse --version) cannot parse these headers"
	else
		result fail "$kver: sparse (C=2)" "sparse checked no file"
	fi
}

build_selftests() {
	local log=$logs/selftests.build.log

	# Built anew: make goes by times, and another clone's sources may be
	# older than the programs in the cache.
	rm -rf "$KSFT_OUT"
	if logged "$log" "$scripts/selftests.sh"; then
		result pass "selftests build"
	else
		result fail "selftests build"
		return 1
	fi
}

# The Secure Boot test key and variable store of the multi-vCPU firmware
# runs (scripts/sb-test-key.sh): a failure fails those runs (their inputs
# are missing), not every guest.
sb_test_key() {
	local log=$logs/sb-test-key.log name="firmware: Secure Boot test key (sign, db)"

	if logged "$log" "$scripts/sb-test-key.sh"; then
		result pass "$name"
	else
		result fail "$name" "see $log"
	fi
}

report() {
	local kver

	msg ""
	msg "== timings (seconds)"
	print_timings
	for kver in "${kernels[@]}" ${debug_kver:-}; do
		msg "== $kver: $(summary "$kver: ")"
	done
	summary
}

kernels=()
debug_kver=
start=$EPOCHREALTIME
host_state >"$logs/host.before"
if ! install_all; then
	result fail "install" "see above"
	report
	exit 1
fi

[ "$mode" != check ] ||
	timed "static checks (checkpatch, shellcheck, docs)" static_checks

built=()
for kver in "${kernels[@]}"; do
	if timed "$kver: module build" build_module "$kver"; then
		built+=("$kver")
	fi
done
timed "selftests build" build_selftests || built=()
# Only where a guest runs the multi-vCPU firmware tests.
if [ ${#built[@]} -ne 0 ] &&
   { [ "$mode" = e2e ] || [ "$mode" = bench ] ||
     { [ "$mode" = check ] && [ -n "${ICH9SMI_CHECK_E2E-6.12}" ]; }; }; then
	timed "firmware: Secure Boot test key" sb_test_key
fi

# Packaging, checked on Debian 12's kernel (its headers are the host's, as
# on a user's machine), and the in-tree form, on the newest 7.x. The host
# side (make install and dkms in throw-away roots, the in-tree build) runs
# niced in the background while the guests below run, its output kept
# until they are done; its two guests run after them.
packaging_host_side() {
	export ICH9SMI_LOGS=$logs
	if [ -n "$pkver" ]; then
		timed "$pkver: packaging (install, dkms)" \
			judged "$pkver: packaging" nice "$scripts/packaging.sh" "$pkver"
	fi
	if [ -n "$ikver" ] &&
	   timed "$ikver: in-tree build" nice "$scripts/intree.sh" "$ikver"; then
		: >"$logs/intree.built"
	fi
}

packaging_guests() {
	if [ -z "$pkver" ]; then
		:
	elif dkms_module >/dev/null; then
		timed "$pkver: dkms guest run" \
			judged "$pkver: dkms: guest run" "$scripts/vm.sh" "$pkver" dkms
	else
		result skip "$pkver: dkms: guest run" "dkms built nothing"
	fi
	if [ -z "$ikver" ]; then
		:
	elif [ -e "$logs/intree.built" ]; then
		timed "$ikver: in-tree guest run" \
			judged "$ikver: in-tree: guest run" \
			"$scripts/vm.sh" "$ikver" intree
	else
		result fail "$ikver: in-tree: guest run" "the in-tree build failed"
	fi
}

# the_kernel SERIES: the kernel of SERIES under test whose build worked.
the_kernel() {
	local kver

	for kver in "${built[@]}"; do
		[ "$(kernel_series "$kver")" != "$1" ] || {
			printf '%s\n' "$kver"
			return 0
		}
	done
	return 1
}

pkver=
ikver=
host_side=
if [ "$mode" = check ]; then
	pkver=$(the_kernel 6.1) ||
		result skip "packaging" "no Debian 12 6.1 kernel built"
	ikver=$(the_kernel "$INTREE_SERIES") ||
		result skip "in-tree" "no $INTREE_SERIES kernel built"
	if [ -n "$pkver$ikver" ]; then
		packaging_host_side >"$logs/packaging.out" 2>&1 &
		host_side=$!
	fi
fi

# The debug kernel's lane: build (niced, cached), then its guest, while the
# guests below run; its output is kept until they are done.
debug_lane() {
	timed "debug kernel: build" \
		judged "debug kernel: build" "$scripts/debug-kernel.sh" build
	[ -f "$ICH9SMI_CACHE/debug/built" ] || return 0
	timed "debug kernel: guest run" \
		judged "debug kernel: guest run" "$scripts/debug-kernel.sh" guest
}

# QEMU with the series of qemu/outer/ and qemu/ich9smi/ (cached): the e2e
# job's guest runs on it, and its kernel-apm tests run it inside; in make
# check built niced while the guests below run.
qemu_lane() {
	local path name="qemu: build (qemu/outer, qemu/ich9smi)"

	rm -f "$logs/qemu.path"
	if path=$(timed "$name" nice "$scripts/qemu.sh" outer ich9smi \
		  2>"$logs/qemu.log"); then
		result pass "$name" "$path"
		printf '%s\n' "$path" >"$logs/qemu.path"
	else
		tail -n 20 "$logs/qemu.log"
		result fail "$name" "see $logs/qemu.log"
	fi
}

# take_qemu: what qemu_lane built, for the guests, as ICH9SMI_KAPM_QEMU
# (empty after a failed build: the guests' kernel-apm steps then fail).
take_qemu() {
	ICH9SMI_KAPM_QEMU=$(cat "$logs/qemu.path" 2>/dev/null || true)
	export ICH9SMI_KAPM_QEMU
}

qemu_side=
if [ "$mode" = check ] && [ -n "${ICH9SMI_CHECK_E2E-6.12}" ]; then
	qemu_lane >"$logs/qemu.out" 2>&1 &
	qemu_side=$!
elif [ "$mode" = bench ]; then
	# Before the benchmark, not beside it: a compile would disturb it.
	qemu_lane
	take_qemu
elif [ "$mode" = e2e ]; then
	qemu_lane
	take_qemu
	export ICH9SMI_QEMU=$ICH9SMI_KAPM_QEMU
fi

debug_side=
if [ "$mode" = check ] && [ "${ICH9SMI_CHECK_DEBUG:-1}" != 0 ] &&
   [ ${#built[@]} -ne 0 ]; then
	debug_lane >"$logs/debug.out" 2>&1 &
	debug_side=$!
fi

case $mode in
demo) export ICH9SMI_VERBOSE=1 ;;
e2e)
	# make e2e runs the multi-vCPU firmware boots on 2 and 4 vCPUs,
	# make check on 2.
	export ICH9SMI_VM_TIMEOUT=${ICH9SMI_VM_TIMEOUT:-3600} \
		ICH9SMI_MP_VCPUS=${ICH9SMI_MP_VCPUS:-2 4}
	;;
bench)
	# make bench's guest runs for about 25 minutes under -icount.
	export ICH9SMI_VERBOSE=1 ICH9SMI_VM_TIMEOUT=${ICH9SMI_VM_TIMEOUT:-5400} \
		ICH9SMI_BENCH_TIMEOUT=${ICH9SMI_BENCH_TIMEOUT:-5000}
	;;
esac
for kver in "${kernels[@]}"; do
	if [[ " ${built[*]} " != *" $kver "* ]]; then
		result skip "$kver: guest run" "nothing to run: a build failed"
		continue
	fi
	timed "$kver: guest run" \
		judged "$kver: guest run" "$scripts/vm.sh" "$kver" "$mode"
done
if [ -n "$host_side" ]; then
	wait "$host_side" || true
	cat "$logs/packaging.out"
	packaging_guests
fi
# The real-firmware test (make e2e) on the kernel series in
# ICH9SMI_CHECK_E2E (default 6.12; empty skips it): about ten minutes.
[ "$mode" = check ] || ICH9SMI_CHECK_E2E=
if [ -n "$qemu_side" ]; then
	wait "$qemu_side" || true
	cat "$logs/qemu.out"
	take_qemu
fi
# make bench: also OVMF on 2 and 4 vCPUs running the seed's variable
# workload on the BSP and on an AP, in three configurations, from a UEFI
# application and from the Debian kernel (the firmware job): about 30
# minutes.
if [ "$mode" = bench ]; then
	for kver in "${built[@]}"; do
		timed "$kver: firmware run (2 and 4 vCPUs)" \
			judged "$kver: firmware: guest run" \
			env ICH9SMI_VM_TIMEOUT="${ICH9SMI_FIRMWARE_TIMEOUT:-4000}" \
			ICH9SMI_QEMU="${ICH9SMI_KAPM_QEMU:-}" \
			ICH9SMI_MP_VCPUS="${ICH9SMI_MP_VCPUS:-2 4}" \
			"$scripts/vm.sh" "$kver" firmware
	done
fi
for series in ${ICH9SMI_CHECK_E2E-6.12}; do
	re=$(series_regex "$series") || die "unknown kernel series '$series'"
	for kver in "${built[@]}"; do
		[[ $kver =~ ^$re$ ]] || continue
		timed "$kver: e2e run (real firmware)" \
			judged "$kver: e2e: guest run" \
			env ICH9SMI_VM_TIMEOUT="${ICH9SMI_VM_TIMEOUT:-2400}" \
			ICH9SMI_QEMU="${ICH9SMI_KAPM_QEMU:-}" \
			"$scripts/vm.sh" "$kver" e2e
	done
done
if [ -n "$debug_side" ]; then
	wait "$debug_side" || true
	cat "$logs/debug.out"
	debug_kver=$(cat "$ICH9SMI_CACHE/debug/release" 2>/dev/null || true)
fi
check_host_unchanged
timing "total" "$(since "$start")"
for kver in "${built[@]}"; do
	case $mode in
	e2e)
		msg "== $kver: real firmware"
		cat "$ICH9SMI_CACHE/runs/$kver-e2e/results/e2e/e2e.txt" \
			2>/dev/null || msg "    (no table)"
		msg "== $kver: QEMU's own integration (kernel-apm)"
		cat "$ICH9SMI_CACHE/runs/$kver-e2e/results/kernel-apm/kernel-apm.txt" \
			2>/dev/null || msg "    (no table)"
		;;
	bench)
		"$scripts/bench.sh" "$kver" ||
			result fail "$kver: bench output" "scripts/bench.sh failed"
		;;
	trace)
		"$scripts/graph-calls.py" \
			"$ICH9SMI_CACHE/runs/$kver-trace/results"/graph-*.txt ||
			result fail "$kver: trace output" "graph-calls.py failed"
		;;
	esac
done
report
