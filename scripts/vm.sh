#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# vm.sh KVER JOB: boot the cached Debian kernel KVER in QEMU, run JOB (a
# job_* function of scripts/guest-job.sh: check, debug, dkms, intree, demo,
# bench, e2e) in it, and judge what the guest left behind: every step,
# every test's TAP results, the kernel log and taint flags, and whether it
# powered off in time. Outcomes go through result(); the exit status is
# non-zero when any of them failed.
#
# Environment: ICH9SMI_VERBOSE=1 streams the guest console and boots quietly
# (make demo); ICH9SMI_ACCEL overrides the -accel argument (kvm, tcg...);
# ICH9SMI_QEMU names the QEMU binary (scripts/qemu.sh builds patched ones);
# ICH9SMI_VM_TIMEOUT bounds one boot (seconds, default 300);
# ICH9SMI_TEST_TIMEOUT bounds one selftest program (default: the
# selftests' settings file, 240); ICH9SMI_BENCH_ARGS replaces the job's
# smi_bench arguments; ICH9SMI_E2E_ARGS are scripts/e2e-guest.sh's options
# for job e2e.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

[ $# -eq 2 ] || die "usage: $0 KVER JOB"
kver=$1
job=$2
vm_timeout=${ICH9SMI_VM_TIMEOUT:-300}
verbose=${ICH9SMI_VERBOSE:-}

kdir=$(kernel_dir "$kver")
root=$kdir/root
run=$ICH9SMI_CACHE/runs/$kver-$job
results=$run/results
[ -f "$root/boot/vmlinuz-$kver" ] || die "kernel $kver is not in the cache (scripts/fetch.sh $kver)"
for path in "$ICH9SMI_ROOT" "$ICH9SMI_CACHE"; do
	case $path in
	/*[!A-Za-z0-9/._+-]* | [!/]*)
		die "'$path' cannot go on a kernel command line: want an absolute path of letters, digits and /._+-"
		;;
	esac
done

# Kernel messages that fail a run. Only kernel lines count (they start with
# a printk timestamp), so a selftest's own output cannot trip them.
KERNEL_LINE='^\[ *[0-9]+\.[0-9]+\] '
KERNEL_BAD_RE='WARNING:|BUG:|kernel BUG|Oops|general protection fault|'
KERNEL_BAD_RE+='Kernel panic|possible recursive locking|circular locking|'
# kmemleak's own report line; its other messages (initialized...) are fine.
KERNEL_BAD_RE+='INFO: |KASAN|UBSAN|Missing ENDBR|suspected memory leak|'
KERNEL_BAD_RE+='Call Trace|'
KERNEL_BAD_RE+='RIP: |stack-protector|list_(add|del) corruption|'
KERNEL_BAD_RE+='soft lockup|hung_task|rcu.*stall'

# Results carry the kernel release, and the job's name for the jobs that
# run besides check on the same kernel: "KVER: dkms: ...", "KVER: in-tree: ...".
case $job in
dkms) label="$kver: dkms" ;;
intree) label="$kver: in-tree" ;;
*) label=$kver ;;
esac

failed=0
record() {
	result "$1" "${2/#"$kver:"/"$label:"}" "${3:-}"
	[ "$1" != fail ] || failed=1
}

# The initramfs: static busybox, guest-init, and the 9p client modules and
# what they need (unless built in), decompressed, in load order.
make_initramfs() {
	local work=$run/initramfs deps path name unpack

	mkdir -p "$work"/{bin,dev,proc,sys,modules}
	cp /bin/busybox "$work/bin/busybox"
	ln -s busybox "$work/bin/sh"
	install -m 755 "$ICH9SMI_ROOT/scripts/guest-init" "$work/init"
	: >"$work/modules/order"
	# --show-depends only prints what modprobe would load.
	deps=$(modprobe -a --show-depends -d "$root" -S "$kver" \
		9p 9pnet_virtio virtio_pci 2>&1) || die "$kver: $deps"
	awk '$1 == "insmod" && !seen[$2]++ { print $2 }' <<<"$deps" |
	while read -r path; do
		case $path in
		*.xz) unpack=(xz -dc) ;;
		*.zst) unpack=(zstd -dcq) ;;
		*.gz) unpack=(gzip -dc) ;;
		*) unpack=(cat) ;;
		esac
		name=${path##*/}
		name=${name%.ko*}.ko
		"${unpack[@]}" "$path" >"$work/modules/$name"
		printf '%s\n' "$name" >>"$work/modules/order"
	done
	(cd "$work" && find . | cpio -o -H newc --quiet) >"$run/initramfs.cpio"
	rm -rf "$work"
}

# What the guest job reads besides its own defaults: the job, the kernel,
# the cache, and the ICH9SMI_* settings given to this script.
write_job_env() {
	local var

	{
		printf '%s=%q\n' JOB "$job" KVER "$kver" \
			ICH9SMI_CACHE "$ICH9SMI_CACHE"
		for var in ICH9SMI_TEST_TIMEOUT ICH9SMI_BENCH_ARGS \
			   ICH9SMI_BENCH_TIMEOUT ICH9SMI_E2E_ARGS \
			   ICH9SMI_KAPM_QEMU ICH9SMI_MP_VCPUS; do
			[ -z "${!var:-}" ] || printf '%s=%q\n' "$var" "${!var}"
		done
	} >"$results/job.env"
}

