#!/usr/bin/env bash
# Scale benchmark of the Docker daemon (issue 12), as root on a Docker host:
#
#   sudo scripts/bench_scale.sh [SIZES...]      # default: 10 500
#
# For each size N: a network of its own with N containers (every tenth a
# proxy), `trafficjam run` (the static binary, on the host, with
# --metrics), then 40 containers (PROBES) started and removed one at a time.
# Reported per size (JSON, from benches/src/bin/event_latency.rs):
#
#   connect_to_bound       Docker's `network connect` event → the kernel
#                          told the new port is bound (median, p99, max)
#   disconnect_to_unbound  `network disconnect` → the port unbound
#   docker_api_calls_per_event
#   full_kernel_reads      ruleset reads to plan a change (the others are
#                          planned against the last transaction)
#   cpu_ms_per_container, rss_kib_before/after   of the daemon
#   heap_kib_before/after  its live allocated bytes (what a leak grows;
#                          RSS stays at the allocator's high-water mark)
#
# and the time `docker-compose up -d` of 200 containers takes to be fully
# enforced (every container bound), with the daemon's CPU time and RSS.
#
# Environment: TRAFFICJAM_BIN runs that binary instead of the static one
# (e.g. a build with symbols); PERF_DATA=DIR records the daemon with
# `perf record -g` during the measured events, one DIR/perf-N.data per
# size (see where its CPU goes with `perf report -i DIR/perf-500.data`);
# COMPOSE=0 skips the docker-compose part; PROBES=N starts and removes N
# containers instead of 40 (the daemon's CPU time is read per thread, in
# nanoseconds, or in clock ticks when one of its threads ended meanwhile:
# the JSON's cpu_clock says which; more probes narrow the noise).
#
# Not part of `cargo test`. Takes about 10 minutes with the defaults.
# Everything it creates (containers, networks, tables) is its own, named
# tjbench-*, and removed at the end, also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench_scale.sh: run as root" >&2; exit 1; }
sizes=("${@:-10 500}")
# shellcheck disable=SC2206
sizes=(${sizes[@]})
run=tjbench-$$
image=tj-busybox:test
target=${TRAFFICJAM_BIN:-target/x86_64-unknown-linux-musl/release/trafficjam}
metrics_port=$((19000 + $$ % 1000))

[ -n "${TRAFFICJAM_BIN:-}" ] ||
    cargo build -q --release --target x86_64-unknown-linux-musl -p trafficjam-cli
cargo build -q --release -p trafficjam-benches --bin event_latency
# The busybox image of the tests (built from Debian's busybox-static).
docker image inspect "$image" >/dev/null 2>&1 ||
    cargo test -q -p trafficjam-cli --test docker_first_packet >/dev/null

