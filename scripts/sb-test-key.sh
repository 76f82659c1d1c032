#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# sb-test-key.sh: Secure Boot for the firmware guests on several vCPUs
# (scripts/kernel-apm-guest.py), after scripts/selftests.sh: a throwaway
# test key, smi-var.efi signed with it (smi-var.signed.efi), and a copy
# of OVMF's variable store with Microsoft's keys (Secure Boot on) and the
# test key's certificate added to db (OVMF_VARS_4M.test-db.fd), beside the
# selftests. The tools (openssl, sbsign, virt-fw-vars) run in the trixie
# chroot: Debian 12 has no virt-firmware. The variable store must be the
# one of the OVMF the guests boot: ICH9SMI_OVMF_DIR, default
# /usr/share/OVMF, as the guests' KAPM_OVMF_DIR.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

ovmf=${ICH9SMI_OVMF_DIR:-/usr/share/OVMF}
[ -f "$SELFTESTS_OUT/smi-var.efi" ] ||
	die "no $SELFTESTS_OUT/smi-var.efi (scripts/selftests.sh)"
[ -f "$ovmf/OVMF_VARS_4M.ms.fd" ] ||
	die "no $ovmf/OVMF_VARS_4M.ms.fd (Debian's ovmf package)"
"$ICH9SMI_ROOT/scripts/toolchain.sh"
# The chroot sees the cache, not /usr/share: the work happens there.
sb=$SELFTESTS_OUT/sb
owner=0b6e1a4c-2f77-4d1e-8e0a-1c9d5a3b6f21	# made up: the db entry's owner
rm -rf "$sb" "$SELFTESTS_OUT/smi-var.signed.efi" \
	"$SELFTESTS_OUT/OVMF_VARS_4M.test-db.fd"
trap 'rm -rf "$sb"' EXIT
mkdir -p "$sb"
cp "$ovmf/OVMF_VARS_4M.ms.fd" "$sb/ms-vars.fd"
trixie_run openssl req -x509 -newkey rsa:2048 -nodes -days 3650 \
	-subj "/CN=ich9smi test key" -keyout "$sb/test.key" \
	-out "$sb/test.crt"
trixie_run sbsign --key "$sb/test.key" --cert "$sb/test.crt" \
	--output "$SELFTESTS_OUT/smi-var.signed.efi" "$SELFTESTS_OUT/smi-var.efi"
trixie_run virt-fw-vars --loglevel warning --input "$sb/ms-vars.fd" \
	--add-db "$owner" "$sb/test.crt" \
	--output "$SELFTESTS_OUT/OVMF_VARS_4M.test-db.fd"
msg "sb-test-key: $SELFTESTS_OUT/smi-var.signed.efi, $SELFTESTS_OUT/OVMF_VARS_4M.test-db.fd"
