#!/usr/bin/env bash
# Benchmarks (root; they run in network namespaces of their own):
#   sudo scripts/bench.sh
# 1. whole-process install: trafficjam apply vs nft -f vs one iptables
#    process per rule, measured side by side in one run;
# 2. in-process whitelist update latency for 10, 1,000 and 10,000 addresses.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add x86_64-unknown-linux-musl
cargo build --release -p trafficjam-cli --target x86_64-unknown-linux-musl
cargo bench -p trafficjam-benches --bench apply_vs_nft
cargo bench -p trafficjam-benches --bench whitelist_update
