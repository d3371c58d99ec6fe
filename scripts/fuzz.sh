#!/usr/bin/env bash
# fuzz.sh — runs the cargo-fuzz targets in fuzz/ (docs/fuzzing.md).
#
#   scripts/fuzz.sh SECONDS [TARGET...]      each TARGET (default: all) for SECONDS, one at a time
#   scripts/fuzz.sh --grow SECONDS TARGET    the same, adding what it finds to fuzz/corpus/TARGET
#
# Installs cargo-fuzz (pinned) into .tools/ when it is missing. cargo-fuzz needs nightly flags;
# RUSTC_BOOTSTRAP=1 lets the installed stable toolchain take them. Without --grow the committed
# corpus is only read: new inputs go to a temporary directory, so a CI run leaves the tree as it was.
# A crash stops the run with libFuzzer's report and leaves the input in fuzz/artifacts/TARGET/.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CARGO_FUZZ_VERSION=0.13.1
TOOLS="$REPO_ROOT/.tools"
TARGETS=(suite_grade plan_parse scripted_parse gguf_header proto_submit proto_worker_message)

log() { echo "fuzz: $*" >&2; }

grow=0
if [[ "${1:-}" == --grow ]]; then
    grow=1
    shift
fi
seconds="${1:?usage: scripts/fuzz.sh [--grow] SECONDS [TARGET...]}"
shift
[[ $# -gt 0 ]] && TARGETS=("$@")

export PATH="$TOOLS/bin:$HOME/.cargo/bin:$PATH"
if [[ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]]; then
    log "installing cargo-fuzz $CARGO_FUZZ_VERSION into $TOOLS"
    cargo install --locked --quiet --root "$TOOLS" cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi

export RUSTC_BOOTSTRAP=1
cd "$REPO_ROOT/fuzz"
# No sanitizer: the workspace forbids unsafe code, and without ASan each target runs several
# times faster; --debug-assertions keeps overflow checks and debug_asserts on.
flags=(--sanitizer none --debug-assertions)
for target in "${TARGETS[@]}"; do
    corpus="$REPO_ROOT/fuzz/corpus/$target"
    if [[ $grow == 1 ]]; then
        dirs=("$corpus")
    else
        scratch="$(mktemp -d)"
        dirs=("$scratch" "$corpus")
    fi
    log "$target: ${seconds}s over $(find "$corpus" -type f | wc -l) corpus files"
    cargo fuzz run "${flags[@]}" "$target" "${dirs[@]}" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1
    [[ $grow == 1 ]] || rm -rf -- "$scratch"
done
