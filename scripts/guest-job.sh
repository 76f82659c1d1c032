#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# The test guest's job, run by scripts/guest-init (PID 1, which powers the
# guest off when the job ends) in the host's root (shared read-only over 9p). It loads KVM and the module under test, runs
# the selftests, and leaves everything it saw in /run/results (a host
# directory) for scripts/vm.sh to judge: steps, one <test>.tap and
# <test>.rc per selftest, dmesg.txt, kmemleak.txt (when the kernel has
# kmemleak), tainted, times and, last, done.
# It judges nothing itself beyond what a step needs to go on.
set -uo pipefail

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
results=/run/results
# KROOT, MODULE, SELFTESTS_DIR, SELFTESTS, TEST_TIMEOUT, BENCH_ARGS,
# BENCH_TIMEOUT, E2E_ARGS and UDEV_RULE, written by vm.sh.
# shellcheck source=/dev/null
. "$results/job.env"

say() {
	printf 'ich9smi-guest: %s\n' "$*"
}

# step STATUS NAME [DETAIL], STATUS as in lib.sh's result().
step() {
	printf '%s\t%s\t%s\n' "$1" "$2" "${3:-}" >>"$results/steps"
	say "$1 $2${3:+: $3}"
}

uptime_s() {
	cut -d' ' -f1 /proc/uptime
}


