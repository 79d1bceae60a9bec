#!/usr/bin/env bash
# Datapath cost of trafficjam's rules on a bridge with many container ports
# (root; everything runs in network namespaces of its own, tjbench-*-PID):
#
#   sudo scripts/bench_datapath.sh [--ports 10,1000] [--seconds N] [--repeat R]
#                                  [--br-nf on,off] [--runs K] [--threads T]
#                                  [--ipv6] [--diagnose] [--crowd-ipv6] [--no-build]
#
# For each port count (proxy + backend + crowd ports on one bridge) and each
# br_netfilter setting of the host namespace it reports:
#   1. proxy -> backend TCP throughput (one iperf3 stream), without and with
#      trafficjam's rules, and the ratio (target: >= 0.95);
#   2. proxy -> backend new connections per second (full handshakes, each
#      connection opened and closed; benches/src/bin/connrate.rs), without
#      and with the rules, and the ratio (target: >= 0.90);
#   3. whole-process latency of `trafficjam apply`: a fresh install, a
#      re-apply with nothing to change, and the update after one container
#      port was added (an element-only set update); median of --runs.
# Each measurement is repeated --repeat times, alternating the order of the
# "none" and "rules" runs; the report gives medians, and as ratio the median
# of the paired runs' ratios with their range (the machine's noise).
#
# --ipv6 measures proxy -> backend over IPv6 instead of IPv4.
# --diagnose also measures, to see where the cost goes:
#   ct      only `ct state established,related accept` in an inet forward
#           chain (conntrack alone; bridged packets reach it only through
#           br_netfilter);
#   bridge  trafficjam's bridge table alone (its inet table deleted);
#   inet    trafficjam's inet table alone (its bridge table deleted);
#   rules/ct  the rules over conntrack alone (paired runs): their cost on
#           a host that tracks connections anyway — every Docker host,
#           whose own iptables rules match --ctstate;
# and times `trafficjam plan` (port discovery and ruleset, no kernel write)
# and `trafficjam status` (table dump) to split an apply's time.
#
# PERF_DATA=DIR records the whole machine (`perf record -a -g`) during the
# first repeat's connection-rate run of each mode, one
# DIR/perf-PORTS-BRNF-MODE.data each: compare where the CPU goes with and
# without the rules (`perf report -i ... --no-children --sort sym`).
#
# Nothing outside the tjbench-*-PID namespaces is touched; a trap removes
# them (and the servers started inside) on exit, failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

ports_list=10,1000
seconds=10
repeat=3
brnf_list=on,off
runs=5
threads=32
family=4
diagnose=0
build=1
crowd_ipv6=0

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit "${1:-0}"; }
while (($#)); do
    case $1 in
        --ports) ports_list=$2; shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        --repeat) repeat=$2; shift 2 ;;
        --br-nf) brnf_list=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --threads) threads=$2; shift 2 ;;
        --ipv6) family=6; shift ;;
        --diagnose) diagnose=1; shift ;;
        --crowd-ipv6) crowd_ipv6=1; shift ;;
        --no-build) build=0; shift ;;
        -h|--help) usage 0 ;;
        *) echo "unknown option $1" >&2; usage 2 >&2 ;;
    esac
done

