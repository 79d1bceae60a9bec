#!/usr/bin/env bash
# CNI plugin latency: trafficjam-cni vs the CNI firewall plugin (Debian's
# containernetworking-plugins), ADD and DEL, in a throwaway namespace.
#   sudo scripts/bench_cni.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --target x86_64-unknown-linux-musl -p trafficjam-cni
ns="tjbench-$$"
ip netns add "$ns"
trap 'ip netns del "$ns"' EXIT
ip netns exec "$ns" python3 scripts/bench_cni.py \
    "$PWD/target/x86_64-unknown-linux-musl/release/trafficjam-cni" "${1:-50}"
