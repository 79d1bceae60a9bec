//! The daemon's opt-in Prometheus endpoint (`run --metrics [ADDR]`,
//! loopback by default): counters kept by the daemon, and the drop
//! counters read from the kernel at every scrape, so they are exactly what
//! `trafficjam status` shows.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use trafficjam_core::Enforced;

use crate::error::CliError;
use crate::firewall::Firewall;

/// Counters of the running daemon.
pub struct Metrics {
    applies: AtomicU64,
    apply_errors: AtomicU64,
    apply_micros: AtomicU64,
    restores: AtomicU64,
    docker_connects: AtomicU64,
    blocked_lines: AtomicU64,
    docker_calls: AtomicU64,
    docker_events: AtomicU64,
    full_syncs: AtomicU64,
    kernel_reads: AtomicU64,
    port_updates: AtomicU64,
    interface_reads: AtomicU64,
    conntrack_walks: AtomicU64,
}

/// The daemon's counters (one daemon per process).
pub static METRICS: Metrics = Metrics::new();

impl Metrics {
    /// Every counter at zero.
    pub const fn new() -> Metrics {
        Metrics {
            applies: AtomicU64::new(0),
            apply_errors: AtomicU64::new(0),
            apply_micros: AtomicU64::new(0),
            restores: AtomicU64::new(0),
            docker_connects: AtomicU64::new(0),
            blocked_lines: AtomicU64::new(0),
            docker_calls: AtomicU64::new(0),
            docker_events: AtomicU64::new(0),
            full_syncs: AtomicU64::new(0),
            kernel_reads: AtomicU64::new(0),
            port_updates: AtomicU64::new(0),
            interface_reads: AtomicU64::new(0),
            conntrack_walks: AtomicU64::new(0),
        }
    }