log() { printf '[%(%T)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $EUID == 0 ]] || die "run as root (sudo $0 ...)"
if [[ -n ${PERF_DATA:-} ]]; then
    command -v perf >/dev/null || die "PERF_DATA needs perf (Debian: linux-perf)"
    mkdir -p "$PERF_DATA"
fi
IFS=, read -ra PORT_COUNTS <<<"$ports_list"
IFS=, read -ra BRNF_MODES <<<"$brnf_list"
for n in "${PORT_COUNTS[@]}"; do
    [[ $n =~ ^[0-9]+$ ]] && ((n >= 2 && n <= 60000)) || die "--ports: $n is not in 2..60000"
done
for b in "${BRNF_MODES[@]}"; do [[ $b == on || $b == off ]] || die "--br-nf: on or off, not $b"; done
if ((diagnose)); then MODES=(none ct bridge inet rules); else MODES=(none rules); fi

# --- tools -------------------------------------------------------------------
command -v iperf3 >/dev/null || { log "installing iperf3"; DEBIAN_FRONTEND=noninteractive apt-get install -y iperf3 >&2; }
command -v python3 >/dev/null || die "python3 is needed to read iperf3's JSON"
if ((diagnose)); then command -v nft >/dev/null || die "--diagnose needs nft"; fi

TJ=${TRAFFICJAM_BIN:-$ROOT/target/release/trafficjam}
CONNRATE=${CONNRATE_BIN:-$ROOT/target/release/connrate}
if ((build)); then
    # Build as the invoking user when run through sudo, so target/ stays theirs.
    as_user=()
    [[ -n ${SUDO_USER:-} && $SUDO_USER != root ]] && as_user=(sudo -u "$SUDO_USER" --preserve-env=PATH,CARGO_HOME,RUSTUP_HOME)
    command -v cargo >/dev/null || die "cargo not in PATH: build first (cargo build --release -p trafficjam-cli -p trafficjam-benches) and pass --no-build"
    # The CLI may be mid-edit in a shared tree: retry a few times.
    for attempt in 1 2 3 4 5; do
        if "${as_user[@]}" cargo build --release -p trafficjam-cli -p trafficjam-benches --bin trafficjam --bin connrate >&2; then
            break
        fi
        ((attempt < 5)) || die "cargo build failed"
        log "build failed (attempt $attempt); retrying in 60 s"
        sleep 60
    done
fi
[[ -x $TJ ]] || die "$TJ not found"
[[ -x $CONNRATE ]] || die "$CONNRATE not found"

# --- namespaces and cleanup --------------------------------------------------
H=tjbench-host-$$ P=tjbench-proxy-$$ B=tjbench-backend-$$ C=tjbench-crowd-$$
NETNS=/run/netns/$H
PIDS=()
CREATED=()
WORK=

stop_servers() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    PIDS=()
}
teardown() {
    stop_servers
    local ns
    for ns in "${CREATED[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    CREATED=()
}
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    teardown
    [[ -z $WORK ]] || rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
WORK=$(mktemp -d /tmp/tjbench.XXXXXX)
# Run private copies: a rebuild in the tree during the run changes nothing.
cp "$TJ" "$WORK/trafficjam" && TJ=$WORK/trafficjam
cp "$CONNRATE" "$WORK/connrate" && CONNRATE=$WORK/connrate

in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

new_ns() {
    ip netns add "$1"
    CREATED+=("$1")
    in_ns "$1" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
        net.ipv6.conf.all.router_solicitations=0 net.ipv6.conf.default.router_solicitations=0
    ip -n "$1" link set lo up
}

# A container namespace with one veth on the bridge.
container() {
    local ns=$1 hostif=$2 v4=$3 v6=$4
    new_ns "$ns"
    ip -n "$H" link add "$hostif" type veth peer name eth0 netns "$ns"
    ip -n "$ns" addr add "$v4/16" dev eth0
    ip -n "$ns" addr add "$v6/64" dev eth0 nodad
    ip -n "$ns" link set eth0 up
    ip -n "$H" link set "$hostif" master br-bench up
}

# The crowd address of port i: 10.99.1.1, 10.99.1.2, ... (254 per /24).
crowd_addr() { echo "10.99.$((1 + $1 / 254)).$((1 + $1 % 254))"; }

