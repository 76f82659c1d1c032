#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# e2e.sh: "make e2e", the real-firmware test on each Debian kernel under
# test (KERNELS, default 6.1, 6.12 and 7). Installs what is missing, builds the
# module and the attach tool, and runs job "e2e" (scripts/e2e-guest.sh) in a
# guest of each kernel: unmodified QEMU and OVMF boot a Debian kernel with
# Secure Boot, once served by QEMU and once by ich9smi. Prints each
# kernel's boot times and SMI counts and, last, "N passed, N failed".
# ICH9SMI_E2E_ARGS passes options to e2e-guest.sh (for example "-s 4 -i on"
# where the guest's KVM is real KVM, see Documentation/virt/ich9smi.rst).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

scripts=$ICH9SMI_ROOT/scripts
logs=$ICH9SMI_CACHE/runs/e2e
rm -rf "$logs"
mkdir -p "$logs"
ICH9SMI_RESULTS=$logs/results
: >"$ICH9SMI_RESULTS"
# Two firmware boots of a minute or more each under TCG, plus the guest's.
ICH9SMI_VM_TIMEOUT=${ICH9SMI_VM_TIMEOUT:-1200}
export ICH9SMI_RESULTS ICH9SMI_VM_TIMEOUT

"$scripts/deps.sh"
found=$(debian_kernels)
mapfile -t kernels <<<"$found"
fetch_kernels "${kernels[@]}"
if logged "$logs/selftests.build.log" "$scripts/selftests.sh"; then
	result pass "attach tool build"
else
	result fail "attach tool build"
	kernels=()
fi
for kver in "${kernels[@]}"; do
	if ! KVER=$kver \
	     logged "$logs/$kver.build.log" "$scripts/module.sh"; then
		result fail "$kver: build"
		continue
	fi
	"$scripts/vm.sh" "$kver" e2e || true
done
for kver in "${kernels[@]}"; do
	table=$ICH9SMI_CACHE/runs/$kver-e2e/results/e2e/e2e.txt
	[ -f "$table" ] || continue
	msg "== $kver"
	cat "$table"
done
summary ""
