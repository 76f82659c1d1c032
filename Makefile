# SPDX-License-Identifier: GPL-2.0
#
# ich9smi: build the module out of tree and test it in QEMU guests running
# Debian's kernels. kbuild itself reads ./Kbuild; the steps below live in
# scripts/ (see README.md). Targets:
#
#   make [modules]   build drivers/virt/ich9smi/ich9smi.ko for each Debian
#                    kernel under test, or only for KDIR=<kernel build tree>;
#                    the objects go to $(CACHE)/build/<kernel release>/
#   make selftests   build tools/testing/selftests/ich9smi into $(CACHE)/selftests
#   make deps        install the missing Debian packages
#   make check       deps, static checks, builds, selftests in a guest per kernel
#   make demo        deps, builds, the demo job in a guest per kernel
#   make bench       the SMI benchmark in a 6.12 guest; results in out/bench/
#   make trace       KVM's calls per SMI and path, from function_graph
#   make e2e         unmodified QEMU and OVMF with and without ich9smi, in a
#                    guest per kernel (make check runs it on 6.12 only)
#   make clean       remove build output (downloads and kernels stay cached)
#
# KERNELS="6.1 6.12 7" picks the Debian kernel series under test (6.1:
# Debian 12; 6.12: Debian 13; 7: the newest 7.x of trixie-backports).
# ICH9SMI_CACHE (default /var/cache/ich9smi) holds everything built or
# downloaded, outside the clone.
#
# Installing, and the in-tree form (README.md, "Installing" and "Submitting
# upstream"):
#
#   make install     build for KVER (default: the running kernel) or KDIR and
#                    install ich9smi.ko in updates/, the UAPI header and the
#                    udev rule; INSTALL_MOD_PATH and DESTDIR stage elsewhere
#   make uninstall   remove what make install installed
#   make dkms        copy the sources to /usr/src/ich9smi-<version>/ and dkms
#                    add, build and install them for KVER (dkms.conf)
#   make dkms-remove dkms remove, and delete that copy
#   make patches     the upstream series against KSRC=<kernel tree> (default:
#                    linux-source-7.x's files after make intree, else
#                    linux-source-6.12's) in OUT=<dir> (out/patches/),
#                    checked with the tree's checkpatch.pl --strict
#   make intree      apply the series to linux-source-7.x and build KVM and
#                    ich9smi there for Debian 13's 7.x kernel ($(CACHE)/intree/)
#
# A debug kernel (README.md, "Debug kernel"):
#
#   make debug-check build linux-source-6.12 once with KASAN, lockdep, UBSAN,
#                    kmemleak... ($(CACHE)/debug/) and run every selftest in a
#                    guest of it; too slow for make check

SHELL := /bin/bash

ifneq ($(KERNELS),)
export ICH9SMI_KERNELS := $(KERNELS)
endif
ifneq ($(KDIR),)
export KDIR
endif

all: modules

modules:
	@scripts/module.sh

selftests:
	@scripts/selftests.sh

deps:
	@scripts/deps.sh

check:
	@scripts/check.sh check

bench:
	@scripts/check.sh bench

e2e:
	@scripts/check.sh e2e

trace:
	@scripts/check.sh trace

demo:
	@scripts/check.sh demo

install uninstall:
	@scripts/install.sh $@

dkms:
	@scripts/dkms.sh install $(KVER)

dkms-remove:
	@scripts/dkms.sh remove $(KVER)

# The default KSRC holds only the files the series touches: checkpatch runs
# without its tree checks there.
CACHE := $(or $(ICH9SMI_CACHE),/var/cache/ich9smi)
OUT ?= out/patches
# Without KSRC the series is made against linux-source-7.x's files as
# make intree extracted them, or else against linux-source-6.12's.
PRISTINE := $(CACHE)/intree/pristine
patches:
	@[ -n "$(KSRC)" ] || [ -d "$(PRISTINE)" ] || scripts/fetch.sh >/dev/null
	@ksrc="$(or $(KSRC),$(if $(wildcard $(PRISTINE)),$(PRISTINE),$(CACHE)/src/linux-source-6.12))"; \
	scripts/patches.sh "$$ksrc" "$(OUT)" && \
	if [ -f "$$ksrc/COPYING" ]; then \
		cd "$$ksrc" && perl scripts/checkpatch.pl --strict \
			"$(abspath $(OUT))"/*.patch; \
	else \
		cp="$$ksrc/scripts/checkpatch.pl"; \
		[ -f "$$cp" ] || cp="$(CACHE)/intree/linux/scripts/checkpatch.pl"; \
		perl "$$cp" --strict --no-tree "$(OUT)"/*.patch; \
	fi

intree:
	@scripts/intree.sh

debug-check:
	@scripts/debug-kernel.sh

.PHONY: install uninstall dkms dkms-remove patches intree debug-check

clean:
	rm -rf $(CACHE)/build $(CACHE)/selftests $(CACHE)/runs

.PHONY: all modules selftests deps check demo bench e2e trace clean
