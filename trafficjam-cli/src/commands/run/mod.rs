//! `trafficjam run`: the daemon.
//!
//! It applies at start, then follows Docker's event stream and re-applies
//! within milliseconds of a relevant event; `--poll-interval` is a safety
//! net, not the mechanism. Docker going away never removes rules: the last
//! ones stay (fail closed) while it reconnects with backoff. SIGTERM and
//! SIGINT stop it with the rules in place; SIGUSR1 removes them first.

mod docker;
mod events;
mod overlay;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::time::sleep;

use super::apply::{describe, summary};
use super::{instance_for, runtime, static_instance, static_policy};
use crate::blocked;
use crate::cli::RunArgs;
use crate::error::CliError;
use crate::firewall::Firewall;
use crate::log::Log;
use crate::metrics::{self, METRICS};
use crate::watch::{self, watch, Touched};
use tokio::sync::mpsc::UnboundedReceiver;
use trafficjam_core::nflog::Blocked;
use trafficjam_core::wire::Change;
use trafficjam_core::{InstanceId, Policy};
use trafficjam_netlink::Changes;

/// Run the daemon until a signal stops it.
pub fn run(args: &RunArgs) -> Result<(), CliError> {
    let log = Log::new(args.verbose);
    if args.swarm.swarm_daemon || args.swarm.swarm_image.is_some() {
        log.info(
            "SWARM_DAEMON and SWARM_IMAGE are not needed and are ignored: run trafficjam on every node \
             (a global service); each node enforces its own containers, no second service is started",
        );
    }
    runtime().block_on(async {
        let mut signals = Signals::new()?;
        let mut fw = Firewall::open(args.policy.target.netns.as_deref())?;
        if let Some(addr) = args.metrics {
            metrics::serve(addr, args.policy.target.netns.clone()).await?;
            log.info(&format!("serving metrics on http://{addr}/metrics"));
        }
        let poll = Duration::from_secs(args.poll_interval);
        let mut blocked = match args.policy.log_blocked {
            Some(_) => {
                let groups: Vec<u16> = instances(args)?.iter().map(|i| i.log_group()).collect();
                Some(blocked::listen(args.policy.target.netns.clone(), &groups)?)
            }
            None => None,
        };
        let stop = if args.policy.networks.is_empty() {
            run_static(args, &mut fw, &mut signals, &mut blocked, poll, log).await?
        } else {
            let ran =
                docker::run_docker(args, &mut fw, &mut signals, &mut blocked, poll, log).await;
            // Nobody would cut them after this process.
            if let Err(e) = fw.cut_pending() {
                log.warn(&format!(
                    "cutting the connections of proxies that left failed: {e}"
                ));
            }
            ran?
        };
        finish(stop, &mut fw, &instances(args)?, log)
    })
}

/// Why the daemon stopped.
enum Stop {
    /// SIGTERM/SIGINT: leave the rules.
    Keep,
    /// SIGUSR1: remove them.
    Clear,
}

struct Signals {
    term: Signal,
    int: Signal,
    usr1: Signal,
}

impl Signals {
    fn new() -> Result<Signals, CliError> {
        let s = |k| {
            signal(k).map_err(|e| CliError::Netlink(trafficjam_netlink::NetlinkError::Socket(e)))
        };
        Ok(Signals {
            term: s(SignalKind::terminate())?,
            int: s(SignalKind::interrupt())?,
            usr1: s(SignalKind::user_defined1())?,
        })
    }

    async fn next(&mut self) -> Stop {
        tokio::select! {
            _ = self.term.recv() => Stop::Keep,
            _ = self.int.recv() => Stop::Keep,
            _ = self.usr1.recv() => Stop::Clear,
        }
    }
}

/// The instances this daemon owns (for SIGUSR1).
fn instances(args: &RunArgs) -> Result<Vec<InstanceId>, CliError> {
    let p = &args.policy;
    if p.networks.is_empty() {
        return Ok(vec![static_instance(p)?]);
    }
    p.networks
        .iter()
        .map(|n| instance_for(p.instance.as_deref(), n, p.networks.len() > 1))
        .collect()
}

fn finish(stop: Stop, fw: &mut Firewall, owned: &[InstanceId], log: Log) -> Result<(), CliError> {
    match stop {
        Stop::Keep => {
            log.info("stopping; the rules stay in place (`trafficjam clear` removes them)");
        }
        Stop::Clear => {
            let names: Vec<String> = owned.iter().map(|i| i.table_name()).collect();
            let tables: Vec<_> = fw
                .list_own_tables()?
                .into_iter()
                .filter(|(_, n)| names.contains(n))
                .collect();
            fw.delete_tables(&tables)?;
            log.info(&format!(
                "SIGUSR1: removed {} table(s); exiting",
                tables.len()
            ));
        }
    }
    Ok(())
}

