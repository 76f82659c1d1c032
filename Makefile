# SPDX-License-Identifier: GPL-2.0
#
# ich9smi: build the module out of tree and test it in QEMU guests running
# Debian's kernels. kbuild itself reads ./Kbuild; the steps below live in
# scripts/ (see README.md). Targets:
#
#   make [modules]   build drivers/virt/ich9smi/ich9smi.ko for each Debian
#                    kernel under test, or only for KDIR=<kernel build tree>;
#                    the objects go to .cache/build/<kernel release>/
#   make selftests   build tools/testing/selftests/ich9smi into .cache/selftests
#   make deps        install the missing Debian packages
#   make check       deps, static checks, builds, selftests in a guest per kernel
#   make demo        deps, builds, the demo job in a guest per kernel
#   make bench       the SMI benchmark in a 6.12 guest; results in out/bench/
#   make e2e         unmodified QEMU and OVMF with and without ich9smi, in a
#                    guest per kernel (make check runs it on 6.12 only)
#   make clean       remove build output (downloads and kernels stay cached)
#
# KERNELS="6.1 6.12" picks the Debian kernel series under test.

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
	@scripts/bench.sh

e2e:
	@scripts/e2e.sh

demo:
	@scripts/check.sh demo

clean:
	rm -rf .cache/build .cache/selftests .cache/runs

.PHONY: all modules selftests deps check demo bench e2e clean
