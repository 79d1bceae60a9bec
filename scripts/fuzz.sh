#!/usr/bin/env bash
# Run every fuzz target for a bounded time (default 20 s each) and fail on
# any finding. Needs the nightly toolchain; installs cargo-fuzz if missing.
#   scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-20}"
if ! rustup toolchain list | grep -q '^nightly'; then
    echo "scripts/fuzz.sh: the nightly toolchain is required for cargo fuzz (rustup toolchain install nightly)" >&2
    exit 1
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
for target in $(cargo +nightly fuzz list); do
    mkdir -p "corpus/$target"
    [ -d "seeds/$target" ] && cp -n seeds/"$target"/* "corpus/$target/" 2>/dev/null || true
    echo "fuzzing $target for ${seconds}s"
    cargo +nightly fuzz run "$target" -O -- -max_total_time="$seconds" -print_final_stats=1 2>&1 \
        | grep -E 'stat::number_of_executed_units|Done|ERROR|panicked' || true
    if ls "artifacts/$target"/crash-* >/dev/null 2>&1 || ls "artifacts/$target"/oom-* >/dev/null 2>&1; then
        echo "scripts/fuzz.sh: $target found a crash: see fuzz/artifacts/$target" >&2
        exit 1
    fi
done
