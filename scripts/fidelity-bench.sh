#!/usr/bin/env bash
# fidelity-bench.sh — is our engine as fast as llama.cpp's own llama-bench, on the same build?
#
#   scripts/fidelity-bench.sh [--rounds N] [--reps N] [--threads "1 2"] [--profile release|debug]
#                             [--models "models/a.gguf models/b.gguf"] [--lib-dir DIR]
#
# 1. Builds llama.cpp's llama-bench (tools/llama-bench from the llama-cpp-python sdist on PyPI,
#    which vendors llama.cpp with its tools; llama-cpp-sys-2 ships none) against the very static
#    libraries our build compiled (target/$PROFILE/build/llama-cpp-sys-2-*/out): the same objects,
#    flags and CMake build type as the worker's, so the comparison is of the two programs only.
# 2. Runs llama-bench and `worker bench` interleaved — round after round, alternating which goes
#    first — on the same model, threads and tests (pp64, pp512, tg64, tg128), each with --reps
#    repetitions, so that machine load drifts hit both alike.
# 3. Prints, per model/test/threads, the median over rounds of each tool's avg_ts, ours ÷ theirs,
#    and a 95 % bootstrap interval over the interleaved pairs, against the targets (generation
#    ≥ 0.97, prompt ≥ 0.95). Exit status 1 when a median ratio misses its target.
#
# Raw JSON lines are kept under target/fidelity/runs/. Needs python3, g++, libssl-dev (the
# vendored cpp-httplib in llama.cpp's common library links OpenSSL), and a built worker.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

# shellcheck source=scripts/llama-sdist.sh
source scripts/llama-sdist.sh
ROUNDS=3
REPS=5
THREADS="1 2"
PROFILE=release
MODELS="models/SmolLM2-135M-Instruct.Q4_1.gguf models/gemma-3-270m-q4_k_m.gguf"
LIB_DIR=""
while [[ $# -gt 0 ]]; do
    case "$1" in
    --rounds) ROUNDS="$2"; shift 2 ;;
    --reps) REPS="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --profile) PROFILE="$2"; shift 2 ;;
    --models) MODELS="$2"; shift 2 ;;
    --lib-dir) LIB_DIR="$2"; shift 2 ;;
    *) echo "fidelity-bench: unknown argument $1" >&2; exit 2 ;;
    esac
done

log() { echo "fidelity-bench: $*" >&2; }
TARGET="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
WORK="$TARGET/fidelity"
WORKER="$TARGET/$PROFILE/worker"
mkdir -p "$WORK/runs"

[[ -x "$WORKER" ]] || {
    log "$WORKER missing: build it first (cargo build $([[ $PROFILE == release ]] && echo --release) -p benchfarm-worker --features benchfarm-engine/llama-common)"
    exit 1
}

# The llama.cpp build the worker links: the newest llama-cpp-sys-2 output of this profile.
if [[ -z "$LIB_DIR" ]]; then
    LIB_DIR=$(ls -dt "$TARGET/$PROFILE"/build/llama-cpp-sys-2-*/out 2>/dev/null |
        while read -r d; do [[ -f "$d/lib/libllama-common.a" ]] && echo "$d" && break; done || true)
fi
[[ -n "$LIB_DIR" && -f "$LIB_DIR/lib/libllama.a" ]] || { log "no llama.cpp build under $TARGET/$PROFILE"; exit 1; }
# llama-bench links llama.cpp's common library, which only a build with the engine's
# `llama-common` feature has (engine/Cargo.toml).
[[ -f "$LIB_DIR/lib/libllama-common.a" ]] || {
    log "$LIB_DIR has no common library: build with --features benchfarm-engine/llama-common"
    exit 1
}
CACHE="$LIB_DIR/build/CMakeCache.txt"
log "llama.cpp build: $LIB_DIR"
log "  $(grep -E '^CMAKE_BUILD_TYPE:' "$CACHE")  $(grep -E '^GGML_NATIVE:' "$CACHE")"

