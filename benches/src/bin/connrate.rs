//! New-connection rate: full TCP handshakes per second between two
//! network namespaces, for `scripts/bench_datapath.sh`.
//!
//! ```text
//! connrate server ADDR:PORT [--threads T]
//! connrate client ADDR:PORT [--seconds S] [--threads T] [--warmup-ms W]
//! ```
//!
//! The server is a plain accept-and-close listener with a large backlog
//! (`listen(4096)`): no fork, no per-connection work, so a connect storm
//! measures the datapath and not the server. It prints `listening` once the
//! socket listens, then runs until killed.
//!
//! The client keeps T connections in flight (one blocking thread each).
//! Every connection is opened (`connect` returns after the handshake), then
//! waits for the server's FIN and closes: the server is the active closer,
//! so TIME_WAIT sits on the server and the client's ports are free at once.
//! Only handshakes that complete inside the S-second window after the
//! warm-up count. It prints one line:
//! `rate=R connections=N errors=E seconds=S p50_us=… p99_us=… max_us=…
//! error_kinds=TimedOut:1,…` (handshake times in µs; `-` when no error).

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::socket::{
    bind, listen, setsockopt, socket, sockopt, AddressFamily, Backlog, SockFlag, SockType,
    SockaddrStorage,
};

const USAGE: &str = "usage: connrate server ADDR:PORT [--threads T]\n       \
                     connrate client ADDR:PORT [--seconds S] [--threads T] [--warmup-ms W]";

struct Options {
    addr: SocketAddr,
    seconds: f64,
    threads: usize,
    warmup: Duration,
}

fn parse(args: &[String], default_threads: usize) -> Result<Options, String> {
    let addr = args
        .first()
        .ok_or("missing ADDR:PORT")?
        .parse()
        .map_err(|e| format!("ADDR:PORT: {e}"))?;
    let mut options = Options {
        addr,
        seconds: 5.0,
        threads: default_threads,
        warmup: Duration::from_millis(500),
    };
    let mut rest = args[1..].iter();
    while let Some(flag) = rest.next() {
        let value = rest.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--seconds" => options.seconds = value.parse().map_err(|e| bad(&e))?,
            "--threads" => options.threads = value.parse().map_err(|e| bad(&e))?,
            "--warmup-ms" => {
                options.warmup = Duration::from_millis(value.parse().map_err(|e| bad(&e))?)
            }
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if options.threads == 0 || options.seconds <= 0.0 {
        return Err("--threads and --seconds must be positive".into());
    }
    Ok(options)
}

/// A listening socket with an explicit backlog (std's `bind` picks its own).
fn listener(addr: SocketAddr) -> nix::Result<TcpListener> {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd: OwnedFd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrStorage::from(addr),
    )?;
    listen(&fd, Backlog::new(4096)?)?;
    Ok(TcpListener::from(fd))
}

fn server(options: &Options) -> Result<(), String> {
    let listener =
        listener(options.addr).map_err(|e| format!("listen on {}: {e}", options.addr))?;
    println!("listening");
    let workers: Vec<_> = (0..options.threads)
        .map(|_| {
            let listener = listener.try_clone().expect("dup the listening socket");
            thread::spawn(move || loop {
                // Accept and close: the drop sends the FIN.
                match listener.accept() {
                    Ok((stream, _)) => drop(stream),
                    // Out of descriptors or a transient error: back off
                    // briefly instead of spinning.
                    Err(_) => thread::sleep(Duration::from_millis(1)),
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.join();
    }
    Ok(())
}

#[derive(Default)]
struct Tally {
    connections: u64,
    errors: u64,
    /// Failed connects by kind ("TimedOut", "ConnectionRefused", ...).
    error_kinds: BTreeMap<String, u64>,
    /// Handshake times (connect call to return) of the counted connections, µs.
    latencies: Vec<u32>,
}

fn client(options: &Options) -> Result<(), String> {
    let start = Instant::now() + Duration::from_millis(20);
    let counted_from = start + options.warmup;
    let window = Duration::from_secs_f64(options.seconds);
    let deadline = counted_from + window;
    let addr = options.addr;
    let workers: Vec<_> = (0..options.threads)
        .map(|_| {
            thread::spawn(move || {
                let mut tally = Tally::default();
                let mut sink = [0u8; 64];
                thread::sleep(start.saturating_duration_since(Instant::now()));
                loop {
                    let began = Instant::now();
                    if began >= deadline {
                        break;
                    }
                    let result = TcpStream::connect_timeout(&addr, Duration::from_secs(3));
                    let done = Instant::now();
                    let counted = began >= counted_from && done <= deadline;
                    match result {
                        Ok(mut stream) => {
                            if counted {
                                tally.connections += 1;
                                let us = (done - began).as_micros();
                                tally.latencies.push(u32::try_from(us).unwrap_or(u32::MAX));
                            }
                            // Wait for the server's FIN, then close: a whole
                            // connection lifetime per handshake.
                            while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
                            let _ = stream.shutdown(Shutdown::Both);
                        }
                        Err(e) => {
                            if counted {
                                tally.errors += 1;
                                *tally
                                    .error_kinds
                                    .entry(format!("{:?}", e.kind()))
                                    .or_default() += 1;
                            }
                            // Do not spin on an immediate refusal.
                            thread::sleep(Duration::from_millis(1));
                        }
                    }
                }
                tally
            })
        })
        .collect();
    let mut total = Tally::default();
    for worker in workers {
        let tally = worker.join().map_err(|_| "a client thread panicked")?;
        total.connections += tally.connections;
        total.errors += tally.errors;
        for (kind, n) in tally.error_kinds {
            *total.error_kinds.entry(kind).or_default() += n;
        }
        total.latencies.extend(tally.latencies);
    }
    total.latencies.sort_unstable();
    let pct = |p: f64| {
        let n = total.latencies.len();
        if n == 0 {
            0
        } else {
            total.latencies[((n as f64 * p) as usize).min(n - 1)]
        }
    };
    let kinds: Vec<String> = total
        .error_kinds
        .iter()
        .map(|(kind, n)| format!("{kind}:{n}"))
        .collect();
    println!(
        "rate={:.0} connections={} errors={} seconds={} p50_us={} p99_us={} max_us={} error_kinds={}",
        total.connections as f64 / window.as_secs_f64(),
        total.connections,
        total.errors,
        options.seconds,
        pct(0.50),
        pct(0.99),
        total.latencies.last().copied().unwrap_or(0),
        if kinds.is_empty() { "-".to_string() } else { kinds.join(",") },
    );
    if total.connections == 0 {
        return Err(format!("no connection to {addr} completed"));
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("server") => parse(&args[1..], 2).and_then(|o| server(&o)),
        Some("client") => parse(&args[1..], 32).and_then(|o| client(&o)),
        _ => Err(USAGE.into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("connrate: {e}");
            ExitCode::FAILURE
        }
    }
}
