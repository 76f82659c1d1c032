#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# The test guest's job, run as PID 1 by scripts/guest-init in the host's root
# (shared read-only over 9p). It loads KVM and the module under test, runs
# the selftests, and leaves everything it saw in /run/results (a host
# directory) for scripts/vm.sh to judge: steps, one <test>.tap and
# <test>.rc per selftest, dmesg.txt, kmemleak.txt (when the kernel has
# kmemleak), tainted, times and, last, done.
# It judges nothing itself beyond what a step needs to go on.
set -uo pipefail

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
results=/run/results
# KROOT, MODULE, SELFTESTS_DIR, SELFTESTS, TEST_TIMEOUT, BENCH_ARGS,
# BENCH_TIMEOUT and E2E_ARGS, written by vm.sh.
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

power_off() {
	sync
	echo o >/proc/sysrq-trigger
	sleep 60
}
trap power_off EXIT

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

# run_selftest NAME: its output goes to the console and to NAME.tap.
run_selftest() {
	local rc

	say "running $1"
	(cd "$SELFTESTS_DIR" &&
	 timeout -k 10 "$TEST_TIMEOUT" "./$1") 2>&1 | tee "$results/$1.tap"
	rc=${PIPESTATUS[0]}
	printf '%s\n' "$rc" >"$results/$1.rc"
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

# check: every selftest, then a short benchmark run for its checks only.
run_check() {
	run_selftests
	# shellcheck disable=SC2086 # BENCH_ARGS is a word list
	run_bench $BENCH_ARGS
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

# Ask kmemleak, where the kernel has it, for its list of leaked objects.
kmemleak_scan() {
	local ctl=/sys/kernel/debug/kmemleak

	[ -w "$ctl" ] || return 0
	echo scan >"$ctl"
	cat "$ctl" >"$results/kmemleak.txt"
}

mount -t debugfs debugfs /sys/kernel/debug
mount -t tracefs tracefs /sys/kernel/tracing
printf 'boot %s\n' "$(uptime_s)" >"$results/times"
say "job '$job' on $(uname -r)"

if [ "$(uname -r)" != "$KVER" ]; then
	step fail "kernel release" "booted $(uname -r), expected $KVER"
elif load_kvm && load_module; then
	case $job in
	check) run_check ;;
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