# KVM only when the guest can use it in turn: a /dev/kvm without nested
# virtualization (common in cloud VMs) gives a guest without svm/vmx.
# TCG runs single-threaded: with one thread per vCPU (QEMU 7.2), a guest
# kernel that patches its text often (KVM flips a static key in __schedule
# for every VM it creates and destroys) took "Oops: int3" in __schedule in
# two of three 6.12 runs; one thread was clean in six, and no slower.
accelerator() {
	local nested

	if [ -n "${ICH9SMI_ACCEL:-}" ]; then
		printf '%s\n' "$ICH9SMI_ACCEL"
		return
	fi
	for nested in /sys/module/kvm_{amd,intel}/parameters/nested; do
		if [ -w /dev/kvm ] && grep -qsE '^(1|Y)$' "$nested"; then
			printf 'kvm\n'
			return
		fi
	done
	printf 'tcg,thread=single\n'
}

boot() {
	local accel append cmd icount

	accel=$(accelerator)
	append="console=ttyS0 printk.time=1 panic=-1 mitigations=off"
	append+=" ich9smi_repo=$ICH9SMI_ROOT"
	append+=" ich9smi_keep=$ICH9SMI_ROOT:$ICH9SMI_CACHE"
	[ -z "$verbose" ] || append+=" quiet"
	# 6.12's identify_cpu() clears the boot CPU's feature bits and sets
	# them again; an interrupt in between runs with pgtable_l5_enabled()
	# false, and KASAN reports its direct-map accesses (5-level addresses
	# under -cpu max) as wild. 4-level paging keeps the debug kernel quiet.
	[ "$job" != debug ] || append+=" no5lvl"
	cmd=("${ICH9SMI_QEMU:-qemu-system-x86_64}" -M q35 -accel "$accel" -cpu max -smp 2 -m 2G
	     -nodefaults -no-reboot -display none -serial stdio
	     -kernel "$root/boot/vmlinuz-$kver" -initrd "$run/initramfs.cpio"
	     -append "$append"
	     -virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap"
	     -virtfs "local,path=$results,mount_tag=results,security_model=none,multidevs=remap")
	# With -icount the guest's clock counts instructions executed, not
	# host time: under TCG the bench job's timings then repeat.
	# ICH9SMI_ICOUNT sets its options, "off" leaves it out.
	icount=${ICH9SMI_ICOUNT:-}
	if [ -z "$icount" ] && [ "$job" = bench ] && [[ $accel == tcg* ]]; then
		icount=shift=0,sleep=off
	fi
	[ "$icount" = off ] && icount=
	[ -z "$icount" ] || cmd+=(-icount "$icount")
	msg "vm: booting $kver ($accel${icount:+, icount $icount}), job $job"
	set +e
	if [ -n "$verbose" ]; then
		timeout -k 10 "$vm_timeout" "${cmd[@]}" </dev/null 2>&1 |
			tee "$run/console.log"
		qemu_rc=${PIPESTATUS[0]}
	else
		timeout -k 10 "$vm_timeout" "${cmd[@]}" </dev/null \
			>"$run/console.log" 2>&1
		qemu_rc=$?
	fi
	set -e
}

# A value from the guest's "times" file (guest uptime in seconds).
guest_time() {
	[ ! -f "$results/times" ] ||
		awk -v k="$1" '$1 == k { print $2 }' "$results/times"
}

judge_boot() {
	local wall=$1 up tests

	up=$(guest_time boot)
	tests=$(guest_time tests)
	timing "$label: qemu run" "$wall"
	[ -z "$up" ] || timing "$label: boot to job" "$up"
	[ -z "$tests" ] || timing "$label: load + tests" \
		"$(awk -v a="$up" -v b="$tests" 'BEGIN { printf "%.1f", b - a }')"
	if [ "$qemu_rc" -eq 124 ] || [ "$qemu_rc" -eq 137 ]; then
		record fail "$kver: guest powered off" \
			"hang: still running after ${vm_timeout}s, see $run/console.log"
	elif [ ! -e "$results/done" ]; then
		record fail "$kver: guest powered off" \
			"the job did not finish (qemu exit $qemu_rc), see $run/console.log"
	else
		record pass "$kver: guest powered off" "${wall}s"
	fi
}

judge_steps() {
	local status name detail

	[ -f "$results/steps" ] || return 0
	while IFS=$'\t' read -r status name detail; do
		record "$status" "$kver: $name" "$detail"
	done <"$results/steps"
}

