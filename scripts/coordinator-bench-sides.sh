#!/usr/bin/env bash
# Side by side: `coordinator bench` of two or more coordinator binaries, interleaved, each
# driving itself (`BIN bench --exe BIN`), then one line per (N, binary) with every round's
# figures. The machine's noise moves all binaries of a round alike; compare within a round.
#
#   scripts/coordinator-bench-sides.sh OUT_DIR ROUNDS JOBS "N1 N2 ..." BIN_A BIN_B [BIN ...]
#   e.g. scripts/coordinator-bench-sides.sh /tmp/sides 3 100000 "100 1000" /tmp/coord-old target/release/coordinator
#
# Each run's figures are kept as OUT_DIR/NAME-N-ROUND.json (NAME: the binary's file name, so
# give the binaries different names). docs/benchmarks.md records what this printed, with dates.
set -euo pipefail

if (($# < 6)); then
    sed -n '2,10p' "$0" >&2
    exit 2
fi
out=$1 rounds=$2 jobs=$3 ns=$4
shift 4
mkdir -p "$out"
for round in $(seq 1 "$rounds"); do
    for n in $ns; do
        for bin in "$@"; do
            name=$(basename "$bin")
            echo "round $round, N = $n: $name" >&2
            "$bin" bench --exe "$bin" --workers "$n" --jobs "$jobs" \
                --json "$out/$name-$n-$round.json" >"$out/$name-$n-$round.txt" 2>&1 ||
                echo "failed: $name N = $n round $round (see $out/$name-$n-$round.txt)" >&2
        done
    done
done
python3 - "$out" <<'PY'
import collections, glob, json, os, sys

rows = collections.defaultdict(list)
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.json"))):
    name, n, rnd = os.path.basename(path)[:-5].rsplit("-", 2)
    rows[(int(n), name)].append((int(rnd), json.load(open(path))))
keys = [
    ("jobs/s", "jobs_per_second", 0),
    ("p50 ms", "assign_p50_ms", 1),
    ("p99 ms", "assign_p99_ms", 1),
    ("cpu s/1000", "cpu_seconds_per_1000_jobs", 3),
    ("rss MB", "peak_rss_bytes", -6),
    ("rss+report MB", "peak_rss_with_report_bytes", -6),
    ("restarted MB", "restarted_rss_bytes", -6),
    ("report s", "report_seconds", 2),
    ("restart s", "restart_seconds", 2),
]
for (n, name), runs in sorted(rows.items()):
    runs.sort()
    cells = []
    for label, key, digits in keys:
        values = [r[key] / 1e6 if digits < 0 else r[key] for _, r in runs]
        shown = " / ".join(f"{v:.0f}" if digits <= 0 else f"{v:.{digits}f}" for v in values)
        cells.append(f"{label} {shown}")
    print(f"N={n} {name}: " + "; ".join(cells))
PY
