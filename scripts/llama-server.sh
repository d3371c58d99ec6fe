#!/usr/bin/env bash
# llama-server.sh — build llama.cpp's own OpenAI-compatible `llama-server` for the remote-model
# tests, against the llama.cpp our test build already compiled. Prints the binary's path.
#
#   scripts/llama-server.sh [--profile debug|release] [--lib-dir DIR]
#
# llama-cpp-sys-2 ships llama.cpp without tools/server's sources; the llama-cpp-python sdist on
# PyPI vendors them (fetched and checked by scripts/llama-sdist.sh, as for llama-bench and llama-simple).
# Only the server's own sources come from the sdist, with the multimodal library they call (mtmd,
# whose API moves with the server's; never used by the tests, so compiled unoptimised): the
# library code — llama, ggml, the common library (chat templates, sampling, cpp-httplib) — is the
# very static libraries cargo built in target/$PROFILE/build/llama-cpp-sys-2-*/out, with their
# headers from llama-cpp-sys-2's sources. The web UI is left out (its asset script run with the UI
# off).
#
# Idempotent: the binary is named after the llama.cpp build it links, and rebuilt only when that
# build changes. Needs g++, cmake and python3 with pip (scripts/deps.sh installs them).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

# shellcheck source=scripts/llama-sdist.sh
source scripts/llama-sdist.sh
SDIST_VERSION=$LLAMA_SDIST_VERSION
SYS_VERSION=0.1.161
PROFILE=debug
LIB_DIR=""
while [[ $# -gt 0 ]]; do
    case "$1" in
    --profile) PROFILE="$2"; shift 2 ;;
    --lib-dir) LIB_DIR="$2"; shift 2 ;;
    *) echo "llama-server: unknown argument $1" >&2; exit 2 ;;
    esac
done

log() { echo "llama-server: $*" >&2; }
TARGET="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
WORK="$TARGET/llama-server"
mkdir -p "$WORK"

# The llama.cpp build the tests' worker links: the newest llama-cpp-sys-2 output of this profile.
if [[ -z "$LIB_DIR" ]]; then
    LIB_DIR=$(ls -dt "$TARGET/$PROFILE"/build/llama-cpp-sys-2-*/out 2>/dev/null |
        while read -r d; do [[ -f "$d/lib/libllama-common.a" ]] && echo "$d" && break; done || true)
fi
[[ -n "$LIB_DIR" && -f "$LIB_DIR/lib/libllama-common.a" ]] || {
    log "no llama.cpp build with its common library under $TARGET/$PROFILE: build the workspace first"
    exit 1
}
BIN="$WORK/llama-server-$(basename "$(dirname "$LIB_DIR")")"
if [[ -x "$BIN" && "$BIN" -nt "$LIB_DIR/lib/libllama.a" ]]; then
    echo "$BIN"
    exit 0
fi