setup() {
    local n=$1 i
    log "topology: $n ports"
    new_ns "$H"
    ip -n "$H" link add br-bench type bridge
    ip -n "$H" addr add 10.99.0.1/16 dev br-bench
    ip -n "$H" addr add fd99::1/64 dev br-bench nodad
    ip -n "$H" link set br-bench up
    container "$P" tjp 10.99.0.2 fd99::2
    container "$B" tjb 10.99.0.3 fd99::3
    # A wide port range on the client: its ports are reused less often
    # while the server still holds their TIME_WAIT.
    in_ns "$P" sysctl -qw net.ipv4.ip_local_port_range="10000 65000"
    new_ns "$C"
    # The crowd has IPv4 only: 1,000 dual-stack ports coming up send
    # thousands of MLD reports, each flooded to every port, which keeps both
    # cores in softirq for a minute or more (--crowd-ipv6 to keep them;
    # settle then waits for the storm to pass).
    ((crowd_ipv6)) || in_ns "$C" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    if ((n > 2)); then
        for ((i = 0; i < n - 2; i++)); do
            echo "link add tjc$i type veth peer name c$i netns $C"
            echo "link set tjc$i master br-bench up"
        done >"$WORK/host.batch"
        for ((i = 0; i < n - 2; i++)); do
            echo "addr add $(crowd_addr "$i")/32 dev c$i"
            echo "link set c$i up"
        done >"$WORK/crowd.batch"
        ip -n "$H" -batch "$WORK/host.batch"
        ip -n "$C" -batch "$WORK/crowd.batch"
    fi
    # Servers in the backend namespace, for the whole topology's life.
    # (`ip netns exec` execs the server: $! is the server's own pid.)
    ip netns exec "$B" iperf3 -s -p 5201 >/dev/null 2>&1 &
    PIDS+=($!)
    ip netns exec "$B" "$CONNRATE" server "[::]:5202" >"$WORK/connrate-server.out" 2>&1 &
    PIDS+=($!)
    for i in $(seq 100); do
        grep -q listening "$WORK/connrate-server.out" 2>/dev/null && break
        sleep 0.05
    done
    grep -q listening "$WORK/connrate-server.out" || die "connrate server: $(cat "$WORK/connrate-server.out")"
    settle
    check_idle
    # Positive control: the proxy reaches the backend before any rule.
    in_ns "$P" ping -c1 -W2 -q 10.99.0.3 >/dev/null || die "proxy cannot reach the backend (IPv4)"
    in_ns "$P" ping -6 -c1 -W2 -q fd99::3 >/dev/null || die "proxy cannot reach the backend (IPv6)"
}

# Wait until the bridge is quiet: at most 5 frames a second flooded to the
# backend's port for 3 seconds in a row (at most 300 s).
settle() {
    local prev cur quiet=0 waited=0
    prev=$(in_ns "$H" cat /sys/class/net/tjb/statistics/tx_packets)
    while ((quiet < 3)); do
        sleep 1
        cur=$(in_ns "$H" cat /sys/class/net/tjb/statistics/tx_packets)
        if ((cur - prev <= 5)); then ((quiet += 1)); else quiet=0; fi
        prev=$cur
        ((++waited < 300)) || die "the bridge is still busy after 300 s ($((cur - prev)) frames/s)"
    done
    ((waited <= 3)) || log "waited $waited s for the bridge to settle"
}

# Warn when something else keeps the CPUs busy: the ratios are measured side
# by side, but absolute numbers and their noise then reflect that load.
check_idle() {
    local a b
    a=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat)
    sleep 1
    b=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat)
    local busy=$(((b - a) * 100 / $(getconf CLK_TCK) / $(nproc)))
    ((busy < 10)) || log "warning: the CPUs are ${busy}% busy before the benchmark (other processes): numbers will be noisy"
}

# --- measurements ------------------------------------------------------------
if ((family == 6)); then TARGET=fd99::3; else TARGET=10.99.0.3; fi

TJARGS=(--netns "$NETNS" --subnet 10.99.0.0/16 --subnet fd99::/64 --whitelist-ip 10.99.0.2 --bridge br-bench)
tj_apply() { "$TJ" apply "${TJARGS[@]}" >/dev/null 2>"$WORK/apply.err" || die "trafficjam apply: $(cat "$WORK/apply.err")"; }
tj_clear() { "$TJ" clear --netns "$NETNS" >/dev/null 2>&1 || die "trafficjam clear failed"; }
tj_ports() { "$TJ" status --netns "$NETNS" | grep -cE '^[[:space:]]*port ' || true; }

now_ns() { date +%s%N; }
# Milliseconds of one whole process.
timed() {
    local t0 t1
    t0=$(now_ns)
    "$@" >/dev/null 2>"$WORK/timed.err" || die "$*: $(cat "$WORK/timed.err")"
    t1=$(now_ns)
    awk -v d=$((t1 - t0)) 'BEGIN { printf "%.2f", d / 1e6 }'
}
timed_apply() { timed "$TJ" apply "${TJARGS[@]}"; }