    /// A transaction attempt (whether or not it changed anything) and how
    /// long reading, planning and sending took.
    pub fn applied(&self, took: Duration, ok: bool) {
        let counter = if ok {
            &self.applies
        } else {
            &self.apply_errors
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.apply_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Tables restored after someone else changed them.
    pub fn restored(&self) {
        self.restores.fetch_add(1, Ordering::Relaxed);
    }

    /// A (re)connection to Docker.
    pub fn docker_connected(&self) {
        self.docker_connects.fetch_add(1, Ordering::Relaxed);
    }

    /// A blocked-connection log line.
    pub fn blocked_line(&self) {
        self.blocked_lines.fetch_add(1, Ordering::Relaxed);
    }

    /// A request to the Docker API sent by the CLI itself (the event
    /// stream); those of the Docker layer it counts itself.
    pub fn docker_call(&self) {
        self.docker_calls.fetch_add(1, Ordering::Relaxed);
    }

    /// An event from Docker's event stream.
    pub fn docker_event(&self) {
        self.docker_events.fetch_add(1, Ordering::Relaxed);
    }

    /// A network discovered whole (listed from Docker, its bridge read).
    pub fn full_sync(&self) {
        self.full_syncs.fetch_add(1, Ordering::Relaxed);
    }

    /// How many times the ruleset was read to plan a change, so far.
    pub fn kernel_reads(&self, reads: u64) {
        self.kernel_reads.store(reads, Ordering::Relaxed);
    }

    /// How many transactions so far were ports' set elements alone.
    pub fn port_updates(&self, updates: u64) {
        self.port_updates.store(updates, Ordering::Relaxed);
    }

    /// How many rtnetlink requests (interfaces and addresses read) were sent
    /// so far.
    pub fn interface_reads(&self, reads: u64) {
        self.interface_reads.store(reads, Ordering::Relaxed);
    }

    /// How many times the conntrack table was walked to cut connections
    /// so far.
    pub fn conntrack_walks(&self, walks: u64) {
        self.conntrack_walks.store(walks, Ordering::Relaxed);
    }

    /// The exposition text, with the kernel's drop counters.
    fn render(&self, kernel: &Result<Vec<Enforced>, String>) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (ok, failed) = (get(&self.applies), get(&self.apply_errors));
        counter(
            "trafficjam_applies_total",
            "Transactions computed and, if anything changed, sent.",
            ok,
        );
        counter(
            "trafficjam_apply_errors_total",
            "Transactions the kernel refused or that could not be sent.",
            failed,
        );
        counter(
            "trafficjam_restores_total",
            "Tables restored after being changed from outside.",
            get(&self.restores),
        );
        counter(
            "trafficjam_docker_connects_total",
            "Connections to Docker (the first, then every reconnect).",
            get(&self.docker_connects),
        );
        counter(
            "trafficjam_blocked_log_lines_total",
            "Blocked-connection lines logged.",
            get(&self.blocked_lines),
        );
        counter(
            "trafficjam_docker_api_calls_total",
            "Requests to the Docker API (the event stream counts once).",
            get(&self.docker_calls) + trafficjam_docker::api_calls(),
        );
        counter(
            "trafficjam_docker_events_total",
            "Events received from Docker.",
            get(&self.docker_events),
        );
        counter(
            "trafficjam_full_syncs_total",
            "Networks listed whole from Docker, with their bridges read (start, polls, network changes).",
            get(&self.full_syncs),
        );
        counter(
            "trafficjam_kernel_reads_total",
            "Ruleset reads to plan a change (the others are planned against the last transaction).",
            get(&self.kernel_reads),
        );
        counter(
            "trafficjam_port_updates_total",
            "Transactions that were only the set elements of ports that changed (the others: the ruleset compiled whole and compared).",
            get(&self.port_updates),
        );
        counter(
            "trafficjam_interface_reads_total",
            "Requests to rtnetlink for interfaces and addresses: bridges' ports and what is plugged into them (the others come from link notifications).",
            get(&self.interface_reads),
        );
        counter(
            "trafficjam_conntrack_walks_total",
            "Walks of the conntrack table to cut the connections of whitelisted addresses that left (put off while nobody holds them, so proxies leaving together share one).",
            get(&self.conntrack_walks),
        );
        let _ = writeln!(
            out,
            "# HELP trafficjam_apply_seconds Time to read, plan and send a transaction.\n\
             # TYPE trafficjam_apply_seconds summary\n\
             trafficjam_apply_seconds_sum {}\ntrafficjam_apply_seconds_count {}",
            get(&self.apply_micros) as f64 / 1e6,
            ok + failed
        );
        let _ = writeln!(
            out,
            "# HELP trafficjam_heap_bytes Memory the daemon has allocated and not freed (its RSS also holds pages the allocator keeps for reuse).\n\
             # TYPE trafficjam_heap_bytes gauge\n\
             trafficjam_heap_bytes {}",
            crate::heap::live_bytes()
        );
        let _ = writeln!(
            out,
            "# HELP trafficjam_dropped_packets_total Packets dropped by trafficjam's rules, per instance and chain.\n\
             # TYPE trafficjam_dropped_packets_total counter"
        );
        match kernel {
            Ok(instances) => {
                for e in instances {
                    for d in &e.drops {
                        let _ = writeln!(
                            out,
                            "trafficjam_dropped_packets_total{{instance=\"{}\",chain=\"{}\"}} {}",
                            e.instance, d.chain, d.packets
                        );
                    }
                }
                let _ = writeln!(
                    out,
                    "# TYPE trafficjam_kernel_read_ok gauge\ntrafficjam_kernel_read_ok 1"
                );
            }
            Err(_) => {
                let _ = writeln!(
                    out,
                    "# TYPE trafficjam_kernel_read_ok gauge\ntrafficjam_kernel_read_ok 0"
                );
            }
        }
        out
    }
}

/// Read what the kernel enforces (every trafficjam instance).
fn read_kernel(netns: Option<PathBuf>) -> Result<Vec<Enforced>, String> {
    let tables = Firewall::open(netns.as_deref())
        .and_then(|mut fw| fw.read_own_tables())
        .map_err(|e| e.to_string())?;
    Ok(Enforced::from_tables(&tables))
}

/// The request line (`GET /metrics HTTP/1.1`), read until its end even
/// when it arrives in pieces; `None` on timeout, EOF or an oversized line.
async fn request_line(conn: &mut tokio::net::TcpStream) -> Option<String> {
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 512];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !buf.contains(&b'\n') {
        let n = tokio::time::timeout_at(deadline, conn.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 || buf.len() > 4096 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = buf.split(|b| *b == b'\n').next()?;
    Some(String::from_utf8_lossy(line).into_owned())
}

/// Listen on `addr` (fails at once if it cannot) and answer scrapes of
/// `/metrics` until the daemon ends.
pub async fn serve(addr: SocketAddr, netns: Option<PathBuf>) -> Result<(), CliError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| CliError::Metrics(addr, e))?;
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                continue;
            };
            let netns = netns.clone();
            tokio::spawn(async move {
                let Some(request) = request_line(&mut conn).await else {
                    return;
                };
                let response = if request.starts_with("GET /metrics ") {
                    let kernel = tokio::task::spawn_blocking(move || read_kernel(netns))
                        .await
                        .unwrap_or_else(|e| Err(e.to_string()));
                    let body = METRICS.render(&kernel);
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                } else {
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 23\r\nConnection: close\r\n\r\nonly /metrics is here.\n".to_string()
                };
                let _ = conn.write_all(response.as_bytes()).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_every_family_and_the_kernel_drops() {
        let m = Metrics::new();
        m.applied(Duration::from_millis(2), true);
        m.applied(Duration::from_millis(1), false);
        m.restored();
        let e = Enforced::from_tables(
            &trafficjam_core::Policy::new(
                trafficjam_core::InstanceId::new("web").unwrap(),
                ["10.1.0.0/24".parse().unwrap()],
                [],
                false,
            )
            .unwrap()
            .ruleset()
            .tables,
        );
        let text = m.render(&Ok(e));
        for line in [
            "trafficjam_applies_total 1",
            "trafficjam_apply_errors_total 1",
            "trafficjam_restores_total 1",
            "trafficjam_apply_seconds_count 2",
            "trafficjam_apply_seconds_sum 0.003",
            "trafficjam_dropped_packets_total{instance=\"web\",chain=\"inet forward\"} 0",
            "trafficjam_kernel_read_ok 1",
            "trafficjam_conntrack_walks_total 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line:?} missing in:\n{text}"
            );
        }
        // This process's own live bytes: the test harness has allocated.
        let heap = text
            .lines()
            .find_map(|l| l.strip_prefix("trafficjam_heap_bytes "))
            .and_then(|v| v.parse::<usize>().ok());
        assert!(heap.is_some_and(|b| b > 0), "heap gauge in:\n{text}");
        assert!(m
            .render(&Err("x".into()))
            .contains("trafficjam_kernel_read_ok 0"));
    }
}
