#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# selftests.sh [MAKE ARGS...]: build tools/testing/selftests/ich9smi into
# $ICH9SMI_CACHE/selftests/ the way a kernel tree would: the directory is copied
# beside the kselftest framework taken from Debian's kernel sources
# (scripts/fetch.sh), where its "include ../lib.mk" and
# "#include ../kselftest_harness.h" resolve. Warnings are errors. The
# attach tool (tools/ich9smi), which attach_test runs, and the programs the
# real-firmware tests run in their firmware guests land beside them
# (scripts/sb-test-key.sh then signs smi-var.efi for them).
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