# median FORMAT VALUE...
median() {
    local fmt=$1; shift
    printf '%s\n' "$@" | sort -g | awk -v f="$fmt" '{ v[NR] = $1 } END { printf f, NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# Paired ratios: run i of a mode over run i of "none" (the two ran next to
# each other, so slow drift in the host's load cancels). Prints the median
# and the range, e.g. "0.951 0.93-0.97".
paired() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        n = split(a, x, " "); split(b, y, " ")
        for (i = 1; i <= n; i++) r[i] = x[i] > 0 ? y[i] / x[i] : 0
        # insertion sort: n is small
        for (i = 2; i <= n; i++) { v = r[i]; for (j = i - 1; j >= 1 && r[j] > v; j--) r[j + 1] = r[j]; r[j + 1] = v }
        m = n % 2 ? r[(n + 1) / 2] : (r[n / 2] + r[n / 2 + 1]) / 2
        printf "%.3f %.2f-%.2f", m, r[1], r[n]
    }'
}

# Install the ruleset of a mode (none: nothing).
mode_on() {
    case $1 in
        none) ;;
        rules) tj_apply ;;
        bridge) tj_apply; in_ns "$H" nft delete table inet trafficjam-default ;;
        inet) tj_apply; in_ns "$H" nft delete table bridge trafficjam-default ;;
        ct) in_ns "$H" nft -f - <<'EOF'
table inet tjbench-ct {
    chain forward {
        type filter hook forward priority -10; policy accept;
        ct state established,related accept
    }
}
EOF
            ;;
    esac
}
# The rules' drop counters after a run (only proxy -> backend traffic and
# neighbour/multicast chatter ran: a drop of TCP there would be a bug).
report_drops() {
    command -v nft >/dev/null || return 0
    local drops
    drops=$(in_ns "$H" nft list ruleset 2>/dev/null |
        sed -n 's/.*counter packets \([1-9][0-9]*\) bytes [0-9]* drop comment "\([^"]*\)".*/\2: \1/p' |
        sort | awk -F': ' '{ n[$1] += $2 } END { for (k in n) printf "%s%s %d", sep, k, n[k]; sep = ", " }')
    [[ -z $drops ]] || log "  $1: the rules dropped packets during the run: $drops"
}
mode_off() {
    case $1 in
        none) ;;
        rules | bridge | inet) report_drops "$1"; tj_clear ;;
        ct) in_ns "$H" nft delete table inet tjbench-ct ;;
    esac
    # Nothing of ours may be left in place for the next run.
    [[ -z $(in_ns "$H" nft list tables 2>/dev/null) ]] || die "tables left after mode $1: $(in_ns "$H" nft list tables)"
}

# Gbit/s of one iperf3 stream proxy -> backend (first second omitted).
throughput() {
    local out
    out=$(in_ns "$P" iperf3 -c "$TARGET" -p 5201 -t "$seconds" -O 1 -J) || die "iperf3: $out"
    python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9))' <<<"$out"
}

# Handshakes per second proxy -> backend; PERF_FILE set: recorded.
connrate() {
    local out perf=
    if [[ -n ${PERF_FILE:-} ]]; then
        perf record -q -a -g -o "$PERF_FILE" 2>/dev/null &
        perf=$!
    fi
    if ((family == 6)); then out="[$TARGET]:5202"; else out="$TARGET:5202"; fi
    out=$(in_ns "$P" "$CONNRATE" client "$out" --seconds "$seconds" --threads "$threads") || die "connrate: $out"
    if [[ -n $perf ]]; then kill -INT "$perf"; wait "$perf" 2>/dev/null || true; fi
    echo "$out" >>"$WORK/connrate.log"
    sed -n 's/.*rate=\([0-9.]*\).*errors=\([0-9]*\).*error_kinds=\([^ ]*\).*/\1 \2 \3/p' <<<"$out"
}

