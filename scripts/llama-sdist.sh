# llama-sdist.sh — sourced, not run: the llama-cpp-python sdist that vendors llama.cpp's tools and
# examples (tools/server, tools/llama-bench, examples/simple), which llama-cpp-sys-2 strips.
#
#   source scripts/llama-sdist.sh; sdist=$(llama_sdist "$WORK")
#
# Downloads it into WORK once (PyPI is reachable where GitHub may not be) and checks it against its
# pinned sha256, so a tampered or truncated download is refused (and deleted: run again).
LLAMA_SDIST_VERSION=0.3.36
LLAMA_SDIST_SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
# The llama.cpp tree inside the sdist.
LLAMA_SDIST_VENDOR="llama_cpp_python-$LLAMA_SDIST_VERSION/vendor/llama.cpp"

llama_sdist() {
    local work="$1" sdist="$1/llama_cpp_python-$LLAMA_SDIST_VERSION.tar.gz"
    mkdir -p "$work"
    if [[ ! -f "$sdist" ]]; then
        echo "llama-sdist: downloading the llama-cpp-python $LLAMA_SDIST_VERSION sdist" >&2
        python3 -m pip download --quiet --no-deps --no-binary :all: \
            "llama-cpp-python==$LLAMA_SDIST_VERSION" -d "$work" >&2 || return 1
    fi
    if [[ "$(sha256sum "$sdist" | cut -d' ' -f1)" != "$LLAMA_SDIST_SHA256" ]]; then
        rm -f -- "$sdist"
        echo "llama-sdist: $sdist does not match its pinned sha256; deleted it, run again" >&2
        return 1
    fi
    echo "$sdist"
}
