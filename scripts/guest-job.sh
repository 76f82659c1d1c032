#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# The test guest's job, run by scripts/guest-init (PID 1, which powers the
# guest off when the job ends) in the host's root, shared read-only over
# 9p, with this run's results directory at /run/results. The job_*
# functions below are the one description of each job: what it loads and
# what it runs. The guest judges nothing beyond what a step needs to go on;
# it leaves for scripts/vm.sh: steps (lib.sh's result() lines), the TAP or
# KTAP of each test run, their names in "expect" (written before each
# run), dmesg.txt, kmemleak.txt (kernels with kmemleak), tainted, times
# and, last, done.
set -uo pipefail

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
results=/run/results
# JOB, KVER, ICH9SMI_CACHE and the host's ICH9SMI_* overrides, from vm.sh.
# shellcheck source=/dev/null
. "$results/job.env"
# shellcheck source=scripts/lib.sh
. "$(dirname -- "$0")/lib.sh"
ICH9SMI_RESULTS=$results/steps
KVER=${KVER:?job.env names no kernel}
KROOT=$(kernel_dir "$KVER")/root
load_mark=0

say() {
	printf 'ich9smi-guest: %s\n' "$*"
}

mark_time() {
	printf '%s %s\n' "$1" "$(cut -d' ' -f1 /proc/uptime)" >>"$results/times"
}

# attempt NAME CMD...: CMD is step NAME; its output is the failure's detail.
attempt() {
	local name=$1 out

	shift
	if out=$("$@" 2>&1); then
		result pass "$name"
	else
		result fail "$name" "$(tr '\n' ' ' <<<"$out")"
		return 1
	fi
}

# insmod_kvm DIR VENDOR: the in-tree build's kvm.ko and VENDOR.ko, which
# export what the series adds; what they need besides each other
# (irqbypass, ccp) comes from Debian's modules.
insmod_kvm() {
	local mod dep

	for mod in kvm "$2"; do
		for dep in $(modinfo -F depends "$1/$mod.ko" | tr , ' '); do
			[ "$dep" = kvm ] || modprobe -d "$KROOT" "$dep" || return
		done
		insmod "$1/$mod.ko" || return
	done
}

# load_kvm [DIR]: Debian's KVM, or the in-tree build's from DIR.
load_kvm() {
	local vendor out

	if grep -qw svm /proc/cpuinfo; then
		vendor=kvm-amd
	elif grep -qw vmx /proc/cpuinfo; then
		vendor=kvm-intel
	else
		result fail "load KVM" "the guest CPU has neither svm nor vmx"
		return 1
	fi
	if ! out=$(if [ -n "${1:-}" ]; then
			insmod_kvm "$1" "$vendor"
		   else
			modprobe -d "$KROOT" "$vendor"
		   fi 2>&1); then
		result fail "load KVM" "$out"
		return 1
	elif [ ! -c /dev/kvm ]; then
		# A selftest would only skip without it: a setup failure here.
		result fail "load KVM" "$vendor loaded but there is no /dev/kvm"
		return 1
	fi
	result pass "load KVM" "$vendor${1:+ of the in-tree build}"
}

# load FORM KO and unload FORM: one build of the module. load marks the
# kernel log, for check_resolution.
load() {
	load_mark=$(dmesg | wc -l)
	attempt "insmod ich9smi.ko ($1)" insmod "$2"
}

unload() {
	attempt "rmmod ich9smi ($1)" rmmod ich9smi
}