job=
for arg in $(</proc/cmdline); do
	case $arg in
	ich9smi_job=*) job=${arg#*=} ;;
	esac
done

load_kvm() {
	local mod out

	if grep -qw svm /proc/cpuinfo; then
		mod=kvm_amd
	elif grep -qw vmx /proc/cpuinfo; then
		mod=kvm_intel
	else
		step fail "load KVM" "the guest CPU has neither svm nor vmx"
		return 1
	fi
	if ! out=$(modprobe -d "$KROOT" "$mod" 2>&1); then
		step fail "load KVM" "modprobe $mod: $out"
		return 1
	fi
	# A selftest would only skip without it; here that is a setup failure.
	if [ ! -c /dev/kvm ]; then
		step fail "load KVM" "$mod loaded but there is no /dev/kvm"
		return 1
	fi
	step pass "load KVM" "$mod"
}

load_module() {
	local out

	if ! out=$(insmod "$MODULE" 2>&1); then
		step fail "insmod ich9smi.ko" "$out"
		return 1
	fi
	step pass "insmod ich9smi.ko"
}

unload_module() {
	local out

	if ! out=$(rmmod ich9smi 2>&1); then
		step fail "rmmod ich9smi" "$out"
		return 1
	fi
	step pass "rmmod ich9smi"
}

# run_selftest NAME [AS [ARG...]]: its output goes to the console and to
# NAME.tap, or AS.tap for a run with other arguments or in another setting.
run_selftest() {
	local name=$1 as=${2:-$1} rc

	shift $(($# < 2 ? $# : 2))
	say "running $name${*:+ $*}"
	(cd "$SELFTESTS_DIR" &&
	 timeout -k 10 "$TEST_TIMEOUT" "./$name" "$@") 2>&1 |
		tee "$results/$as.tap"
	rc=${PIPESTATUS[0]}
	printf '%s\n' "$rc" >"$results/$as.rc"
}

run_selftests() {
	local test

	# attach_test runs the attach tool, built beside the selftests.
	export ICH9SMI_ATTACH_TOOL=$SELFTESTS_DIR/ich9smi-attach
	for test in $SELFTESTS; do
		run_selftest "$test"
	done
}

# run_bench ARGS...: smi_bench, its table on the console and in bench.txt,
# its CSV and JSON beside; a step records whether its checks held.
run_bench() {
	local rc

	say "running smi_bench $*"
	(cd "$SELFTESTS_DIR" &&
	 timeout -k 10 "$BENCH_TIMEOUT" ./smi_bench "$@" \
		-c "$results/bench.csv" -j "$results/bench.json") 2>&1 |
		tee "$results/bench.txt"
	rc=${PIPESTATUS[0]}
	if [ "$rc" -eq 0 ]; then
		step pass "smi_bench" "every vCPU entered SMM for every SMI"
	else
		step fail "smi_bench" "exit status $rc"
	fi
}

# The installed host's case: udevd, started here with the project's rule
# in /run/udev/rules.d (the host's root is read-only), sets the node's mode
# and group; security_test runs again and must find that policy in force.
# Before, without udev, it found the module's own.
run_udev_security() {
	local udevd=/lib/systemd/systemd-udevd out

	if [ ! -x "$udevd" ]; then
		step fail "udev rule" "no $udevd (Debian's udev package)"
		return 1
	fi
	mkdir -p /run/udev/rules.d
	cp "$UDEV_RULE" /run/udev/rules.d/
	# The job runs chrooted into the host's root; udevadm would ignore
	# every request there.
	export SYSTEMD_IGNORE_CHROOT=1
	if ! out=$("$udevd" --daemon 2>&1); then
		step fail "udev rule" "systemd-udevd: $out"
		return 1
	fi
	udevadm trigger --action=add --subsystem-match=misc \
		--sysname-match=ich9smi
	if ! out=$(udevadm settle --timeout=60 2>&1); then
		step fail "udev rule" "udevadm settle: $out"
	else
		step pass "udev rule" "$(stat -c '%A %U:%G' /dev/ich9smi)"
	fi
	ICH9SMI_NODE_POLICY=udev run_selftest security_test security_test-udev
	udevadm control --exit
}

# check: every selftest, then a short benchmark run for its checks only.
run_check() {
	ICH9SMI_NODE_POLICY=module run_selftests
	# shellcheck disable=SC2086 # BENCH_ARGS is a word list
	run_bench $BENCH_ARGS
	run_udev_security
}

# bench and demo: the benchmark, with the arguments the host chose.
run_bench_job() {
	# shellcheck disable=SC2086 # BENCH_ARGS is a word list
	run_bench $BENCH_ARGS
}

# e2e: unmodified QEMU and OVMF with and without ich9smi, by
# scripts/e2e-guest.sh, which writes its own steps; E2E_ARGS from the host.
run_e2e() {
	local dir=$results/e2e rc

	mkdir -p "$dir"
	# shellcheck disable=SC2086 # E2E_ARGS is a word list
	E2E_TOOL=$SELFTESTS_DIR/ich9smi-attach \
	E2E_KERNEL=$KROOT/boot/vmlinuz-$KVER \
		"$(dirname -- "$0")/e2e-guest.sh" $E2E_ARGS "$dir"
	rc=$?
	cat "$dir/steps" >>"$results/steps" 2>/dev/null
	if [ "$rc" -ne 0 ] && ! grep -q '^fail' "$dir/steps" 2>/dev/null; then
		step fail "e2e" "e2e-guest.sh exit status $rc"
	fi
}

# How the module reaches KVM's functions (LINKED, SYMBOL_GET, KALLSYMS) is
# checked twice: in the line it prints at load, and in its debugfs file,
# which only the out-of-tree build has.

# How many lines the kernel log has, to look only at those after them.
log_lines() {
	dmesg | wc -l
}

# check_resolution NAME [LINES]: the module's load lines after the first
# LINES lines of the kernel log: "KVM calls resolved by NAME" out of tree,
# none of that for the in-tree build (LINKED), then "/dev/ich9smi ready".
check_resolution() {
	local log got

	log=$(dmesg | tail -n +"$((${2:-0} + 1))")
	got=$(sed -n 's/.*ich9smi: KVM calls resolved by \([A-Z_]*\):.*/\1/p' \
		<<<"$log" | tail -n 1)
	if ! grep -q 'ich9smi: /dev/ich9smi ready$' <<<"$log"; then
		step fail "resolution $1 in the kernel log" "no 'ready' line"
	elif [ "${got:-LINKED}" = "$1" ]; then
		step pass "resolution $1 in the kernel log"
	else
		step fail "resolution $1 in the kernel log" \
			"the module printed '${got:-nothing}'"
	fi
}

# check_debugfs_resolution NAME: debugfs reports the resolution NAME; the
# in-tree build (LINKED) has no resolution file.
check_debugfs_resolution() {
	local dir=/sys/kernel/debug/ich9smi got

	if [ ! -e "$dir/instances" ]; then
		got="no $dir/instances"
	elif [ ! -e "$dir/resolution" ]; then
		got=LINKED
	else
		got=$(sed -n 's/^resolution: //p' "$dir/resolution")
	fi
	if [ "$got" = "$1" ]; then
		step pass "resolution $1 in debugfs"
	else
		step fail "resolution $1 in debugfs" "found '${got:-nothing}'"
	fi
}

# check_direct_calls [LINES]: the module's load line after the first LINES
# lines of the kernel log says that it read back every call site of the
# KVM functions it resolved at load and found direct calls to them.
check_direct_calls() {
	local line

	line=$(dmesg | tail -n +"$((${1:-0} + 1))" |
	       sed -n 's/.*ich9smi: \(.*all direct calls.*\)$/\1/p' | tail -n 1)
	if [ -n "$line" ]; then
		step pass "runtime-resolved calls are direct calls" "$line"
	else
		step fail "runtime-resolved calls are direct calls" \
			"the module did not report its call sites checked"
	fi
}

# dkms: the module that dkms built and installed (MODULE) on Debian's KVM,
# which does not export the I/O bus functions; abi_test's info test only.
run_dkms() {
	check_resolution KALLSYMS
	check_direct_calls
	run_selftest abi_test abi_test -t info
	check_debugfs_resolution KALLSYMS
}

# The KVM modules of the in-tree build (KVM_DIR), which export
# kvm_io_bus_register_dev(), in place of Debian's; what they need besides
# each other (irqbypass, ccp) comes from Debian's modules.
load_patched_kvm() {
	local vendor mod dep out

	if grep -qw svm /proc/cpuinfo; then
		vendor=kvm-amd
	elif grep -qw vmx /proc/cpuinfo; then
		vendor=kvm-intel
	else
		step fail "load patched KVM" "the guest CPU has neither svm nor vmx"
		return 1
	fi
	for mod in kvm "$vendor"; do
		for dep in $(modinfo -F depends "$KVM_DIR/$mod.ko" | tr , ' '); do
			[ "$dep" != kvm ] || continue
			if ! out=$(modprobe -d "$KROOT" "$dep" 2>&1); then
				step fail "load patched KVM" "modprobe $dep: $out"
				return 1
			fi
		done
		if ! out=$(insmod "$KVM_DIR/$mod.ko" 2>&1); then
			step fail "load patched KVM" "insmod $mod.ko: $out"
			return 1
		fi
	done
	if [ ! -c /dev/kvm ]; then
		step fail "load patched KVM" "$vendor loaded but there is no /dev/kvm"
		return 1
	fi
	step pass "load patched KVM" "kvm.ko and $vendor.ko of the in-tree build"
}

# insmod_form FORM PATH and rmmod_form FORM: one build of the module.
insmod_form() {
	local out

	if ! out=$(insmod "$2" 2>&1); then
		step fail "insmod ich9smi.ko ($1)" "$out"
		return 1
	fi
	step pass "insmod ich9smi.ko ($1)"
}

rmmod_form() {
	local out

	if ! out=$(rmmod ich9smi 2>&1); then
		step fail "rmmod ich9smi ($1)" "$out"
		return 1
	fi
	step pass "rmmod ich9smi ($1)"
}

# intree: Debian's kernel with the patched KVM. The driver built in the tree
# links to KVM's exports (LINKED) and runs every selftest; then the
# out-of-tree build (OOT_MODULE) finds the same exports with symbol_get()
# (SYMBOL_GET).
run_intree() {
	local lines

	load_patched_kvm || return
	lines=$(log_lines)
	if insmod_form "in-tree build" "$MODULE"; then
		check_resolution LINKED "$lines"
		run_selftests
		check_debugfs_resolution LINKED
		rmmod_form "in-tree build" || return
	fi
	lines=$(log_lines)
	if insmod_form "out-of-tree build" "$OOT_MODULE"; then
		check_resolution SYMBOL_GET "$lines"
		check_direct_calls "$lines"
		run_selftest abi_test oot-abi_test -t info
		run_selftest kvm_calls_test oot-kvm_calls_test
		check_debugfs_resolution SYMBOL_GET
		rmmod_form "out-of-tree build"
	fi
	printf 'tests %s\n' "$(uptime_s)" >>"$results/times"
}

# kmemleak reports an object once a scan finds it unreferenced, older than
# 5 s and unchanged since the scan before: one scan alone reports nothing.
kmemleak_scan_twice() {
	echo scan >"$1"
	echo scan >"$1"
}

# Mark what kmemleak suspects after boot as seen: the scan at the end then
# reports only what leaked since.
kmemleak_baseline() {
	local ctl=/sys/kernel/debug/kmemleak

	[ -w "$ctl" ] || return 0
	kmemleak_scan_twice "$ctl"
	echo clear >"$ctl"
}

# Ask kmemleak, where the kernel has it, for its list of leaked objects.
kmemleak_scan() {
	local ctl=/sys/kernel/debug/kmemleak

	[ -w "$ctl" ] || return 0
	# Old enough to be reported: what the last test leaked.
	sleep 5
	kmemleak_scan_twice "$ctl"
	cat "$ctl" >"$results/kmemleak.txt"
}

mount -t debugfs debugfs /sys/kernel/debug
mount -t tracefs tracefs /sys/kernel/tracing
kmemleak_baseline
printf 'boot %s\n' "$(uptime_s)" >"$results/times"
say "job '$job' on $(uname -r)"

if [ "$(uname -r)" != "$KVER" ]; then
	step fail "kernel release" "booted $(uname -r), expected $KVER"
elif [ "$job" = intree ]; then
	run_intree
elif load_kvm && load_module; then
	case $job in
	check | debug)
		run_check
		check_resolution KALLSYMS
		check_direct_calls
		check_debugfs_resolution KALLSYMS
		;;
	dkms) run_dkms ;;
	bench | demo) run_bench_job ;;
	e2e) run_e2e ;;
	*) step fail "job" "unknown job '$job'" ;;
	esac
	printf 'tests %s\n' "$(uptime_s)" >>"$results/times"
	unload_module
fi

kmemleak_scan
dmesg >"$results/dmesg.txt"
cat /proc/sys/kernel/tainted >"$results/tainted"
: >"$results/done"
say "done"
