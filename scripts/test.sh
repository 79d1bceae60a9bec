#!/usr/bin/env bash
# The whole test suite, on a fresh machine, as root:
#   sudo scripts/test.sh
# Installs what the tests need (nftables, iproute2, ping, setpriv, the CNI
# reference plugins and iptables for the CNI tests, the musl target), then
# runs formatting and lint checks, every test (pure, kernel
# in network namespaces), bounded fuzzing of every kernel-bytes decoder, and
# `cargo package` of the library crate. Kernel tests fail (never skip) when a
# requirement is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "scripts/test.sh: run as root: the kernel tests create network namespaces and nftables tables inside them" >&2
    exit 1
fi

step() { printf '\n=== %s\n' "$*"; }

step "install system packages"
packages=(nftables iproute2 iputils-ping util-linux kmod busybox-static tar containernetworking-plugins iptables podman)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
# Bridged traffic reaches the IP hooks only through br_netfilter.
[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ] || modprobe br_netfilter

step "install Rust components"
rustup component add rustfmt clippy >/dev/null 2>&1 || true
rustup target add x86_64-unknown-linux-musl

step "static release binary (the Docker tests build the FROM-scratch image from it)"
cargo build --release --target x86_64-unknown-linux-musl -p trafficjam-cli -p trafficjam-cni
# glibc's ldd says "statically linked" (or "not a dynamic executable").
for bin in trafficjam trafficjam-cni; do
    if ! ldd "target/x86_64-unknown-linux-musl/release/$bin" 2>&1 | grep -Eq "statically linked|not a dynamic executable"; then
        echo "scripts/test.sh: the release binary $bin is dynamically linked" >&2
        exit 1
    fi
done

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace 2>&1 | tee "$log"
passed=$(grep -Eo '^test result: .* ([0-9]+) passed' "$log" | grep -Eo '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '; ([0-9]+) failed' "$log" | grep -Eo '[0-9]+' | awk '{s+=$1} END {print s+0}')

step "fuzz every kernel-bytes decoder (bounded)"
scripts/fuzz.sh "${FUZZ_SECONDS:-20}"

step "cargo package -p trafficjam-core"
cargo package -p trafficjam-core --allow-dirty --quiet

echo
echo "scripts/test.sh: all checks passed"
echo "tests: $passed passed, $failed failed"
