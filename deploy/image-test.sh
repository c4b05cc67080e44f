#!/usr/bin/env bash
# `make image-test`: builds the Dockerfile's `runtime` stage with podman and proves the image works.
#
# This machine has no Docker engine and no registry (../shared/design/container-testing.md), so:
#   - podman runs with a private containers.conf/storage.conf in a temporary directory (runc, cgroupfs,
#     ulimits within the sandbox's hard limits), leaving the system's container state alone;
#   - the base image debian:bookworm-slim is built from Debian's archive with mmdebstrap and cached as a
#     tarball in $IMAGE_CACHE_DIR (podman load takes seconds; mmdebstrap about a minute);
#   - the `build` stage's swift image cannot be pulled: the same release binaries are built on the host
#     (--static-swift-stdlib, own scratch path) and handed to `podman build --build-context build=DIR`,
#     which replaces that stage, so the Dockerfile tested is the one users build with Docker.
# Then the container runs the default config on a free loopback port, and this checks: the binaries'
# libraries all resolve in the image, /readyz, an MCP session calling diag__echo and the bundled stdio
# server, the process's uid is not 0, the HEALTHCHECK passes, and `podman stop` (SIGTERM) ends it with
# exit code 0 before the 10 s kill deadline. Everything it created is removed at the end, whatever happens.
#
# The packages (podman, runc, mmdebstrap) come from `make image-deps`, which `make image-test` runs first.
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$PWD
SWIFT=${SWIFT:-swift}
PYTHON3=${PYTHON3:-python3}
IMAGE_CACHE_DIR=${IMAGE_CACHE_DIR:-$REPO/.build-image}
STATIC_SCRATCH=${STATIC_SCRATCH:-$REPO/.build-static}
BASE_IMAGE=docker.io/library/debian:bookworm-slim
BASE_CACHE=$IMAGE_CACHE_DIR/debian-bookworm-slim.tar
IMAGE=localhost/mcp-gateway:image-test
CONTAINER=mcp-gateway-image-test-$$
STOP_TIMEOUT=10
EXPECTED_UID=10001

started=$(date +%s)
phase_started=$started
phase() {
    local now
    now=$(date +%s)
    if [ -n "${phase_name:-}" ]; then echo "image-test: ${phase_name}: $((now - phase_started)) s"; fi
    phase_name=$1
    phase_started=$now
    echo "== image-test: $1"
}
passed=0
failed=0
ok() {
    passed=$((passed + 1))
    echo "image-test: ok: $*"
}
fail() {
    failed=$((failed + 1))
    echo "image-test: FAIL: $*" >&2
    exit 1
}

for tool in podman runc mmdebstrap; do
    command -v "$tool" >/dev/null 2>&1 || fail "$tool is not installed: run \`make image-deps\` (make image-test does)"
done

work=$(mktemp -d /tmp/mcp-gateway-image-test.XXXXXX)
export CONTAINERS_CONF=$work/containers.conf
export CONTAINERS_STORAGE_CONF=$work/storage.conf
# Debian's crun 1.8.1 cannot start containers in this sandbox; runc can. The sandbox cannot raise rlimits,
# so container ulimits stay at or below the host's hard limits.
hard_nofile=$(ulimit -Hn)
[ "$hard_nofile" = unlimited ] && hard_nofile=1048576
nofile=$(( hard_nofile < 20000 ? hard_nofile : 20000 ))
cat >"$CONTAINERS_CONF" <<EOF
[containers]
default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
cat >"$CONTAINERS_STORAGE_CONF" <<EOF
[storage]
driver = "overlay"
graphroot = "$work/storage"
runroot = "$work/run"
EOF

