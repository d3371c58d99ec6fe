#!/usr/bin/env bash
# lab.sh — the benchfarm lab: a coordinator and three workers of two hardware classes in Docker.
#
#   deploy/lab.sh up [--observability] [--chaos]
#                                        build the binaries and images, start the lab, print URLs
#                                        (--chaos: workers run scripted models' test features,
#                                        --allow-scripted-faults, which the chaos plan needs)
#   deploy/lab.sh run [--format F] [--plan FILE]
#                                        run a plan end to end (default deploy/plans/lab.toml: the
#                                        built-in suite on the default model, per class) and print
#                                        its report on stdout (URLs on stderr); the lab stays up
#   deploy/lab.sh chaos                  (re)start the workers with --chaos, run
#                                        deploy/plans/chaos.toml while killing a worker and
#                                        restarting the coordinator mid-run; print the report
#   deploy/lab.sh token                  print the lab's operator token (for the live page)
#   deploy/lab.sh down [--volumes|--all] stop and remove the lab's containers and network
#                                        (--volumes: also its data; --all: also its images)
#
# Binaries: by default a portable release build with ggml's CPU backend as modules, one per x86
# micro-architecture, shipped in the image and the best one for the host loaded at start (runs on
# any x86_64 CPU and still uses its AVX2/AVX-512; target/lab-dynamic, docs/build.md).
# BENCHFARM_LAB_BUILD=baseline builds the static portable one instead (one CPU backend compiled
# for BENCHFARM_LAB_CPU, default x86-64: SSE2 speed; target/lab-portable).
# BENCHFARM_LAB_BINARIES=DIR packages DIR/coordinator and DIR/worker instead (CI: the test
# build's own binaries, no third llama.cpp compile).
#
# Base image: $BENCHFARM_BASE if set; else debian:bookworm-slim if this machine has it; else it is
# pulled; if no registry answers, deploy/base-image.sh builds benchfarm-base:bookworm locally.
# No image the user has is replaced: ours are benchfarm/coordinator:TAG and benchfarm/worker:TAG
# (TAG: $BENCHFARM_LAB_TAG, default VERSION-lab).
#
# Other knobs (environment): BENCHFARM_LAB_PROJECT (compose project, default benchfarm-lab),
# BENCHFARM_LAB_GRPC_PORT (50051), BENCHFARM_LAB_HTTP_PORT (8080), BENCHFARM_LAB_GRAFANA_PORT
# (3000), BENCHFARM_LAB_JAEGER_PORT (16686), BENCHFARM_LAB_PROMETHEUS_PORT (9090),
# BENCHFARM_LAB_BIND (127.0.0.1; 0.0.0.0 to let real boards join), BENCHFARM_MODELS (models/),
# BENCHFARM_LEASE_MS (10000).
set -euo pipefail

DEPLOY="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$DEPLOY/.." && pwd)"

log() { echo "lab: $*" >&2; }
die() {
    echo "lab: error: $*" >&2
    exit 1
}

VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$REPO_ROOT/Cargo.toml" | head -1)
# The directory the images were packaged from (set by images()).
LAB_BINS=""
PROJECT="${BENCHFARM_LAB_PROJECT:-benchfarm-lab}"
TAG="${BENCHFARM_LAB_TAG:-$VERSION-lab}"
export BENCHFARM_COORDINATOR_IMAGE="benchfarm/coordinator:$TAG"
export BENCHFARM_WORKER_IMAGE="benchfarm/worker:$TAG"
export BENCHFARM_MODELS="${BENCHFARM_MODELS:-$REPO_ROOT/models}"
export BENCHFARM_LEASE_MS="${BENCHFARM_LEASE_MS:-10000}"
export BENCHFARM_LAB_BIND="${BENCHFARM_LAB_BIND:-127.0.0.1}"
export BENCHFARM_LAB_GRPC_PORT="${BENCHFARM_LAB_GRPC_PORT:-50051}"
export BENCHFARM_LAB_HTTP_PORT="${BENCHFARM_LAB_HTTP_PORT:-8080}"
export BENCHFARM_LAB_GRAFANA_PORT="${BENCHFARM_LAB_GRAFANA_PORT:-3000}"
export BENCHFARM_LAB_JAEGER_PORT="${BENCHFARM_LAB_JAEGER_PORT:-16686}"
export BENCHFARM_LAB_PROMETHEUS_PORT="${BENCHFARM_LAB_PROMETHEUS_PORT:-9090}"
WORKERS=(board laptop-1 laptop-2)
OBSERVABILITY=(otel-collector tempo jaeger prometheus grafana)