# check_resolution NAME: the module loaded last reaches KVM's functions by
# NAME (LINKED in tree; SYMBOL_GET or KALLSYMS out of tree), as its load
# lines and debugfs say; out of tree, its load line also says that every
# call site of the functions it resolved was read back as a direct call.
check_resolution() {
	local log got dir=/sys/kernel/debug/ich9smi

	log=$(dmesg | tail -n +"$((load_mark + 1))")
	got=$(sed -n 's/.*ich9smi: KVM calls resolved by \([A-Z_]*\):.*/\1/p' \
		<<<"$log" | tail -n 1)
	if ! grep -q 'ich9smi: /dev/ich9smi ready$' <<<"$log"; then
		result fail "resolution $1 in the kernel log" "no 'ready' line"
	elif [ "${got:-LINKED}" = "$1" ]; then
		result pass "resolution $1 in the kernel log"
	else
		result fail "resolution $1 in the kernel log" \
			"the module printed '${got:-nothing}'"
	fi
	if [ ! -e "$dir/instances" ]; then
		got="no $dir/instances"
	elif [ ! -e "$dir/resolution" ]; then
		got=LINKED
	else
		got=$(sed -n 's/^resolution: //p' "$dir/resolution")
	fi
	if [ "$got" = "$1" ]; then
		result pass "resolution $1 in debugfs"
	else
		result fail "resolution $1 in debugfs" "found '${got:-nothing}'"
	fi
	[ "$1" != LINKED ] || return 0
	got=$(sed -n 's/.*ich9smi: \(.*all direct calls.*\)$/\1/p' <<<"$log")
	if [ -n "$got" ]; then
		result pass "runtime-resolved calls are direct calls" "$got"
	else
		result fail "runtime-resolved calls are direct calls" \
			"the module did not report its call sites checked"
	fi
}

# attach_test runs the attach tool, built beside the selftests.
export ICH9SMI_ATTACH_TOOL=$SELFTESTS_OUT/ich9smi-attach

# run_kselftests: every selftest as kernel CI runs them, by the kselftest
# runner, into ich9smi.ktap; vm.sh splits it by program.
run_kselftests() {
	local rc

	printf 'ich9smi.ktap\n' >>"$results/expect"
	say "running make -C $KSFT_DIR TARGETS=ich9smi run_tests"
	(cd /tmp && kselftest_override_timeout=${ICH9SMI_TEST_TIMEOUT:-} \
	 make -s -C "$KSFT_DIR" TARGETS=ich9smi O="$KSFT_OUT" run_tests) 2>&1 |
		tee "$results/ich9smi.ktap"
	rc=${PIPESTATUS[0]}
	[ "$rc" -eq 0 ] || result fail "kselftest run_tests" "make exit status $rc"
}

# run_selftest NAME AS [ARG...]: one program on its own, into AS.tap.
run_selftest() {
	local name=$1 as=$2 rc

	shift 2
	printf '%s\n' "$as" >>"$results/expect"
	say "running $name${*:+ $*}"
	(cd "$SELFTESTS_OUT" &&
	 timeout -k 10 "${ICH9SMI_TEST_TIMEOUT:-240}" "./$name" "$@") 2>&1 |
		tee "$results/$as.tap"
	rc=${PIPESTATUS[0]}
	printf '%s\n' "$rc" >"$results/$as.rc"
}

# run_bench DEFAULT-ARGS: smi_bench with ICH9SMI_BENCH_ARGS or the job's
# arguments, its table on the console and in bench.txt, its CSV and JSON
# beside; a step records whether its checks held.
run_bench() {
	local rc args

	read -ra args <<<"${ICH9SMI_BENCH_ARGS:-$1}"
	say "running smi_bench ${args[*]}"
	# Its progress lines (stderr) go to the console only.
	(cd "$SELFTESTS_OUT" &&
	 timeout -k 10 "${ICH9SMI_BENCH_TIMEOUT:-1200}" ./smi_bench "${args[@]}" \
		-c "$results/bench.csv" -j "$results/bench.json") |
		tee "$results/bench.txt"
	rc=${PIPESTATUS[0]}
	if [ "$rc" -eq 0 ]; then
		result pass "smi_bench" "every vCPU entered SMM for every SMI"
	else
		result fail "smi_bench" "exit status $rc"
	fi
}

# The installed host's case: udevd, started here with the project's rule
# in /run/udev/rules.d (the host's root is read-only), sets the node's mode
# and group; security_test runs again and must find that policy in force.
# Before, without udev, it found the module's own.
run_udev_security() {
	local udevd=/lib/systemd/systemd-udevd out

	if [ ! -x "$udevd" ]; then
		result fail "udev rule" "no $udevd (Debian's udev package)"
		return 1
	fi
	mkdir -p /run/udev/rules.d
	cp "$ICH9SMI_ROOT/packaging/60-ich9smi.rules" /run/udev/rules.d/
	# The job runs chrooted into the host's root; udevadm would ignore
	# every request there.
	export SYSTEMD_IGNORE_CHROOT=1
	if ! out=$("$udevd" --daemon 2>&1); then
		result fail "udev rule" "systemd-udevd: $out"
		return 1
	fi
	udevadm trigger --action=add --subsystem-match=misc \
		--sysname-match=ich9smi
	if ! out=$(udevadm settle --timeout=60 2>&1); then
		result fail "udev rule" "udevadm settle: $out"
	else
		result pass "udev rule" "$(stat -c '%A %U:%G' /dev/ich9smi)"
	fi
	ICH9SMI_NODE_POLICY=udev run_selftest security_test security_test-udev
	udevadm control --exit
}

