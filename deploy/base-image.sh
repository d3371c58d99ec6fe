#!/usr/bin/env bash
# base-image.sh — the lab's base image, made locally for machines that reach no image registry.
#
#   deploy/base-image.sh            # builds benchfarm-base:bookworm unless it exists
#   deploy/base-image.sh --force    # rebuilds it (only this project's own tag is replaced)
#
# `debootstrap --variant=minbase bookworm` from the Debian mirror this machine's apt already uses,
# plus the runtime libraries the binaries link (ldd target/*/worker: libgomp1 for llama.cpp's
# OpenMP, libstdc++6; ca-certificates for https:// coordinators), then `docker import` under the
# project's own tag. The binaries are built on this host, so the base is the host's release
# (bookworm) and glibc matches. Needs root (debootstrap chroots); installs debootstrap if missing.
set -euo pipefail

TAG="${BENCHFARM_BASE_TAG:-benchfarm-base:bookworm}"
SUITE=bookworm
PACKAGES=libgomp1,libstdc++6,ca-certificates

log() { echo "base-image: $*" >&2; }
die() {
    echo "base-image: error: $*" >&2
    exit 1
}

force=0
[[ "${1:-}" == --force ]] && force=1

if [[ $force == 0 ]] && docker image inspect "$TAG" >/dev/null 2>&1; then
    log "$TAG present, skipping"
    exit 0
fi
[[ "$(id -u)" == 0 ]] || die "debootstrap needs root (run as root, or pull debian:bookworm-slim and pass BASE)"

# The mirror apt is configured with (deb822 .sources first, then sources.list), so a machine
# behind its own mirror uses it; deb.debian.org otherwise.
mirror() {
    local uri
    uri=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' |
        grep -v -- '-security' | grep '/debian/\?$' | head -1 || true)
    if [[ -z "$uri" ]]; then
        uri=$(grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
            awk '{print $2}' | grep '/debian/\?$' | head -1 || true)
    fi
    echo "${uri:-http://deb.debian.org/debian}"
}

if ! command -v debootstrap >/dev/null 2>&1; then
    log "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi

work=$(mktemp -d /var/tmp/benchfarm-base.XXXXXX)
trap 'rm -rf -- "$work"' EXIT
url=$(mirror)
log "debootstrap $SUITE from $url into $work (minbase + $PACKAGES)"
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$work/rootfs" "$url" >"$work/debootstrap.log" 2>&1 ||
    {
        tail -20 "$work/debootstrap.log" >&2
        die "debootstrap failed"
    }
# Smaller and reproducible enough: no apt lists, caches or logs in the image.
rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"* \
    "$work/rootfs/var/log/"* "$work/rootfs/usr/share/doc" "$work/rootfs/usr/share/man"
tar -C "$work/rootfs" --numeric-owner -c . |
    docker import --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' - "$TAG" >/dev/null
log "imported $TAG ($(docker image inspect -f '{{.Size}}' "$TAG" | awk '{printf "%.0f MB", $1/1e6}'))"