SRC=$(ls -d "$HOME"/.cargo/registry/src/*/llama-cpp-sys-2-0.1.161/llama.cpp | head -1)
# The sdist vendors llama.cpp's tools/llama-bench (now checked against its pinned sha256 too).
SDIST=$(llama_sdist "$WORK")
BENCH_SRC="$WORK/$LLAMA_SDIST_VENDOR/tools/llama-bench"
LLAMA_BENCH="$WORK/llama-bench-$(basename "$(dirname "$LIB_DIR")")"
[[ -d "$BENCH_SRC" ]] || tar -xzf "$SDIST" -C "$WORK" "$LLAMA_SDIST_VENDOR/tools/llama-bench"
if [[ ! -x "$LLAMA_BENCH" ]]; then
    # Compile flags as CMake's Release for ggml's tools; the library code is already compiled.
    native=$(grep -q '^GGML_NATIVE:BOOL=ON' "$CACHE" && echo -march=native || true)
    log "compiling llama-bench against $LIB_DIR"
    g++ -std=c++17 -O3 -DNDEBUG $native -fopenmp \
        -I"$SRC/common" -I"$SRC/include" -I"$SRC/ggml/include" -I"$SRC/vendor" \
        "$BENCH_SRC/llama-bench.cpp" "$BENCH_SRC/main.cpp" -o "$LLAMA_BENCH.partial" \
        -L"$LIB_DIR/lib" -L"$LIB_DIR/build/common" -L"$LIB_DIR/build/vendor/hash" \
        -L"$LIB_DIR/build/vendor/cpp-httplib" \
        -Wl,--start-group -lllama-common -lllama-common-base -lllama -lggml -lggml-base -lggml-cpu \
        -lcpp-httplib -lvendor-hash -Wl,--end-group -lssl -lcrypto -lpthread
    mv "$LLAMA_BENCH.partial" "$LLAMA_BENCH"
fi

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RAW="$WORK/runs/$STAMP.jsonl"
log "raw results: $RAW"
for round in $(seq 1 "$ROUNDS"); do
    for model in $MODELS; do
        for t in $THREADS; do
            # Alternate who goes first, so neither always runs on a warmer (or busier) machine.
            order="theirs ours"
            ((round % 2 == 0)) && order="ours theirs"
            for who in $order; do
                if [[ $who == theirs ]]; then
                    out=$("$LLAMA_BENCH" -m "$model" -p 64,512 -n 64,128 -t "$t" -r "$REPS" -o jsonl 2>/dev/null)
                else
                    out=$("$WORKER" bench -m "$model" -p 64,512 -n 64,128 -t "$t" -r "$REPS" -o jsonl 2>/dev/null)
                fi
                while IFS= read -r line; do
                    printf '{"round":%d,"who":"%s","model":"%s","rec":%s}\n' "$round" "$who" "$(basename "$model")" "$line"
                done <<<"$out" >>"$RAW"
            done
            log "round $round/$ROUNDS $(basename "$model") t=$t done"
        done
    done
done

python3 - "$RAW" <<'EOF'
import json, random, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
cells = {}
for r in rows:
    rec = r["rec"]
    test = f"pp{rec['n_prompt']}" if rec["n_gen"] == 0 else f"tg{rec['n_gen']}"
    key = (r["model"], test, rec["n_threads"])
    cells.setdefault(key, {}).setdefault(r["round"], {})[r["who"]] = rec["avg_ts"]
random.seed(1)
failed = False
print("| model | test | threads | ours t/s | llama-bench t/s | ours ÷ theirs | 95 % CI | target |")
print("|---|---|---:|---:|---:|---:|---|---|")
for (model, test, threads), by_round in sorted(cells.items()):
    pairs = [(v["ours"], v["theirs"]) for v in by_round.values() if "ours" in v and "theirs" in v]
    ours = statistics.median(p[0] for p in pairs)
    theirs = statistics.median(p[1] for p in pairs)
    ratio = ours / theirs
    boot = []
    for _ in range(2000):
        s = [random.choice(pairs) for _ in pairs]
        boot.append(statistics.median(p[0] for p in s) / statistics.median(p[1] for p in s))
    boot.sort()
    lo, hi = boot[int(0.025 * len(boot))], boot[int(0.975 * len(boot)) - 1]
    target = 0.97 if test.startswith("tg") else 0.95
    ok = ratio >= target
    failed |= not ok
    print(f"| {model} | {test} | {threads} | {ours:.2f} | {theirs:.2f} | {ratio:.3f} | "
          f"{lo:.3f}–{hi:.3f} | ≥ {target} {'ok' if ok else 'MISSED'} |")
print(f"\n{len(pairs)} interleaved rounds per cell; each figure is a tool's avg_ts over its repetitions.")
sys.exit(1 if failed else 0)
EOF