/// Apply one policy, counted and timed for the metrics.
fn apply_counted(fw: &mut Firewall, policy: Policy) -> Result<Changes, CliError> {
    let started = std::time::Instant::now();
    let applied = fw.enforce_owned(policy);
    METRICS.applied(started.elapsed(), applied.is_ok());
    applied
}

/// Apply one policy and log what changed.
fn enforce(fw: &mut Firewall, policy: Policy, context: &str, log: Log) -> Result<bool, CliError> {
    let mut changed = false;
    let what = summary(&policy);
    for (table, change) in apply_counted(fw, policy)? {
        let line = format!(
            "{context}table {} {}: {}; {what}",
            table.family,
            table.name,
            describe(&change),
        );
        if change == Change::Unchanged {
            log.debug(&line);
        } else {
            changed = true;
            log.info(&line);
        }
    }
    Ok(changed)
}

/// Static mode: the policy comes from the command line; re-assert it every
/// poll interval (someone may have removed it).
async fn run_static(
    args: &RunArgs,
    fw: &mut Firewall,
    signals: &mut Signals,
    blocked: &mut Option<UnboundedReceiver<Blocked>>,
    poll: Duration,
    log: Log,
) -> Result<Stop, CliError> {
    let names: BTreeMap<IpAddr, String> = args.names.iter().cloned().collect();
    let found = static_policy(&args.policy)?;
    for n in &found.notes {
        log.info(n);
    }
    let mut policy = found.policy;
    let bridges = Arc::new(Mutex::new(found.bridge_index.into_iter().collect()));
    let mut links = watch::links(args.policy.target.netns.clone(), bridges.clone(), log)?;
    let mut touched = watch_ours(args, fw, log)?;
    enforce(fw, policy.clone(), "", log)?;
    log.info("enforcing; restoring the rules whenever they are changed from outside, and following the bridge's ports");
    loop {
        tokio::select! {
            stop = signals.next() => return Ok(stop),
            Some(_) = links.recv() => {
                while links.try_recv().is_ok() {}
                // A port came or went: read the bridge again at once (the
                // ports of a static policy are few, or given).
                match static_policy(&args.policy) {
                    Ok(found) => {
                        if let Ok(mut b) = bridges.lock() {
                            *b = found.bridge_index.into_iter().collect();
                        }
                        policy = found.policy;
                        if let Err(e) = enforce(fw, policy.clone(), "", log) {
                            log.warn(&format!("re-applying failed: {e}"));
                        }
                    }
                    Err(e) => log.warn(&format!("reading the bridge failed: {e}; keeping the last rules")),
                }
            }
            Some(b) = next_blocked(blocked) => {
                METRICS.blocked_line();
                log.info(&blocked::line(&b, &names));
            }
            Some(seen) = touched.recv() => {
                while touched.try_recv().is_ok() {}
                reassert(fw, std::slice::from_ref(&policy), seen, log);
            }
            _ = sleep(poll) => {
                // Ports come and go with containers: read the bridge
                // again, and the kernel too (a change from outside that
                // the watcher missed).
                fw.forget();
                match static_policy(&args.policy) {
                    Ok(found) => policy = found.policy,
                    Err(e) => log.warn(&format!("reading the bridge failed: {e}; keeping the last rules")),
                }
                if let Err(e) = enforce(fw, policy.clone(), "", log) {
                    log.warn(&format!("re-applying failed: {e}"));
                }
            }
        }
    }
}

/// The next blocked connection, or never when the log is off.
async fn next_blocked(rx: &mut Option<UnboundedReceiver<Blocked>>) -> Option<Blocked> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Watch the kernel for changes to the tables this daemon owns.
fn watch_ours(
    args: &RunArgs,
    fw: &Firewall,
    log: Log,
) -> Result<UnboundedReceiver<Touched>, CliError> {
    let ours = instances(args)?.iter().map(|i| i.table_name()).collect();
    Ok(watch(
        args.policy.target.netns.clone(),
        ours,
        fw.portid(),
        log,
    )?)
}

/// Someone changed one of our tables: put back exactly what was enforced
/// (one transaction per policy), planned from a fresh read of the kernel.
fn reassert(fw: &mut Firewall, policies: &[Policy], seen: Touched, log: Log) {
    fw.forget();
    for policy in policies {
        match apply_counted(fw, policy.clone()) {
            Ok(changes) => {
                for (table, change) in changes {
                    if change != Change::Unchanged {
                        METRICS.restored();
                        log.info(&format!(
                            "table {} {} was changed from outside; restored ({}) {:.1} ms after the change was seen",
                            table.family,
                            table.name,
                            describe(&change),
                            seen.elapsed().as_secs_f64() * 1e3
                        ));
                    }
                }
            }
            Err(e) => log.warn(&format!("restoring the rules failed: {e}; will retry")),
        }
    }
}
