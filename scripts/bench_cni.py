#!/usr/bin/env python3
"""Time trafficjam-cni's ADD and DEL against the CNI firewall plugin's
same-bridge mode, each run alone with the same prevResult, N containers on
one bridge, inside a throwaway network namespace (run via bench_cni.sh).

Prints the median and 95th percentile per command, in milliseconds."""
import json, os, shutil, statistics, subprocess, sys, tempfile, time

N = int(sys.argv[2]) if len(sys.argv) > 2 else 50
ours = sys.argv[1]
data = tempfile.mkdtemp(prefix="tjbench-")

def conf(plugin, i):
    c = {"cniVersion": "1.0.0", "name": "bench", "prevResult": {
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "tjbench0"}, {"name": f"veth{i}"}, {"name": "eth0", "sandbox": "/x"}],
        "ips": [{"address": f"10.97.{i // 250}.{i % 250 + 2}/16", "interface": 2}]}}
    if plugin == "ours":
        c.update(type="trafficjam", ingressPolicy="same-bridge", dataDir=data)
    else:
        c.update(type="firewall", backend="iptables", ingressPolicy="same-bridge")
    return json.dumps(c).encode()

def call(plugin, cmd, i):
    exe = ours if plugin == "ours" else "/usr/lib/cni/firewall"
    env = dict(os.environ, CNI_COMMAND=cmd, CNI_CONTAINERID=f"bench{i}", CNI_IFNAME="eth0",
               CNI_NETNS="/proc/self/ns/net", CNI_PATH="/usr/lib/cni")
    t = time.perf_counter()
    r = subprocess.run([exe], input=conf(plugin, i), env=env, capture_output=True)
    ms = (time.perf_counter() - t) * 1e3
    if r.returncode != 0:
        sys.exit(f"{plugin} {cmd} {i} failed: {r.stdout.decode()} {r.stderr.decode()}")
    return ms

try:
    for plugin in ["ours", "firewall"]:
        for cmd in ["ADD", "DEL"]:
            times = [call(plugin, cmd, i) for i in range(N)]
            times.sort()
            p95 = times[int(len(times) * 0.95) - 1]
            name = "trafficjam-cni" if plugin == "ours" else "firewall (iptables)"
            print(f"{name:22} {cmd:4} n={N}  median {statistics.median(times):6.2f} ms  p95 {p95:6.2f} ms")
finally:
    shutil.rmtree(data, ignore_errors=True)