cleanup() {
    local rc=$?
    set +e
    if podman container exists "$CONTAINER" 2>/dev/null; then
        if [ $rc -ne 0 ]; then
            echo "image-test: container log (last 40 lines):" >&2
            podman logs --tail 40 "$CONTAINER" >&2
        fi
        podman rm -f -t 0 "$CONTAINER" >/dev/null 2>&1
    fi
    podman rmi -f "$IMAGE" >/dev/null 2>&1
    # Anything still mounted under the private storage (an interrupted build) is unmounted before removal.
    grep -o " $work/[^ ]*" /proc/mounts 2>/dev/null | sort -r | while read -r mount; do umount -l "$mount"; done
    rm -rf "$work"
    echo "image-test: $([ $rc -eq 0 ] && echo PASSED || echo FAILED) in $(( $(date +%s) - started )) s"
    # Also a step that broke without a check failing (a build error) counts as a failure.
    [ $rc -ne 0 ] && [ $failed -eq 0 ] && failed=1
    echo "image-test: $passed passed, $failed failed"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

phase "base image $BASE_IMAGE"
mkdir -p "$IMAGE_CACHE_DIR"
if [ -f "$BASE_CACHE" ]; then
    podman load -q -i "$BASE_CACHE" >/dev/null
else
    echo "image-test: building $BASE_IMAGE from Debian's archive with mmdebstrap (cached in $BASE_CACHE)"
    mmdebstrap --variant=minbase --quiet \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        bookworm - \
      | podman import \
          --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
          --change 'CMD ["bash"]' \
          - "$BASE_IMAGE" >/dev/null
    podman save -q -o "$BASE_CACHE.partial" "$BASE_IMAGE"
    mv "$BASE_CACHE.partial" "$BASE_CACHE"
fi
podman image exists "$BASE_IMAGE" || fail "$BASE_IMAGE is not in the private storage"
ok "base image $BASE_IMAGE present"

phase "static release binaries (swift build -c release --static-swift-stdlib --scratch-path $STATIC_SCRATCH)"
for product in mcp-gateway ExampleServer; do
    nice -n 10 "$SWIFT" build -c release --static-swift-stdlib --scratch-path "$STATIC_SCRATCH" --product "$product"
done
bin=$("$SWIFT" build -c release --static-swift-stdlib --scratch-path "$STATIC_SCRATCH" --show-bin-path)

phase "build context for the Dockerfile's build stage"
context=$work/build-stage
mkdir -p "$context/staging"
install -m 0755 "$bin/mcp-gateway" "$context/staging/mcp-gateway"
install -m 0755 "$bin/ExampleServer" "$context/staging/mcp-example-server"
strip --strip-debug "$context/staging/mcp-gateway" "$context/staging/mcp-example-server"   # as the Dockerfile does
[ -f /etc/ssl/certs/ca-certificates.crt ] || fail "/etc/ssl/certs/ca-certificates.crt is missing on the host (install ca-certificates)"
install -m 0644 /etc/ssl/certs/ca-certificates.crt "$context/staging/ca-certificates.crt"
ls -l "$context/staging"

phase "podman build --target runtime"
revision=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
# --format docker: the OCI image format has no HEALTHCHECK, and podman would drop it.
podman build --pull=never --format docker --target runtime \
    --build-context "build=$context" \
    --build-arg "REVISION=$revision" \
    -t "$IMAGE" -f Dockerfile .
size_bytes=$(podman image inspect --format '{{.Size}}' "$IMAGE")
echo "image-test: image $IMAGE is $(( size_bytes / 1024 / 1024 )) MiB ($size_bytes bytes)"
healthcheck=$(podman image inspect --format '{{json .Config.Healthcheck}}' "$IMAGE" 2>/dev/null || true)
case "$healthcheck" in
    *healthcheck*) ok "podman build --target runtime; the image has its HEALTHCHECK" ;;
    *) fail "the image has no HEALTHCHECK (got: $healthcheck)" ;;
esac

phase "every shared library the binaries need is in the image"
for binary in /usr/local/bin/mcp-gateway /usr/local/bin/mcp-example-server; do
    libraries=$(podman run --rm --no-healthcheck --entrypoint /usr/bin/ldd "$IMAGE" "$binary")
    echo "$binary:"
    echo "$libraries"
    if grep -q "not found" <<<"$libraries"; then fail "$binary needs a library the image lacks"; fi
    ok "every library $binary needs is in the image"
done

phase "run the container with the default config"
port=$("$PYTHON3" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# Without systemd, podman logs that it cannot schedule the periodic health checks; `podman healthcheck run`
# below runs the check itself.
podman run -d --name "$CONTAINER" -p "127.0.0.1:$port:8080" "$IMAGE" >/dev/null
echo "image-test: container $CONTAINER on 127.0.0.1:$port"

phase "MCP over loopback: /readyz, initialize, tools/call"
"$PYTHON3" deploy/image_probe.py "http://127.0.0.1:$port" || fail "the MCP probe through the container failed"
ok "MCP session over loopback: diag__echo and example__add answered"

phase "non-root process"
exec_uid=$(podman exec "$CONTAINER" id -u)
process_uids=$(podman exec "$CONTAINER" grep '^Uid:' /proc/1/status)
echo "image-test: exec uid $exec_uid; PID 1 $process_uids"
[ "$exec_uid" = "$EXPECTED_UID" ] || fail "podman exec runs as uid $exec_uid, expected $EXPECTED_UID"
read -r _ real effective saved filesystem <<<"$process_uids"
for uid in "$real" "$effective" "$saved" "$filesystem"; do
    [ "$uid" = "$EXPECTED_UID" ] || fail "the gateway (PID 1) runs with uids $real/$effective/$saved/$filesystem, expected $EXPECTED_UID"
done
ok "the gateway runs as uid $EXPECTED_UID, not root"

phase "HEALTHCHECK"
podman healthcheck run "$CONTAINER" || fail "podman healthcheck run $CONTAINER did not pass"
health=$(podman inspect --format '{{.State.Health.Status}}' "$CONTAINER" 2>/dev/null || podman inspect --format '{{.State.Healthcheck.Status}}' "$CONTAINER")
[ "$health" = healthy ] || fail "health status is \"$health\", expected healthy"
ok "HEALTHCHECK passes (status $health)"

phase "SIGTERM via podman stop -t $STOP_TIMEOUT"
stop_started=$(date +%s%N)
podman stop -t "$STOP_TIMEOUT" "$CONTAINER" >/dev/null
stop_ms=$(( ($(date +%s%N) - stop_started) / 1000000 ))
exit_code=$(podman inspect --format '{{.State.ExitCode}}' "$CONTAINER")
echo "image-test: stopped in $stop_ms ms with exit code $exit_code"
[ "$exit_code" = 0 ] || fail "the gateway exited with $exit_code after SIGTERM (expected 0; 137 means it had to be killed)"
ok "SIGTERM: exit code 0 after $stop_ms ms"
podman logs "$CONTAINER" 2>&1 | grep -q '"msg":"stopped"' || fail "the log has no \"stopped\" record: the shutdown was not the graceful one"
ok "graceful shutdown logged"

phase "done"