# `docker compose` (v2) where it exists, else Debian's docker-compose 1.29.
compose() {
    if docker compose version >/dev/null 2>&1; then
        docker compose -p "$PROJECT" -f "$DEPLOY/docker-compose.yml" "$@"
    else
        docker-compose -p "$PROJECT" -f "$DEPLOY/docker-compose.yml" "$@"
    fi
}

container() { compose ps -q "$1" 2>/dev/null | head -1; }

# ---- binaries ------------------------------------------------------------------------------

binaries() {
    if [[ -n "${BENCHFARM_LAB_BINARIES:-}" ]]; then
        local dir="$BENCHFARM_LAB_BINARIES"
        [[ -x "$dir/coordinator" && -x "$dir/worker" ]] ||
            die "BENCHFARM_LAB_BINARIES=$dir has no coordinator and worker binaries"
        echo "$dir"
        return
    fi
    case "${BENCHFARM_LAB_BUILD:-dynamic}" in
    dynamic) dynamic_build ;;
    baseline) baseline_build ;;
    *) die "BENCHFARM_LAB_BUILD=${BENCHFARM_LAB_BUILD} is neither dynamic nor baseline" ;;
    esac
}

# The users' default: ggml's runtime CPU dispatch (llama-cpp-2's dynamic-backends through the
# worker's feature of that name): the binaries target any x86_64 (target-cpu=x86-64), and ggml's
# CPU backend is built once per x86 micro-architecture as a module, of which the worker loads the
# best one the host's CPU runs (engine/src/llama/backend_modules.rs). Staged as
# target/lab-dynamic/image/{coordinator,worker,lib/,backends/}; images() lays them out as the
# image's /usr/local/lib and /usr/local/lib/benchfarm/backends (BENCHFARM_GGML_BACKENDS).
dynamic_build() {
    local target="$REPO_ROOT/target/lab-dynamic"
    local stage="$target/image" out="" dir module
    log "portable build with ggml's CPU backend modules into $target (first time: ggml's CPU backend compiles once per x86 level, ~15 min on 2 cores)"
    (cd "$REPO_ROOT" &&
        RUSTFLAGS="-C target-cpu=x86-64" CARGO_TARGET_DIR="$target" \
            cargo build --release --locked -p benchfarm-coordinator -p benchfarm-worker \
            --features benchfarm-worker/dynamic-backends >&2)
    # llama-cpp-sys-2's CMake output: the newest one that has the modules (another feature set
    # may have left an older build directory beside it).
    for dir in $(ls -dt "$target"/release/build/llama-cpp-sys-2-*/out 2>/dev/null); do
        if compgen -G "$dir/backends/libggml-cpu-*.so" >/dev/null; then
            out="$dir"
            break
        fi
    done
    [[ -n "$out" ]] || die "no ggml CPU backend modules under $target/release/build/llama-cpp-sys-2-*/out/backends"
    rm -rf "$stage"
    mkdir -p "$stage/lib" "$stage/backends"
    cp "$target/release/coordinator" "$target/release/worker" "$stage/"
    cp -a "$out"/lib/*.so* "$stage/lib/"
    for module in "$out"/backends/libggml-cpu-*.so; do
        # Sapphire Rapids' module is the one with AMX, whose kernels segfault on the first decode
        # on some of those CPUs (llama.cpp#20824, .cargo/config.toml): without it ggml picks the
        # next best module there (AVX-512 with VNNI and BF16).
        [[ "$(basename "$module")" == libggml-cpu-sapphirerapids.so ]] && continue
        cp "$module" "$stage/backends/"
    done
    # The release profile's line tables are most of these files' size; a container needs none.
    find "$stage/lib" "$stage/backends" -type f -name '*.so*' -exec strip --strip-debug {} +
    log "staged $(find "$stage/backends" -name '*.so' | wc -l) CPU backend modules in $stage/backends"
    echo "$stage"
}

# The static portable build (BENCHFARM_LAB_BUILD=baseline): one CPU backend compiled in, at
# target-cpu=$BENCHFARM_LAB_CPU (default x86-64: SSE2 only, so the image runs on any x86_64
# CPU at that speed; x86-64-v3 targets AVX2 machines). Kept to compare with the dynamic build.
baseline_build() {
    local cpu="${BENCHFARM_LAB_CPU:-x86-64}" target="$REPO_ROOT/target/lab-portable"
    log "portable build for target-cpu=$cpu into $target (first time: llama.cpp compiles, ~10 min on 2 cores)"
    # RUSTFLAGS replaces .cargo/config.toml's target-cpu=native (so llama-cpp-sys-2 configures
    # GGML_NATIVE=OFF); the GGML_* variables turn off the x86 extensions ggml would otherwise
    # enable by default (AVX2 and friends), unless the chosen target-cpu has them (build.rs then
    # sets them ON itself, after these). docs/build.md has the evidence.
    (cd "$REPO_ROOT" &&
        RUSTFLAGS="-C target-cpu=$cpu" CARGO_TARGET_DIR="$target" \
            GGML_NATIVE=OFF GGML_SSE42=OFF GGML_AVX=OFF GGML_AVX2=OFF GGML_BMI2=OFF \
            GGML_FMA=OFF GGML_F16C=OFF \
            cargo build --release --locked -p benchfarm-coordinator -p benchfarm-worker >&2)
    echo "$target/release"
}

# ---- images --------------------------------------------------------------------------------

base_image() {
    if [[ -n "${BENCHFARM_BASE:-}" ]]; then
        docker image inspect "$BENCHFARM_BASE" >/dev/null 2>&1 || docker pull "$BENCHFARM_BASE" >&2 ||
            die "base image $BENCHFARM_BASE is neither here nor pullable"
        echo "$BENCHFARM_BASE"
        return
    fi
    if docker image inspect debian:bookworm-slim >/dev/null 2>&1; then
        echo debian:bookworm-slim
        return
    fi
    if timeout 120 docker pull debian:bookworm-slim >&2 2>/dev/null; then
        echo debian:bookworm-slim
        return
    fi
    log "no registry reachable: building a local base image"
    "$DEPLOY/base-image.sh" >&2
    echo "${BENCHFARM_BASE_TAG:-benchfarm-base:bookworm}"
}

images() {
    local bins base context
    bins=$(binaries)
    base=$(base_image)
    context=$(mktemp -d "${TMPDIR:-/tmp}/benchfarm-lab-context.XXXXXX")
    # shellcheck disable=SC2064 # expand now: the path is fixed
    trap "rm -rf -- '$context'" RETURN
    LAB_BINS="$bins"
    mkdir -p "$context/bin" "$context/lib/benchfarm/backends"
    # Debug info is most of a debug binary's size and nothing a container needs.
    for bin in coordinator worker; do
        strip --strip-debug -o "$context/bin/$bin" "$bins/$bin" 2>/dev/null || cp "$bins/$bin" "$context/bin/$bin"
        chmod 0755 "$context/bin/$bin"
    done
    # The dynamic build's shared libraries and CPU backend modules, laid out as the image's
    # /usr/local/lib (a static build has neither: the Dockerfile then copies the empty tree).
    if [[ -d "$bins/lib" && -d "$bins/backends" ]]; then
        cp -a "$bins/lib/." "$context/lib/"
        cp -a "$bins/backends/." "$context/lib/benchfarm/backends/"
    fi
    for target in coordinator worker; do
        local image="benchfarm/$target:$TAG"
        log "building $image from $base"
        docker build -q -f "$DEPLOY/Dockerfile" --build-arg "BASE=$base" --target "$target" \
            --label "io.benchfarm.lab=$PROJECT" -t "$image" "$context" >/dev/null
    done
}

# ---- the lab -------------------------------------------------------------------------------

# Waits until each named service's container is healthy (by its HEALTHCHECK).
wait_healthy() {
    local deadline=$((SECONDS + ${BENCHFARM_LAB_START_LIMIT:-120})) service id state
    for service in "$@"; do
        while :; do
            id=$(container "$service")
            state=$([[ -n "$id" ]] && docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$id" 2>/dev/null || echo missing)
            [[ "$state" == healthy ]] && break
            if ((SECONDS > deadline)); then
                [[ -n "$id" ]] && docker logs --tail 30 "$id" >&2
                die "$service is not healthy ($state) within ${BENCHFARM_LAB_START_LIMIT:-120} s"
            fi
            sleep 1
        done
    done
}

# The metrics and OTLP flags, where these binaries have them (the telemetry issue adds them).
observability_args() {
    local bins="$1"
    # A dynamic build's binaries find their libraries beside them, not in /usr/local/lib here.
    [[ -d "$bins/lib" ]] && export LD_LIBRARY_PATH="$bins/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    if "$bins/coordinator" serve --help 2>/dev/null | grep -q -- --metrics-listen; then
        export BENCHFARM_COORDINATOR_ARGS="--metrics-listen 0.0.0.0:9464 --otlp-endpoint http://otel-collector:4317"
    else
        log "this coordinator has no --metrics-listen: Prometheus will find nothing to scrape"
    fi
    if "$bins/worker" join --help 2>/dev/null | grep -q -- --metrics-listen; then
        export BENCHFARM_WORKER_ARGS="--metrics-listen 0.0.0.0:9465 --otlp-endpoint http://otel-collector:4317"
    fi
}

urls() {
    local host="$BENCHFARM_LAB_BIND"
    [[ "$host" == 0.0.0.0 ]] && host=127.0.0.1
    {
        echo "lab: coordinator  http://$host:$BENCHFARM_LAB_GRPC_PORT  (gRPC; operator token: deploy/lab.sh token)"
        echo "lab: live page    http://$host:$BENCHFARM_LAB_HTTP_PORT/  (sign in with the token)"
        if [[ -n "$(container grafana)" ]]; then
            echo "lab: grafana      http://$host:$BENCHFARM_LAB_GRAFANA_PORT/  (dashboards in folder benchfarm)"
            echo "lab: jaeger       http://$host:$BENCHFARM_LAB_JAEGER_PORT/"
            echo "lab: prometheus   http://$host:$BENCHFARM_LAB_PROMETHEUS_PORT/"
        else
            echo "lab: grafana, jaeger, prometheus: not running (deploy/lab.sh up --observability)"
        fi
    } >&2
}

up() {
    local observability=0 chaos=0
    for arg in "$@"; do
        case "$arg" in
        --observability) observability=1 ;;
        --chaos) chaos=1 ;;
        *) die "up: unknown option $arg" ;;
        esac
    done
    [[ -d "$BENCHFARM_MODELS" ]] || die "no models directory $BENCHFARM_MODELS (scripts/fetch-models.sh)"
    images
    local services=(coordinator "${WORKERS[@]}") profiles=()
    if ((observability)); then
        observability_args "$LAB_BINS"
        [[ -d "$REPO_ROOT/dashboards/provisioning" ]] || die "no dashboards/ in this checkout"
        services+=("${OBSERVABILITY[@]}")
        profiles=(--profile observability)
    fi
    if ((chaos)); then
        # The chaos plan's scripted model waits 0.8 s a job (delay_ms): a test feature that a
        # production worker refuses. Only a lab brought up for chaos lets its workers run it.
        export BENCHFARM_WORKER_ARGS="${BENCHFARM_WORKER_ARGS:-} --allow-scripted-faults"
    fi
    log "starting ${services[*]} (project $PROJECT)"
    compose "${profiles[@]}" up -d --no-build "${services[@]}" >&2
    wait_healthy coordinator "${WORKERS[@]}"
    log "up: coordinator and ${#WORKERS[@]} workers healthy"
    urls
}

running() { [[ -n "$(container coordinator)" ]] && [[ "$(docker inspect -f '{{.State.Running}}' "$(container coordinator)")" == true ]]; }

# Submits plan $1 (a file in deploy/plans, or any path) through the bench service; extra args go
# to `submit`. Stdout: the run id, then the report.
submit() {
    local plan="$1" mount=() path
    shift
    if [[ "$(cd "$(dirname "$plan")" && pwd)" == "$DEPLOY/plans" ]]; then
        path="/plans/$(basename "$plan")"
    else
        mount=(-v "$(cd "$(dirname "$plan")" && pwd):/plans-user:ro")
        path="/plans-user/$(basename "$plan")"
    fi
    compose run --rm -T "${mount[@]}" bench \
        --coordinator http://coordinator:50051 --token-file /tokens/api/api.token \
        submit "$path" --wait "$@"
}

run() {
    local format=table plan="$DEPLOY/plans/lab.toml"
    while (($#)); do
        case "$1" in
        --format) format="$2"; shift 2 ;;
        --format=*) format="${1#--format=}"; shift ;;
        --plan) plan="$2"; shift 2 ;;
        *) die "run: unknown option $1" ;;
        esac
    done
    [[ -f "$plan" ]] || die "no plan $plan"
    running || up
    local code=0
    submit "$plan" --format "$format" || code=$?
    urls
    log "the lab stays up: deploy/lab.sh down to stop it"
    return "$code"
}

chaos() {
    # Recreates the workers if they were started without --allow-scripted-faults (compose
    # notices the changed command); a lab already up for chaos is left as it is.
    up --chaos
    local run_id code=0
    log "chaos: submitting plans/chaos.toml (40 scripted jobs of 0.8 s), then killing laptop-2 and restarting the coordinator mid-run"
    run_id=$(compose run --rm -T bench --coordinator http://coordinator:50051 \
        --token-file /tokens/api/api.token submit /plans/chaos.toml | head -1)
    [[ -n "$run_id" ]] || die "chaos: the plan was not submitted"
    sleep 4
    log "chaos: docker kill laptop-2 (its jobs come back after the lease, ${BENCHFARM_LEASE_MS} ms)"
    docker kill "$(container laptop-2)" >/dev/null
    sleep 3
    log "chaos: docker restart coordinator"
    docker restart "$(container coordinator)" >/dev/null
    log "chaos: docker start laptop-2"
    docker start "$(container laptop-2)" >/dev/null
    wait_healthy coordinator
    while bench_cli status "$run_id" | grep -q '^state  *running'; do sleep 2; done
    bench_cli report "$run_id" --format table || code=$?
    urls
    return "$code"
}

# A client verb of the coordinator image, against the lab, with the operator token.
bench_cli() {
    compose run --rm -T bench --coordinator http://coordinator:50051 \
        --token-file /tokens/api/api.token "$@"
}

token() {
    running || die "the lab is not up"
    docker exec "$(container coordinator)" cat /tokens/api/api.token
}

down() {
    local volumes=() images=0
    for arg in "$@"; do
        case "$arg" in
        --volumes) volumes=(-v) ;;
        --all) volumes=(-v) images=1 ;;
        *) die "down: unknown option $arg" ;;
        esac
    done
    compose --profile observability --profile bench down "${volumes[@]}" --remove-orphans >&2
    if ((images)); then
        for image in "$BENCHFARM_COORDINATOR_IMAGE" "$BENCHFARM_WORKER_IMAGE"; do
            if docker image inspect "$image" >/dev/null 2>&1; then
                docker rmi "$image" >/dev/null
                log "removed $image"
            fi
        done
    fi
}

verb="${1:-}"
shift || true
case "$verb" in
up) up "$@" ;;
run) run "$@" ;;
chaos) chaos "$@" ;;
token) token ;;
down) down "$@" ;;
images) images ;;
*)
    sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