daemon=
cleanup() {
    [ -n "$daemon" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null || true
    for net in $(docker network ls -q --filter "name=^$run"); do
        docker ps -aq --filter "network=$net" |
            xargs -r -P 4 -n 1 docker network disconnect -f "$net" >/dev/null 2>&1 || true
    done
    docker ps -aq --filter "name=^$run" | xargs -r docker rm -f >/dev/null 2>&1 || true
    for net in $(docker network ls -q --filter "name=^$run"); do
        docker network rm "$net" >/dev/null 2>&1 || true
    done
    nft list tables 2>/dev/null | awk -v p="trafficjam-$run" 'index($3, p) == 1 {print $2, $3}' |
        while read -r family name; do nft delete table "$family" "$name"; done
    if [ -d "${compose_dir:-}" ]; then
        (cd "$compose_dir" && docker-compose -p "$run-compose" down -t 0 >/dev/null 2>&1) || true
        rm -rf "$compose_dir"
    fi
}
trap cleanup EXIT

# Start N containers on $1, four at a time.
fill() {
    local net=$1 n=$2 i
    for ((i = 0; i < n; i++)); do
        local label=()
        ((i % 10 == 0)) && label=(--label "tjbench.proxy=$run")
        echo "docker run -d -q --name $run-$net-c$i --network $run-$net ${label[*]} $image"
    done | xargs -P 4 -I{} sh -c '{} >/dev/null'
}

start_daemon() {
    local net=$1
    "$target" run --network "$run-$net" --whitelist-filter "label=tjbench.proxy=$run" \
        --metrics "127.0.0.1:$metrics_port" >"/tmp/$run-$net.log" 2>&1 &
    daemon=$!
    for _ in $(seq 1 600); do
        nft list table bridge "trafficjam-$run-$net" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "trafficjam never enforced; its log:" >&2
    cat "/tmp/$run-$net.log" >&2
    exit 1
}

stop_daemon() {
    kill "$daemon"; wait "$daemon" 2>/dev/null || true; daemon=
}

# A network of the benchmark's own, on the first free /16 of 10.160-10.254.
create_network() {
    local name=$1 second
    for second in $(seq 160 254); do
        docker network create --subnet "10.$second.0.0/16" "$name" >/dev/null 2>&1 && return 0
    done
    echo "no free 10.x.0.0/16 for $name" >&2
    exit 1
}

results=()
for n in "${sizes[@]}"; do
    net=n$n
    create_network "$run-$net"
    echo "== $n containers: starting them" >&2
    t0=$(date +%s)
    fill "$net" "$n"
    echo "   started in $(($(date +%s) - t0)) s" >&2
    start_daemon "$net"
    sleep 2
    perf=
    if [ -n "${PERF_DATA:-}" ]; then
        mkdir -p "$PERF_DATA"
        perf record -q -g -p "$daemon" -o "$PERF_DATA/perf-$n.data" 2>/dev/null &
        perf=$!
    fi
    json=$(target/release/event_latency --network "$run-$net" --table "trafficjam-$run-$net" \
        --image "$image" --count "${PROBES:-40}" --pid "$daemon" --metrics "127.0.0.1:$metrics_port" \
        --label "tjbench.proxy=$run")
    [ -n "$perf" ] && kill -INT "$perf" && wait "$perf" 2>/dev/null || true
    echo "$json" >&2
    results+=("\"$n\": $json")
    stop_daemon
    # Disconnected first: removed while still connected, hundreds at a
    # time, Docker 20.10 keeps endpoints of theirs and then refuses to
    # remove the network ("has active endpoints") until it restarts.
    docker ps -aq --filter "name=^$run-$net-" |
        xargs -r -P 4 -n 1 docker network disconnect -f "$run-$net" >/dev/null 2>&1 || true
    docker ps -aq --filter "name=^$run-$net-" | xargs -r -P 4 -n 20 docker rm -f >/dev/null
    # Docker releases the endpoints a little after the containers.
    for _ in $(seq 1 50); do
        docker network rm "$run-$net" >/dev/null 2>&1 && break
        sleep 0.2
    done
    nft delete table inet "trafficjam-$run-$net" 2>/dev/null || true
    nft delete table bridge "trafficjam-$run-$net" 2>/dev/null || true
done

# docker-compose up of 200 containers on one network, trafficjam running.
# One service scaled to 200: the docker-compose of this machine (1.29, the
# one Debian ships) deadlocks on 200 distinct services, trafficjam or not.
if [ "${COMPOSE:-1}" = 0 ]; then
    printf '{\n%s\n}\n' "$(IFS=,; echo "${results[*]}")"
    exit 0
fi
compose_dir=$(mktemp -d)
{
    echo "version: '2.4'"
    echo "networks: {web: {external: true, name: $run-compose}}"
    echo "services:"
    echo "  svc: {image: $image, networks: [web], labels: {tjbench.svc: svc}}"
} >"$compose_dir/docker-compose.yml"
create_network "$run-compose"
start_daemon compose
cpu0=$(awk '{print $14 + $15}' "/proc/$daemon/stat")
t0=$(date +%s.%N)
(cd "$compose_dir" && docker-compose -p "$run-compose" up -d --scale svc=200 >/dev/null 2>&1)
up=$(date +%s.%N)
# Enforced: every one of the 200 containers' MACs is in the bridge table.
while :; do
    bound=$(nft list set bridge "trafficjam-$run-compose" macs 2>/dev/null | grep -o '"[^"]*" \. ' | wc -l)
    [ "$bound" -ge 200 ] && break
    sleep 0.05
done
done_at=$(date +%s.%N)
cpu1=$(awk '{print $14 + $15}' "/proc/$daemon/stat")
hz=$(getconf CLK_TCK)
rss=$(awk '/VmRSS/ {print $2}' "/proc/$daemon/status")
compose=$(printf '{"containers": 200, "compose_up_s": %.2f, "all_bound_after_up_s": %.3f, "daemon_cpu_s": %.2f, "daemon_rss_kib": %s}' \
    "$(echo "$up - $t0" | bc)" "$(echo "$done_at - $up" | bc)" "$(echo "($cpu1 - $cpu0) / $hz" | bc -l)" "$rss")
stop_daemon
printf '{\n%s,\n"compose": %s\n}\n' "$(IFS=,; echo "${results[*]}")" "$compose"
