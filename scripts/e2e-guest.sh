#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# e2e-guest.sh [-s SMP] [-i IRQCHIP] [-t SECONDS] OUTDIR: real firmware on
# ich9smi. Boots Debian's QEMU with Debian's OVMF (Secure Boot build, fresh
# Microsoft-keys variable store) and a Debian kernel by direct kernel boot,
# whose tiny initramfs prints a marker and powers off: once as it is, with
# QEMU serving the APM port, and once with tools/ich9smi/ich9smi-attach
# attached while QEMU is paused (-S), so that ich9smi serves it. Each run
# must show the marker and a kernel that reports Secure Boot enabled; the
# ich9smi run must show hundreds of APM_CNT writes in the device's
# statistics and none that ich9smi should have served in QEMU's own
# apm_io_write trace. Prints both runs' times and SMI counts side by side.
#
# It runs where ich9smi.ko is loaded and /dev/kvm works: in the test guest
# (scripts/guest-job.sh, job "e2e"), or as root on a KVM host. Steps go to
# OUTDIR/steps as "STATUS<TAB>NAME<TAB>DETAIL" lines (STATUS pass or fail),
# the table to OUTDIR/e2e.txt, each run's serial console, QEMU trace and
# tool output to OUTDIR/<run>/. The exit status is 1 if a step failed.
#
#   -s SMP      vCPUs of the firmware guest (default 1)
#   -i IRQCHIP  QEMU's kernel-irqchip: off (default), on or split
#   -t SECONDS  time limit of one boot (default 900)
#
# Environment: E2E_TOOL (the attach tool, default ich9smi-attach in PATH),
# E2E_KERNEL (default /boot/vmlinuz-$(uname -r)), E2E_OVMF_DIR (default
# /usr/share/OVMF).
#
# Under TCG (this project's machines) keep the defaults: the outer QEMU
# aborts when a 64-bit guest of the nested KVM writes CR8 with the in-kernel
# irqchip, and with it off, more than one vCPU livelocks in PEI. With real
# KVM, "-s 4 -i on" runs the broadcast version.
set -uo pipefail

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
smp=1
irqchip=off
limit=900
while getopts s:i:t: opt; do
	case $opt in
	s) smp=$OPTARG ;;
	i) irqchip=$OPTARG ;;
	t) limit=$OPTARG ;;
	*) exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 1 ] || {
	echo "usage: $0 [-s SMP] [-i off|on|split] [-t SECONDS] OUTDIR" >&2
	exit 2
}
out=$1
tool=${E2E_TOOL:-$(command -v ich9smi-attach)}
kernel=${E2E_KERNEL:-/boot/vmlinuz-$(uname -r)}
ovmf=${E2E_OVMF_DIR:-/usr/share/OVMF}
marker=ICH9SMI-E2E-MARKER
failed=0

say() {
	printf 'e2e: %s\n' "$*"
}

# step STATUS NAME [DETAIL]
step() {
	printf '%s\t%s\t%s\n' "$1" "e2e: $2" "${3:-}" >>"$out/steps"
	say "$1 $2${3:+: $3}"
	[ "$1" != fail ] || failed=1
}

# The firmware guest's initramfs: busybox, and an init that prints the
# marker and the kernel's Secure Boot lines, then powers off.
make_initramfs() {
	local work=$out/initramfs

	rm -rf "$work"
	mkdir -p "$work/bin"
	cp /bin/busybox "$work/bin/busybox"
	cat >"$work/init" <<-EOF
		#!/bin/busybox sh
		/bin/busybox mkdir -p /proc
		/bin/busybox mount -t proc proc /proc
		echo
		echo "$marker \$(/bin/busybox uname -r)"
		/bin/busybox dmesg | /bin/busybox grep -i 'secure.\?boot'
		/bin/busybox poweroff -f
	EOF
	chmod 755 "$work/init"
	(cd "$work" && find . | cpio -o -H newc --quiet) >"$out/initramfs.cpio"
	rm -rf "$work"
}

# A field of the last statistics line of the tool.
stat() {
	grep '^ich9smi-attach: stats ' "$1" | tail -n 1 |
		grep -o "$2=[0-9]*" | cut -d= -f2
}

