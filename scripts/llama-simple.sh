#!/usr/bin/env bash
# llama-simple.sh — build llama.cpp's own `llama-simple` (examples/simple: greedy generation with
# nothing but llama.h) against the llama.cpp our test build already compiled, for the greedy
# equivalence test (e2e/tests/greedy_equivalence.rs). Prints the binary's path.
#
#   scripts/llama-simple.sh [--profile debug|release]
#
# One source file from the llama-cpp-python sdist (scripts/llama-sdist.sh), compiled with the same
# CPU flags as the library (`-march=native` when the build configured GGML_NATIVE) and linked to
# the very static libraries cargo built in target/$PROFILE/build/llama-cpp-sys-2-*/out — seconds,
# not a second llama.cpp build. One change to the example, made here: `BENCHFARM_THREADS` in the
# environment sets its thread count (it has no -t flag), so both sides run at equal threads.
# Idempotent: rebuilt only when the llama.cpp build changes.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
# shellcheck source=scripts/llama-sdist.sh
source scripts/llama-sdist.sh

SYS_VERSION=0.1.161
PROFILE=debug
while [[ $# -gt 0 ]]; do
    case "$1" in
    --profile) PROFILE="$2"; shift 2 ;;
    *) echo "llama-simple: unknown argument $1" >&2; exit 2 ;;
    esac
done
log() { echo "llama-simple: $*" >&2; }

TARGET="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
WORK="$TARGET/llama-server"
LIB_DIR=$(ls -dt "$TARGET/$PROFILE"/build/llama-cpp-sys-2-*/out 2>/dev/null |
    while read -r d; do [[ -f "$d/lib/libllama.a" ]] && echo "$d" && break; done || true)
[[ -n "$LIB_DIR" ]] || { log "no llama.cpp build under $TARGET/$PROFILE: build the workspace first"; exit 1; }
BIN="$WORK/llama-simple-$(basename "$(dirname "$LIB_DIR")")"
if [[ -x "$BIN" && "$BIN" -nt "$LIB_DIR/lib/libllama.a" ]]; then
    echo "$BIN"
    exit 0
fi
SRC=$(ls -d "$HOME"/.cargo/registry/src/*/llama-cpp-sys-2-$SYS_VERSION/llama.cpp | head -1)
[[ -f "$SRC/include/llama.h" ]] || { log "llama-cpp-sys-2 $SYS_VERSION sources not found under ~/.cargo/registry"; exit 1; }
SDIST=$(llama_sdist "$WORK")
SIMPLE="$WORK/$LLAMA_SDIST_VENDOR/examples/simple/simple.cpp"
[[ -f "$SIMPLE" ]] || tar -xzf "$SDIST" -C "$WORK" "$LLAMA_SDIST_VENDOR/examples/simple/simple.cpp"

start=$SECONDS
PATCHED="$WORK/simple-threads.cpp"
# The thread count from the environment, right after the example sets its own context parameters.
anchor='ctx_params.no_perf = false;'
grep -qF "$anchor" "$SIMPLE" || { log "$SIMPLE changed: no '$anchor' to patch after"; exit 1; }
sed "s|$anchor|$anchor if (const char * t = getenv(\"BENCHFARM_THREADS\")) { ctx_params.n_threads = ctx_params.n_threads_batch = atoi(t); }|" \
    "$SIMPLE" >"$PATCHED"
native=$(grep -q '^GGML_NATIVE:BOOL=ON' "$LIB_DIR/build/CMakeCache.txt" 2>/dev/null && echo -march=native || true)
g++ -std=c++17 -O2 -DNDEBUG $native -fopenmp -include cstdlib -I"$SRC/include" -I"$SRC/ggml/include" \
    "$PATCHED" -o "$BIN.partial" -L"$LIB_DIR/lib" \
    -Wl,--start-group -lllama -lggml -lggml-base -lggml-cpu -Wl,--end-group -lpthread -ldl
mv "$BIN.partial" "$BIN"
log "built $BIN in $((SECONDS - start)) s"
echo "$BIN"
