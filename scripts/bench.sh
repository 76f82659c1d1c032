#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# bench.sh: "make bench". Build the module and smi_bench for one Debian
# kernel (the newest of the series in ICH9SMI_BENCH_KERNEL, default 6.12),
# run the benchmark in its guest, and leave in out/bench/ the table
# (bench.txt), bench.csv, bench.json and bench.png, a plot of the round trip
# (OUT to the writer back from SMM) against the number of vCPUs per path.
# ICH9SMI_BENCH_ARGS overrides smi_bench's arguments (see scripts/vm.sh).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

scripts=$ICH9SMI_ROOT/scripts
out=$ICH9SMI_ROOT/out/bench
series=${ICH9SMI_BENCH_KERNEL:-6.12}

"$scripts/deps.sh"
kver=$(ICH9SMI_KERNELS=$series debian_kernels)
fetch_kernels "$kver"
KVER=$kver "$scripts/module.sh" >/dev/null
"$scripts/selftests.sh" >/dev/null

ICH9SMI_VERBOSE=1 "$scripts/vm.sh" "$kver" bench

results=$ICH9SMI_CACHE/runs/$kver-bench/results
rm -rf "$out"
mkdir -p "$out"
cp "$results/bench.txt" "$results/bench.csv" "$results/bench.json" "$out/"

# One line per path: the round-trip median against the vCPU count.
plot() {
	local csv=$out/bench.csv paths path cmds=()

	paths=$(awk -F, 'NR > 1 && !seen[$1]++ { print $1 }' "$csv")
	for path in $paths; do
		cmds+=("'< grep \"^$path,\" $csv' using 2:9 with linespoints title '$path'")
	done
	gnuplot <<GNUPLOT
set terminal png size 900,600
set output '$out/bench.png'
set datafile separator ','
set logscale x 2
set logscale y
set xlabel 'vCPUs'
set ylabel 'OUT to writer back from SMM, median (us, guest TSC)'
set title 'SMI round trip per path (kernel $kver, nested KVM under TCG)'
set key left top
plot $(IFS=,; printf '%s' "${cmds[*]}")
GNUPLOT
}
plot
msg "bench: kernel $kver; results in ${out#"$ICH9SMI_ROOT"/}/ (bench.txt, bench.csv, bench.json, bench.png)"