# QEMU's apm_io_write trace: "addr=0xA val=0xV" per write, A 0 (APM_CNT)
# or 1 (APM_STS). Count the writes matching an awk condition on a and v.
trace_count() {
	grep -o 'addr=0x[0-9a-f]* val=0x[0-9a-f]*' "$1" 2>/dev/null |
		awk -v cond="$2" '{
			cnt = $1 == "addr=0x0"
			acpi = cnt && ($2 == "val=0x02" || $2 == "val=0x03")
			if ((cond == "cnt" && cnt) || (cond == "acpi" && acpi) ||
			    (cond == "smi" && cnt && !acpi) ||
			    (cond == "sts" && $1 == "addr=0x1"))
				n++
		} END { print n + 0 }'
}

wait_for_file() {
	local i

	for ((i = 0; i < 100; i++)); do
		[ -e "$1" ] && return 0
		sleep 0.1
	done
	return 1
}

# boot NAME ATTACH: one firmware boot; ATTACH 1 starts QEMU paused and
# lets the tool attach and resume it. Sets boot_s, qemu_rc, tool_rc.
boot() {
	local name=$1 attach=$2 dir=$out/$1 qmp=$sockets/$1.qmp
	local qpid tpid=0 dog start cmd

	rm -rf "$dir"
	mkdir -p "$dir"
	cp "$ovmf/OVMF_VARS_4M.ms.fd" "$dir/vars.fd"
	cmd=(qemu-system-x86_64
	     -M "q35,smm=on,accel=kvm,kernel-irqchip=$irqchip"
	     -smp "$smp" -m 512M -nodefaults -display none -no-reboot
	     -global "driver=cfi.pflash01,property=secure,value=on"
	     -drive "if=pflash,format=raw,unit=0,readonly=on,file=$ovmf/OVMF_CODE_4M.secboot.fd"
	     -drive "if=pflash,format=raw,unit=1,file=$dir/vars.fd"
	     -kernel "$kernel" -initrd "$out/initramfs.cpio"
	     -append "console=ttyS0 quiet panic=-1"
	     -serial "file:$dir/serial.log"
	     -trace "apm_io_write,file=$dir/apm.trace"
	     -qmp "unix:$qmp,server=on,wait=off")
	[ "$attach" -eq 0 ] || cmd+=(-S)
	say "$name: ${cmd[*]}"
	start=$EPOCHREALTIME
	"${cmd[@]}" >"$dir/qemu.log" 2>&1 &
	qpid=$!
	# QEMU exits 0 on SIGTERM: the watchdog leaves a mark when it fires.
	(sleep "$limit" && : >"$dir/timed-out" && kill "$qpid") 2>/dev/null &
	dog=$!
	if [ "$attach" -eq 1 ]; then
		if wait_for_file "$qmp"; then
			"$tool" --qmp "$qmp" --cont --stats --verbose \
				"$qpid" >"$dir/attach.log" 2>&1 &
			tpid=$!
		else
			say "$name: QEMU made no QMP socket"
			kill "$qpid"
		fi
	fi
	wait "$qpid"
	qemu_rc=$?
	boot_s=$(awk -v a="$start" -v b="$EPOCHREALTIME" \
		 'BEGIN { printf "%.1f", b - a }')
	kill "$dog" 2>/dev/null
	wait "$dog" 2>/dev/null
	tool_rc=none
	if [ "$tpid" -ne 0 ]; then
		wait "$tpid"
		tool_rc=$?
	fi
	sed 's/^/    /' "$dir/qemu.log"
	[ ! -f "$dir/attach.log" ] || sed 's/^/    /' "$dir/attach.log"
}

# judge_boot NAME: what every boot must show.
judge_boot() {
	local name=$1 dir=$out/$1

	if [ -e "$dir/timed-out" ]; then
		step fail "$name: QEMU exit" "killed at the time limit (${limit}s), see $dir"
	elif [ "$qemu_rc" -ne 0 ]; then
		step fail "$name: QEMU exit" "status $qemu_rc after ${boot_s}s (time limit ${limit}s), see $dir"
	fi
	if grep -aq "$marker " "$dir/serial.log"; then
		step pass "$name: marker from the initramfs" "${boot_s}s"
	else
		step fail "$name: marker from the initramfs" "not in $dir/serial.log"
	fi
	if grep -aq 'secureboot: Secure boot enabled' "$dir/serial.log"; then
		step pass "$name: kernel reports Secure Boot enabled"
	else
		step fail "$name: kernel reports Secure Boot enabled" \
			"no 'secureboot: Secure boot enabled' in $dir/serial.log"
	fi
}