# Fills TPUT[mode], CONN[mode] (medians of --repeat runs), TRATIO[mode],
# CRATIO[mode] (paired ratios to none: median and range) and ERRS[mode].
measure_datapath() {
    local label=$1 rep mode order t c e k
    declare -gA SAMPLES_T=() SAMPLES_C=() SAMPLES_E=()
    for ((rep = 1; rep <= repeat; rep++)); do
        if ((rep % 2)); then order=("${MODES[@]}"); else order=(); for mode in "${MODES[@]}"; do order=("$mode" "${order[@]}"); done; fi
        for mode in "${order[@]}"; do
            mode_on "$mode"
            t=$(throughput)
            PERF_FILE=
            [[ -z ${PERF_DATA:-} || $rep != 1 ]] || PERF_FILE=$PERF_DATA/perf-$n-$brnf-$mode.data
            c=$(connrate)
            read -r c e k <<<"$c"
            if [[ $k == - ]]; then k=; else k=": $k"; fi
            log "$label run $rep/$repeat $mode: $t Gbit/s, $c conn/s ($e failed connects$k)"
            mode_off "$mode"
            SAMPLES_T[$mode]+=" $t"
            SAMPLES_C[$mode]+=" $c"
            SAMPLES_E[$mode]+=" $e"
        done
    done
    declare -gA TPUT=() CONN=() ERRS=() TRATIO=() CRATIO=()
    for mode in "${MODES[@]}"; do
        TRATIO[$mode]=$(paired "${SAMPLES_T[none]}" "${SAMPLES_T[$mode]}")
        CRATIO[$mode]=$(paired "${SAMPLES_C[none]}" "${SAMPLES_C[$mode]}")
        # shellcheck disable=SC2086 # the samples are a word list
        TPUT[$mode]=$(median %.2f ${SAMPLES_T[$mode]})
        # shellcheck disable=SC2086
        CONN[$mode]=$(median %.0f ${SAMPLES_C[$mode]})
        # shellcheck disable=SC2086
        ERRS[$mode]=$(printf '%s\n' ${SAMPLES_E[$mode]} | awk '{ s += $1 } END { print s }')
    done
}

# Fills APPLY_MS, NOOP_MS, UPDATE_MS (medians of --runs) for an n-port bridge.
measure_apply() {
    local n=$1 r a=() u=() z=() got i ms
    for ((r = 0; r < runs; r++)); do
        tj_clear
        ms=$(timed_apply); a+=("$ms")
        ms=$(timed_apply); z+=("$ms")
    done
    got=$(tj_ports)
    ((got == n)) || die "status shows $got ports, expected $n"
    if ((diagnose)); then
        # Where an apply's time goes: `plan` discovers the ports and builds
        # the ruleset without touching the kernel; `status` only dumps it.
        local p=() s=()
        for ((r = 0; r < runs; r++)); do
            ms=$(timed "$TJ" plan "${TJARGS[@]}"); p+=("$ms")
            ms=$(timed "$TJ" status --netns "$NETNS"); s+=("$ms")
        done
        PLAN_MS=$(median %.1f "${p[@]}")
        STATUS_MS=$(median %.1f "${s[@]}")
        log "$n ports: plan ${p[*]} ms; status ${s[*]} ms"
    fi
    for ((r = 0; r < runs; r++)); do
        # One container more: a new veth with its own address, then apply.
        i=$r
        ip -n "$H" link add "tjn$i" type veth peer name "n$i" netns "$C"
        ip -n "$C" addr add "10.99.250.$((i + 1))/32" dev "n$i"
        ip -n "$C" link set "n$i" up
        ip -n "$H" link set "tjn$i" master br-bench up
        ms=$(timed_apply); u+=("$ms")
        if ((r == 0)); then
            got=$(tj_ports)
            ((got == n + 1)) || die "status shows $got ports after adding one, expected $((n + 1))"
        fi
        # Back to n ports (not timed).
        ip -n "$H" link del "tjn$i"
        tj_apply
    done
    got=$(tj_ports)
    ((got == n)) || die "status shows $got ports after the updates, expected $n"
    tj_clear
    APPLY_MS=$(median %.1f "${a[@]}")
    NOOP_MS=$(median %.1f "${z[@]}")
    UPDATE_MS=$(median %.1f "${u[@]}")
    log "$n ports: apply ${a[*]} ms; no-op ${z[*]} ms; update ${u[*]} ms"
}

