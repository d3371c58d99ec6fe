#!/usr/bin/env bash
# deps.sh — install what building and running benchfarm needs on Debian/Ubuntu (bookworm tested).
#
#   scripts/deps.sh               install whatever is missing, then exit
#   source scripts/deps.sh        the same, and keep the PATH it sets up (farm.sh and test.sh do)
#
# Idempotent and quiet: apt runs only when a package is missing (asked of dpkg, not apt), and
# rustup only when there is no cargo. Run as root, or as a user with sudo, for the apt part.
# llama.cpp is compiled by cmake + a C/C++ compiler; bindgen needs libclang; the proto crate needs
# protoc; scripts/fetch-models.sh needs python3 with pip.

# Sourced: the caller's shell options are the caller's business, so they are set only when run.
if ! (return 0 2>/dev/null); then
    set -euo pipefail
fi

benchfarm_deps() {
    local log_prefix="deps:"
    # prometheus: the metrics tests scrape the farm with a real one (e2e/tests/telemetry.rs); Debian
    # installs it without starting it where there is no init system (containers, CI).
    local apt_packages=(cmake clang libclang-dev protobuf-compiler pkg-config build-essential
        python3 python3-pip curl ca-certificates prometheus)
    local missing=() pkg

    for pkg in "${apt_packages[@]}"; do
        # `dpkg -s` also succeeds for removed packages whose config files remain, so ask for the
        # exact installed state.
        if [[ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" != "install ok installed" ]]; then
            missing+=("$pkg")
        fi
    done

    if ((${#missing[@]})); then
        echo "$log_prefix installing apt packages: ${missing[*]}" >&2
        local sudo=()
        if [[ "$(id -u)" != 0 ]]; then
            command -v sudo >/dev/null 2>&1 || {
                echo "$log_prefix error: not root and no sudo; install as root: apt-get install ${missing[*]}" >&2
                return 1
            }
            sudo=(sudo)
        fi
        # Installing Debian's python3 does not shadow a pyenv/venv python3: PATH order decides
        # which one runs, and this script never touches PATH entries other than cargo's.
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get update -qq >/dev/null || {
            echo "$log_prefix error: apt-get update failed" >&2
            return 1
        }
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null || {
            echo "$log_prefix error: apt-get install ${missing[*]} failed" >&2
            return 1
        }
    else
        echo "$log_prefix apt packages present" >&2
    fi

    # A rustup installed earlier but not yet on this shell's PATH (fresh login, CI step).
    if ! command -v cargo >/dev/null 2>&1 && [[ -f "$HOME/.cargo/env" ]]; then
        # shellcheck disable=SC1091
        . "$HOME/.cargo/env"
    fi
    if ! command -v cargo >/dev/null 2>&1; then
        echo "$log_prefix cargo not found; installing rust (stable, minimal profile) with rustup" >&2
        if ! curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs |
            sh -s -- -y --quiet --profile minimal --component rustfmt,clippy >/dev/null; then
            echo "$log_prefix error: installing rust with rustup failed (no internet access?)." >&2
            echo "$log_prefix install rust >= 1.85 yourself (https://rustup.rs) and run this again." >&2
            return 1
        fi
        # shellcheck disable=SC1091
        . "$HOME/.cargo/env"
    fi

    # test.sh runs `cargo fmt` and `cargo clippy`; a minimal or distro toolchain may lack them.
    if command -v rustup >/dev/null 2>&1; then
        if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
            echo "$log_prefix adding rustup components rustfmt and clippy" >&2
            rustup component add rustfmt clippy >/dev/null 2>&1 || {
                echo "$log_prefix error: rustup component add rustfmt clippy failed" >&2
                return 1
            }
        fi
    fi

    # The workspace uses edition 2024, which needs rust 1.85.
    local version
    version="$(rustc --version 2>/dev/null | awk '{print $2}')"
    if [[ -n "$version" ]] && ! printf '1.85.0\n%s\n' "${version%%-*}" | sort -V -C; then
        echo "$log_prefix error: rustc $version is older than 1.85 (edition 2024); run: rustup update stable" >&2
        return 1
    fi
    echo "$log_prefix rust ${version:-unknown} ready" >&2
}

# Sourced, a failure is this file's status (and stops a caller running under `set -e`).
benchfarm_deps