for file in "$kernel" "$ovmf/OVMF_CODE_4M.secboot.fd" \
	    "$ovmf/OVMF_VARS_4M.ms.fd" /bin/busybox; do
	[ -r "$file" ] || {
		echo "e2e: missing $file" >&2
		exit 1
	}
done
[ -x "$tool" ] || {
	echo "e2e: no attach tool (E2E_TOOL)" >&2
	exit 1
}
mkdir -p "$out"
: >"$out/steps"
# QMP sockets cannot live on 9p, where OUTDIR may be.
sockets=$(mktemp -d)
trap 'rm -rf "$sockets"' EXIT
make_initramfs
say "kernel $kernel, $smp vCPU(s), kernel-irqchip=$irqchip"

# Without ich9smi: QEMU serves every write; its trace is the reference.
boot qemu 0
judge_boot qemu
q_time=$boot_s
q_smis=$(trace_count "$out/qemu/apm.trace" smi)
if [ "$q_smis" -ge 100 ]; then
	step pass "qemu: QEMU's trace saw the firmware's SMIs" "$q_smis"
else
	step fail "qemu: QEMU's trace saw the firmware's SMIs" \
		"only $q_smis APM_CNT writes in $out/qemu/apm.trace"
fi

# With ich9smi.
boot ich9smi 1
judge_boot ich9smi
i_time=$boot_s
if [ "$tool_rc" = 0 ] && grep -q '^ich9smi-attach: attached ' \
		"$out/ich9smi/attach.log"; then
	step pass "ich9smi: attach tool" \
		"$(grep '^ich9smi-attach: attached ' "$out/ich9smi/attach.log")"
else
	step fail "ich9smi: attach tool" "exit status $tool_rc, see $out/ich9smi/attach.log"
fi
cnt=$(stat "$out/ich9smi/attach.log" cnt_writes)
uni=$(stat "$out/ich9smi/attach.log" smis_unicast)
bro=$(stat "$out/ich9smi/attach.log" smis_broadcast)
sup=$(stat "$out/ich9smi/attach.log" smis_suppressed)
vmm=$(stat "$out/ich9smi/attach.log" exits_to_vmm)
i_smis=$((${uni:-0} + ${bro:-0}))
if [ -n "$cnt" ] && [ "$i_smis" -ge 100 ] && [ "${sup:-1}" -eq 0 ]; then
	step pass "ich9smi: served the SMIs" \
		"$cnt APM_CNT writes, $uni unicast + $bro broadcast SMIs, $vmm passed to QEMU"
else
	step fail "ich9smi: served the SMIs" \
		"statistics: ${cnt:-none} writes, $i_smis SMIs, ${sup:-?} suppressed"
fi
missed=$(trace_count "$out/ich9smi/apm.trace" smi)
missed_sts=$(trace_count "$out/ich9smi/apm.trace" sts)
acpi=$(trace_count "$out/ich9smi/apm.trace" acpi)
if [ "$missed" -eq 0 ] && [ "$missed_sts" -eq 0 ] &&
   [ "$acpi" -eq "${vmm:--1}" ]; then
	step pass "ich9smi: QEMU's trace saw no write ich9smi should serve" \
		"$acpi ACPI enable/disable writes, as the statistics say"
else
	step fail "ich9smi: QEMU's trace saw no write ich9smi should serve" \
		"$missed APM_CNT SMI commands, $missed_sts APM_STS writes, $acpi ACPI commands (device passed ${vmm:-?})"
fi

{
	printf '%-24s %14s %14s\n' "" "QEMU" "ich9smi"
	printf '%-24s %14s %14s\n' "boot to power-off (s)" "$q_time" "$i_time"
	printf '%-24s %14s %14s\n' "SMIs (APM_CNT writes)" "$q_smis" "$i_smis"
	printf '%-24s %14s %14s\n' "served by" "QEMU (trace)" \
		"kernel (stats)"
} >"$out/e2e.txt"
say "kernel $(basename "$kernel"), $smp vCPU(s), kernel-irqchip=$irqchip"
sed 's/^/e2e: /' "$out/e2e.txt"
exit "$failed"