# judge_selftest NAME: one result per TAP line, plus one for a bad ending.
judge_selftest() {
	local tap=$results/$1.tap rc plan='' count=0 failures=0 line name

	if [ ! -f "$tap" ]; then
		record fail "$kver: $1" "did not run"
		return
	fi
	[ -n "$verbose" ] || sed "s/^/    /" "$tap"
	rc=$(cat "$results/$1.rc" 2>/dev/null || echo none)
	while IFS= read -r line; do
		case $line in
		1..*)
			plan=${line#1..}
			;;
		"ok "* | "not ok "*)
			count=$((count + 1))
			name=$(sed -E 's/^(not )?ok [0-9]+ (- )?//; s/ # .*//' <<<"$line")
			case $line in
			"not ok "*)
				failures=$((failures + 1))
				record fail "$kver: $1: $name"
				;;
			*" # SKIP"*)
				# The debug kernel is there to inject faults.
				if [ "$job" = debug ] && [ "$1" = fail_nth_test ]; then
					failures=$((failures + 1))
					record fail "$kver: $1: $name" \
						"skipped on the debug kernel: ${line#* # SKIP }"
				else
					record skip "$kver: $1: $name" "${line#* # SKIP }"
				fi
				;;
			*)
				record pass "$kver: $1: $name"
				;;
			esac
			;;
		esac
	done <"$tap"
	if [ "$rc" = none ]; then
		record fail "$kver: $1" "did not finish"
	elif [ "$count" -eq 0 ] || [ "$count" != "$plan" ]; then
		record fail "$kver: $1" "$count TAP results for plan '1..$plan'"
	elif [ "$rc" = 124 ]; then
		record fail "$kver: $1" "timed out"
	elif [ "$failures" -eq 0 ] && [ "$rc" != 0 ] && [ "$rc" != 4 ]; then
		record fail "$kver: $1" "exit status $rc"
	fi
}

# split_ktap: the kselftest runner's KTAP, one program's nested TAP in
# NAME.tap and its exit status, as the runner reports it, in NAME.rc.
split_ktap() {
	awk -v dir="$results" '
		/^# selftests: ich9smi: / {
			name = $4
			printf "" > (dir "/" name ".tap")
			next
		}
		/^(not )?ok [0-9]+ selftests: ich9smi: / {
			ok = $1 == "ok"
			rc = ok ? 0 : "failed"
			if (/ # SKIP/)
				rc = 4
			else if (/ # TIMEOUT/)
				rc = 124
			else if (match($0, / # exit=[0-9]+/))
				rc = substr($0, RSTART + 8, RLENGTH - 8)
			print rc > (dir "/" (ok ? $5 : $6) ".rc")
			name = ""
			next
		}
		name != "" && sub(/^# ?/, "") { print > (dir "/" name ".tap") }
	' "$results/ich9smi.ktap"
}

# judge_tests: every test run the guest announced in "expect"; for the
# kselftest runner's KTAP, every program the selftests' Makefile lists.
judge_tests() {
	local name test names

	[ -f "$results/expect" ] || return 0
	while read -r name; do
		if [ "$name" != ich9smi.ktap ]; then
			judge_selftest "$name"
			continue
		fi
		[ ! -f "$results/$name" ] || split_ktap
		names=$(selftest_names) || names=
		if [ -z "$names" ]; then
			record fail "$kver: selftests" "the Makefile lists none (emit_tests)"
		fi
		for test in $names; do
			judge_selftest "$test"
		done
	done <"$results/expect"
}

# The kernel log, from the guest's dmesg and from the console the host
# captured (the only record of a guest that died before writing dmesg.txt),
# kmemleak's report and the taint flags.
judge_kernel_log() {
	local file hits=() shown='' tainted

	for file in "$results/dmesg.txt" "$run/console.log"; do
		if [ ! -f "$file" ] ||
		   ! grep -Eq "$KERNEL_LINE.*($KERNEL_BAD_RE)" "$file"; then
			continue
		fi
		hits+=("${file##*/}")
		[ -n "$shown" ] && continue
		shown=$file
		msg "    --- ${file##*/}, first bad lines ---"
		grep -E -m 5 -B 2 -A 12 "$KERNEL_LINE.*($KERNEL_BAD_RE)" \
			"$file" | sed 's/^/    /'
	done
	if [ -s "$results/kmemleak.txt" ]; then
		hits+=(kmemleak.txt)
		head -n 40 "$results/kmemleak.txt" | sed 's/^/    /'
	fi
	if [ ${#hits[@]} -ne 0 ]; then
		record fail "$kver: kernel log clean" "bad lines in ${hits[*]}"
	elif [ ! -f "$results/dmesg.txt" ]; then
		record fail "$kver: kernel log clean" "no dmesg from the guest"
	else
		record pass "$kver: kernel log clean"
	fi
	# TAINT_BAD_PAGE, TAINT_DIE, TAINT_WARN, TAINT_SOFTLOCKUP
	tainted=$(cat "$results/tainted" 2>/dev/null || echo 0)
	if [ $((tainted & (1 << 5 | 1 << 7 | 1 << 9 | 1 << 14))) -ne 0 ]; then
		record fail "$kver: kernel not tainted by a fault" \
			"taint flags $tainted"
	fi
}

rm -rf "$run"
mkdir -p "$results"
make_initramfs
write_job_env
start=$EPOCHREALTIME
boot
judge_boot "$(since "$start")"
judge_steps
judge_tests
judge_kernel_log
exit "$failed"