# e2e: unmodified QEMU and OVMF with and without ich9smi, by
# scripts/e2e-guest.sh, which writes its own steps.
run_e2e() {
	local dir=$results/e2e rc

	mkdir -p "$dir"
	# shellcheck disable=SC2086 # ICH9SMI_E2E_ARGS is a word list
	E2E_TOOL=$SELFTESTS_OUT/ich9smi-attach \
	E2E_KERNEL=$KROOT/boot/vmlinuz-$KVER \
		"$ICH9SMI_ROOT/scripts/e2e-guest.sh" ${ICH9SMI_E2E_ARGS:-} "$dir"
	rc=$?
	cat "$dir/steps" >>"$results/steps" 2>/dev/null
	if [ "$rc" -ne 0 ] && ! grep -q '^fail' "$dir/steps" 2>/dev/null; then
		result fail "e2e" "e2e-guest.sh exit status $rc"
	fi
}

# kernel-apm: QEMU's own integration (the series in qemu/ich9smi/, built
# on the host by scripts/qemu.sh), by scripts/kernel-apm-guest.py; with
# --no-device once the module is unloaded.
run_kernel_apm() {
	local dir=$results/kernel-apm rc before

	if [ ! -x "${ICH9SMI_KAPM_QEMU:-}" ]; then
		result fail "kernel-apm" "no patched QEMU (ICH9SMI_KAPM_QEMU)"
		return
	fi
	mkdir -p "$dir"
	# Its steps go straight into ours, so that a hang keeps the steps so far.
	before=$(grep -c '^fail' "$results/steps" || true)
	KAPM_QEMU=$ICH9SMI_KAPM_QEMU KAPM_KERNEL=$KROOT/boot/vmlinuz-$KVER \
	KAPM_MODULES=$KROOT/lib/modules/$KVER \
	KAPM_APM_GUEST=$SELFTESTS_OUT/apm-guest \
	KAPM_EFI_APP=$SELFTESTS_OUT/smi-var.signed.efi \
	KAPM_SB_VARS=$SELFTESTS_OUT/OVMF_VARS_4M.test-db.fd \
	KAPM_MP_VCPUS=${ICH9SMI_MP_VCPUS:-2} \
	KAPM_STEPS=$results/steps KAPM_FORBID_PTRACE=1 \
		"$ICH9SMI_ROOT/scripts/kernel-apm-guest.py" "$@" "$dir"
	rc=$?
	if [ "$rc" -ne 0 ] &&
	   [ "$(grep -c '^fail' "$results/steps" || true)" -eq "$before" ]; then
		result fail "kernel-apm" "kernel-apm-guest.py exit status $rc"
	fi
}

# The jobs. check (and debug, on the debug kernel): every selftest, a short
# benchmark run for its checks only, the udev rule.
job_check() {
	load_kvm && load "out-of-tree build" "$(module_path "$KVER")" || return
	ICH9SMI_NODE_POLICY=module run_kselftests
	run_bench '-n 1,2 -s 4 -w 1 -r 3 -l 5 -R 1 -k 5 -T 2 -A'
	run_udev_security
	check_resolution KALLSYMS
	unload "out-of-tree build"
}

job_debug() {
	job_check
}

# dkms: the module dkms built and installed (scripts/packaging.sh) on
# Debian's KVM, which does not export the I/O bus functions.
job_dkms() {
	load_kvm && load "dkms build" "$(dkms_module)" || return
	check_resolution KALLSYMS
	run_selftest abi_test abi_test -t info
	unload "dkms build"
}

