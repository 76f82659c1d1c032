#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# selftests.sh [MAKE ARGS...]: build tools/testing/selftests/ich9smi into
# $ICH9SMI_CACHE/selftests/ the way a kernel tree would: the directory is copied
# beside the kselftest framework taken from Debian's kernel sources
# (scripts/fetch.sh), where its "include ../lib.mk" and
# "#include ../kselftest_harness.h" resolve. Warnings are errors. The
# attach tool (tools/ich9smi), which attach_test runs, and the programs the
# real-firmware tests run in their firmware guests land beside them.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

[ -f "$KSFT_DIR/kselftest/runner.sh" ] || "$ICH9SMI_ROOT/scripts/fetch.sh"
rsync -a --delete "$ICH9SMI_ROOT/tools/testing/selftests/ich9smi/" \
	"$KSFT_DIR/ich9smi/"
make -C "$KSFT_DIR" TARGETS=ich9smi O="$KSFT_OUT" FORCE_TARGETS=1 \
	ICH9SMI_UAPI="$ICH9SMI_ROOT/include/uapi" USERCFLAGS=-Werror "$@"
make -C "$ICH9SMI_ROOT/tools/ich9smi" OUTPUT="$SELFTESTS_OUT/" \
	ICH9SMI_UAPI="$ICH9SMI_ROOT/include/uapi" EXTRA_CFLAGS=-Werror all guest

# Secure Boot for the firmware guests on several vCPUs: smi-var.efi signed
# with a test key made here, and a copy of OVMF's variable store with
# Microsoft's keys (Secure Boot on) and the test key's certificate added to
# db. Made in the trixie chroot (virt-fw-vars is not in Debian 12), which
# sees the cache but not /usr/share/OVMF.
"$ICH9SMI_ROOT/scripts/toolchain.sh"
sb=$SELFTESTS_OUT/sb
owner=0b6e1a4c-2f77-4d1e-8e0a-1c9d5a3b6f21	# made up: the db entry's owner
rm -rf "$sb"
mkdir -p "$sb"
cp /usr/share/OVMF/OVMF_VARS_4M.ms.fd "$sb/ms-vars.fd"
trixie_run openssl req -x509 -newkey rsa:2048 -nodes -days 3650 \
	-subj "/CN=ich9smi test key" -keyout "$sb/test.key" \
	-out "$sb/test.crt" 2>/dev/null
trixie_run sbsign --key "$sb/test.key" --cert "$sb/test.crt" \
	--output "$SELFTESTS_OUT/smi-var.signed.efi" "$SELFTESTS_OUT/smi-var.efi"
trixie_run virt-fw-vars --loglevel warning --input "$sb/ms-vars.fd" \
	--add-db "$owner" "$sb/test.crt" \
	--output "$SELFTESTS_OUT/OVMF_VARS_4M.test-db.fd"
rm -rf "$sb"
