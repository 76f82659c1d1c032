#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# bench.sh KVER: the end of "make bench" (scripts/check.sh bench), after
# smi_bench ran in KVER's guest: leave in out/bench/ the table (bench.txt),
# bench.csv, bench.json and bench.png, a plot of the round trip (OUT to the
# writer back from SMM) against the number of vCPUs per path.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

[ $# -eq 1 ] || die "usage: $0 KVER"
kver=$1
out=$ICH9SMI_ROOT/out/bench
results=$ICH9SMI_CACHE/runs/$kver-bench/results
[ -f "$results/bench.csv" ] || die "no benchmark results of $kver"
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