# --- main --------------------------------------------------------------------
log "iperf3 and connrate: $seconds s each, $repeat repeats, $threads connrate threads, IPv$family; apply: $runs runs"
ROWS=()
DIAG=()
APPLY_DIAG=()
for n in "${PORT_COUNTS[@]}"; do
    setup "$n"
    for brnf in "${BRNF_MODES[@]}"; do
        v=1; [[ $brnf == off ]] && v=0
        in_ns "$H" sysctl -qw net.bridge.bridge-nf-call-iptables=$v net.bridge.bridge-nf-call-ip6tables=$v
        measure_datapath "$n ports, br_nf $brnf"
        measure_apply "$n"
        read -r tr trr <<<"${TRATIO[rules]}"
        read -r cr crr <<<"${CRATIO[rules]}"
        ROWS+=("$(printf '%-6s %-6s %6s %6s %6s %-9s   %7s %7s %6s %-9s   %8s %8s %9s' \
            "$n" "$brnf" "${TPUT[none]}" "${TPUT[rules]}" "$tr" "$trr" \
            "${CONN[none]}" "${CONN[rules]}" "$cr" "$crr" \
            "$APPLY_MS" "$NOOP_MS" "$UPDATE_MS")")
        if ((diagnose)); then
            APPLY_DIAG+=("$(printf '%-6s %-6s %8s %8s %8s %8s %9s' "$n" "$brnf" "$APPLY_MS" "$PLAN_MS" "$STATUS_MS" "$NOOP_MS" "$UPDATE_MS")")
            for mode in "${MODES[@]}"; do
                read -r tr trr <<<"${TRATIO[$mode]}"
                read -r cr crr <<<"${CRATIO[$mode]}"
                DIAG+=("$(printf '%-6s %-6s %-7s %7s %6s %-9s   %7s %6s %-9s %7s' "$n" "$brnf" "$mode" \
                    "${TPUT[$mode]}" "$tr" "$trr" "${CONN[$mode]}" "$cr" "$crr" "${ERRS[$mode]}")")
            done
            # The rules over conntrack alone: what trafficjam adds on a
            # host that tracks connections already (every Docker host:
            # its own iptables rules match --ctstate).
            read -r tr trr <<<"$(paired "${SAMPLES_T[ct]}" "${SAMPLES_T[rules]}")"
            read -r cr crr <<<"$(paired "${SAMPLES_C[ct]}" "${SAMPLES_C[rules]}")"
            DIAG+=("$(printf '%-6s %-6s %-7s %7s %6s %-9s   %7s %6s %-9s %7s' "$n" "$brnf" "rules/ct" \
                "-" "$tr" "$trr" "-" "$cr" "$crr" "-")")
        fi
        for mode in "${MODES[@]}"; do
            ((ERRS[$mode] == 0)) || log "warning: $n ports, br_nf $brnf, $mode: ${ERRS[$mode]} failed connects"
        done
    done
    teardown
done

echo
echo "trafficjam datapath: proxy -> backend (IPv$family), median of $repeat x ${seconds}s; apply/update: median of $runs whole-process runs"
echo "ratio: median of the paired runs' ratios (rules/none), then their range; targets: throughput >= 0.95, conn/s >= 0.90"
printf '%-6s %-6s %-30s   %-33s   %8s %8s %9s\n' "" "" "throughput (Gbit/s)" "new conn/s" apply no-op "+1 port"
printf '%-6s %-6s %6s %6s %6s %-9s   %7s %7s %6s %-9s   %8s %8s %9s\n' ports br_nf none rules ratio range none rules ratio range ms ms ms
printf '%s\n' "${ROWS[@]}"
if ((diagnose)); then
    echo
    echo "where the cost goes (ratio to none; ct = conntrack only, bridge/inet = that trafficjam table alone;"
    echo "rules/ct = the rules over conntrack alone, what they add where connections are tracked already, as on a Docker host)"
    printf '%-6s %-6s %-7s %7s %6s %-9s   %7s %6s %-9s %7s\n' ports br_nf mode Gbit/s ratio range conn/s ratio range errors
    printf '%s\n' "${DIAG[@]}"
    echo
    echo "where an apply's time goes (ms; plan = discovery + ruleset, no kernel write; status = dump only)"
    printf '%-6s %-6s %8s %8s %8s %8s %9s\n' ports br_nf apply plan status no-op "+1 port"
    printf '%s\n' "${APPLY_DIAG[@]}"
fi