# intree: Debian's kernel with the in-tree build's KVM. The driver built in
# the tree links to KVM's exports and runs every selftest; then the
# out-of-tree build finds the same exports with symbol_get().
job_intree() {
	local dir

	dir=$(intree_modules_dir)
	load_kvm "$dir" || return
	if load "in-tree build" "$dir/ich9smi.ko"; then
		run_kselftests
		check_resolution LINKED
		unload "in-tree build" || return
	fi
	load "out-of-tree build" "$(module_path "$KVER")" || return
	check_resolution SYMBOL_GET
	run_selftest abi_test oot-abi_test -t info
	run_selftest kvm_calls_test oot-kvm_calls_test
	unload "out-of-tree build"
}

job_demo() {
	load_kvm && load "out-of-tree build" "$(module_path "$KVER")" || return
	run_bench '-n 1,2,4 -w 5 -r 40 -l 40'
	unload "out-of-tree build"
}

job_bench() {
	load_kvm && load "out-of-tree build" "$(module_path "$KVER")" || return
	run_bench '-n 1,2,4 -s 8,16,32 -w 5 -r 40 -l 20 -R 3 -k 10 -T 3'
	unload "out-of-tree build"
}

job_e2e() {
	load_kvm && load "out-of-tree build" "$(module_path "$KVER")" || return
	run_e2e
	run_kernel_apm
	unload "out-of-tree build" || return
	run_kernel_apm --no-device
}

# firmware: the multi-vCPU firmware boots alone, for make bench's table.
job_firmware() {
	load_kvm && load "out-of-tree build" "$(module_path "$KVER")" || return
	run_kernel_apm --mp
	unload "out-of-tree build"
}

# trace: where each path's work goes, by call count: function_graph of
# KVM's exit handler, the x2APIC fastpath, SMM entry and the VMM's ioctls,
# over a short smi_bench run (1 vCPU, 3 SMIs) per path, into graph-PATH.txt
# (scripts/graph-calls.py counts them).
job_trace() {
	local t=/sys/kernel/tracing p fn

	load_kvm && load "out-of-tree build" "$(module_path "$KVER")" || return
	for p in ich9smi ich9smi-uc qemu msi floor; do
		echo nop >$t/current_tracer
		: >$t/set_graph_function
		for fn in svm_handle_exit vmx_handle_exit enter_smm \
			  handle_fastpath_set_msr_irqoff kvm_arch_vcpu_ioctl \
			  kvm_send_userspace_msi; do
			! grep -q "^$fn\b" $t/available_filter_functions ||
				echo "$fn" >>$t/set_graph_function
		done
		echo 32768 >$t/buffer_size_kb
		echo function_graph >$t/current_tracer
		: >$t/trace
		"$SELFTESTS_OUT/smi_bench" -n 1 -p "$p" -w 2 -r 1 -l 0 -k 0 \
			>/dev/null
		cat $t/trace >"$results/graph-$p.txt"
	done
	echo nop >$t/current_tracer
	if grep -q ich9smi_write "$results/graph-ich9smi.txt"; then
		result pass "trace: the OUT to 0xB2 reached ich9smi_write"
	else
		result fail "trace: the OUT to 0xB2 reached ich9smi_write"
	fi
	unload "out-of-tree build"
}

# kmemleak reports an object once a scan finds it unreferenced, older than
# 5 s and unchanged since the scan before: one scan alone reports nothing.
# At boot, what it suspects is marked as seen; at the end (after 5 s, so
# that what the last test leaked is old enough) it lists what leaked since.
kmemleak() {
	local ctl=/sys/kernel/debug/kmemleak

	[ -w "$ctl" ] || return 0
	[ "$1" = baseline ] || sleep 5
	echo scan >"$ctl"
	echo scan >"$ctl"
	if [ "$1" = baseline ]; then
		echo clear >"$ctl"
	else
		cat "$ctl" >"$results/kmemleak.txt"
	fi
}

mount -t debugfs debugfs /sys/kernel/debug
mount -t tracefs tracefs /sys/kernel/tracing
kmemleak baseline
mark_time boot
say "job '$JOB' on $(uname -r)"
if [ "$(uname -r)" != "$KVER" ]; then
	result fail "kernel release" "booted $(uname -r), expected $KVER"
elif ! declare -F "job_$JOB" >/dev/null; then
	result fail "job" "unknown job '$JOB'"
else
	"job_$JOB"
	mark_time tests
fi
kmemleak report
dmesg >"$results/dmesg.txt"
cat /proc/sys/kernel/tainted >"$results/tainted"
: >"$results/done"
say "done"