SRC=$(ls -d "$HOME"/.cargo/registry/src/*/llama-cpp-sys-2-$SYS_VERSION/llama.cpp | head -1)
[[ -d "$SRC/tools/mtmd" ]] || { log "llama-cpp-sys-2 $SYS_VERSION sources not found under ~/.cargo/registry"; exit 1; }
# The sdist vendors llama.cpp's tools/server (pinned by sha256 in scripts/llama-sdist.sh).
SDIST=$(llama_sdist "$WORK")
VENDOR="$LLAMA_SDIST_VENDOR"
[[ -f "$WORK/$VENDOR/tools/server/server.cpp" && -f "$WORK/$VENDOR/tools/mtmd/mtmd.cpp" &&
    -f "$WORK/$VENDOR/tools/ui/ui.h.in" && -f "$WORK/$VENDOR/scripts/ui-assets.cmake" ]] ||
    tar -xzf "$SDIST" -C "$WORK" "$VENDOR/tools/server" "$VENDOR/tools/mtmd" "$VENDOR/tools/ui" \
        "$VENDOR/scripts/ui-assets.cmake"
SERVER_SRC="$WORK/$VENDOR/tools/server"
MTMD_SRC="$WORK/$VENDOR/tools/mtmd"

start=$SECONDS
OBJ="$WORK/obj-$SDIST_VERSION-$(basename "$(dirname "$LIB_DIR")")"
mkdir -p "$OBJ/mtmd/models" "$OBJ/server" "$OBJ/ui"
# ui.h / ui.cpp without assets: the asset script with the UI build and its download both off.
cmake -DUI_SOURCE_DIR="$WORK/$VENDOR/tools/ui" -DUI_BINARY_DIR="$OBJ/ui" -DLLAMA_SOURCE_DIR="$WORK/$VENDOR" \
    -DBUILD_UI=OFF -DHF_ENABLED=OFF -DLLAMA_UI_GZIP=OFF -P "$WORK/$VENDOR/scripts/ui-assets.cmake" >&2

# Version drift between the sdist's server and llama-cpp-sys-2's common library, bridged here and
# nowhere else: the server opens its MCP config with common's fs_open_ifstream, which this common
# library lacks (on Linux it is std::ifstream itself).
SHIM=()
if ! grep -q 'fs_open_ifstream' "$SRC/common/common.h"; then
    mkdir -p "$OBJ/shim"
    printf '%s\n' '#pragma once' '#include <fstream>' '#include <string>' \
        'std::ifstream fs_open_ifstream(const std::string & fname, std::ios_base::openmode mode);' \
        >"$OBJ/shim/shim.h"
    printf '%s\n' '#include "shim.h"' \
        'std::ifstream fs_open_ifstream(const std::string & fname, std::ios_base::openmode mode) {' \
        '    return std::ifstream(fname, mode);' '}' >"$OBJ/shim/shim.cpp"
    SHIM=(-include "$OBJ/shim/shim.h")
fi

native=$(grep -q '^GGML_NATIVE:BOOL=ON' "$LIB_DIR/build/CMakeCache.txt" 2>/dev/null && echo -march=native || true)
INCLUDES=(-I"$SERVER_SRC" -I"$OBJ/ui" -I"$MTMD_SRC" -I"$SRC/common" -I"$SRC/include"
    -I"$SRC/ggml/include" -I"$SRC/vendor" -I"$SRC")
compile() { # compile OUT.o SRC.cpp FLAGS...: once (an object left by an interrupted run is kept)
    local out="$1" src="$2"
    shift 2
    if [[ ! -f "$out" ]]; then
        g++ -std=c++17 -DNDEBUG -fopenmp "$@" "${INCLUDES[@]}" -c "$src" -o "$out.partial" && mv "$out.partial" "$out"
    fi
}
jobs=$(nproc)
# mtmd is linked, never run by the tests: compiled without optimisation, which is several times
# faster. The server is compiled as CMake's Release would.
mtmd_sources=$(sed -n '/^add_library(mtmd/,/^ *)/p' "$MTMD_SRC/CMakeLists.txt" | grep -oE '[A-Za-z0-9_/.-]+\.cpp')
run_limited() {
    while (($(jobs -rp | wc -l) >= jobs)); do wait -n; done
    "$@" &
}
for f in $mtmd_sources; do
    run_limited compile "$OBJ/mtmd/${f%.cpp}.o" "$MTMD_SRC/$f" -O0 -g0 -w
done
for f in "$SERVER_SRC"/*.cpp "$OBJ/ui/ui.cpp" ${SHIM:+"$OBJ/shim/shim.cpp"}; do
    run_limited compile "$OBJ/server/$(basename "${f%.cpp}").o" "$f" -O2 $native -w "${SHIM[@]}"
done
failed=0
while (($(jobs -rp | wc -l) > 0)); do wait -n || failed=1; done
wait || failed=1
((failed == 0)) || { log "compiling failed (see above)"; exit 1; }
log "compiling the sources took $((SECONDS - start)) s"
# cpp-httplib links OpenSSL when the llama.cpp build found it (CPPHTTPLIB_OPENSSL_SUPPORT).
ssl=$(grep -qs OPENSSL "$LIB_DIR/build/vendor/cpp-httplib/CMakeFiles/cpp-httplib.dir/flags.make" && echo "-lssl -lcrypto" || true)
g++ -fopenmp "$OBJ"/server/*.o $(find "$OBJ/mtmd" -name '*.o') -o "$BIN.partial" \
    -L"$LIB_DIR/lib" -L"$LIB_DIR/build/common" -L"$LIB_DIR/build/vendor/hash" -L"$LIB_DIR/build/vendor/cpp-httplib" \
    -Wl,--start-group -lllama-common -lllama-common-base -lllama -lggml -lggml-base -lggml-cpu \
    -lcpp-httplib -lvendor-hash -Wl,--end-group $ssl -lpthread -ldl
mv "$BIN.partial" "$BIN"
log "built $BIN in $((SECONDS - start)) s"
echo "$BIN"
