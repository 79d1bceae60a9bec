//! `trafficjam run`: the daemon.
//!
//! It applies at start, then follows Docker's event stream and re-applies
//! within milliseconds of a relevant event; `--poll-interval` is a safety
//! net, not the mechanism. Docker going away never removes rules: the last
//! ones stay (fail closed) while it reconnects with backoff. SIGTERM and
//! SIGINT stop it with the rules in place; SIGUSR1 removes them first.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::models::{EventMessage, EventMessageTypeEnum};
use bollard::query_parameters::EventsOptions;
use futures_util::StreamExt;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::time::{sleep, Instant};

use super::apply::{describe, summary};
use super::{docker_policy, instance_for, runtime, static_instance, static_policy};
use crate::blocked;
use crate::cli::RunArgs;
use crate::docker::containers::Containers;
use crate::docker::{discover::parse_filters, Discovery, DockerClient, DockerError};
use crate::error::CliError;
use crate::firewall::Firewall;
use crate::log::Log;
use crate::metrics::{self, METRICS};
use crate::watch::{self, watch, Touched};
use tokio::sync::mpsc::UnboundedReceiver;
use trafficjam_core::model::Table;
use trafficjam_core::nflog::Blocked;
use trafficjam_core::wire::Change;
use trafficjam_core::{InstanceId, Policy};

/// Events arriving within this window are handled by one re-apply: a
/// `docker compose up` fires dozens at once.
const DEBOUNCE: Duration = Duration::from_millis(25);
/// Longest wait between attempts to reach Docker.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Run the daemon until a signal stops it.
pub fn run(args: &RunArgs) -> Result<(), CliError> {
    let log = Log::new(args.verbose);
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
            run_docker(args, &mut fw, &mut signals, &mut blocked, poll, log).await?
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
fn apply_counted(fw: &mut Firewall, policy: &Policy) -> Result<Vec<(Table, Change)>, CliError> {
    let started = std::time::Instant::now();
    let applied = fw.enforce(policy);
    METRICS.applied(started.elapsed(), applied.is_ok());
    applied
}

/// Apply one policy and log what changed.
fn enforce(fw: &mut Firewall, policy: &Policy, context: &str, log: Log) -> Result<bool, CliError> {
    let mut changed = false;
    for (table, change) in apply_counted(fw, policy)? {
        let line = format!(
            "{context}table {} {}: {}; {}",
            table.family,
            table.name,
            describe(&change),
            summary(policy)
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
    let mut touched = watch_ours(args, log)?;
    enforce(fw, &policy, "", log)?;
    log.info("enforcing; restoring the rules whenever they are changed from outside, and following the bridge's ports");
    loop {
        tokio::select! {
            stop = signals.next() => return Ok(stop),
            Some(_) = links.recv() => {
                while links.try_recv().is_ok() {}
                // A port came or went: read the bridge again at once.
                match static_policy(&args.policy) {
                    Ok(found) => {
                        if let Ok(mut b) = bridges.lock() {
                            *b = found.bridge_index.into_iter().collect();
                        }
                        policy = found.policy;
                        if let Err(e) = enforce(fw, &policy, "", log) {
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
                // Ports come and go with containers: read the bridge again.
                match static_policy(&args.policy) {
                    Ok(found) => policy = found.policy,
                    Err(e) => log.warn(&format!("reading the bridge failed: {e}; keeping the last rules")),
                }
                if let Err(e) = enforce(fw, &policy, "", log) {
                    log.warn(&format!("re-applying failed: {e}"));
                }
            }
        }
    }
}

/// What the daemon last enforced for each network.
#[derive(Default)]
struct State {
    applied: HashMap<String, Discovery>,
    waiting: HashMap<String, String>,
    /// Containers that died or left a network: never whitelisted again
    /// until Docker says they started, whatever a racing listing says.
    revoked: HashSet<String>,
    /// What is known of every container (names, images, labels), from
    /// Docker's list at connection and its events since.
    containers: Containers,
    /// Containers Docker reports on a network whose bridge port is not
    /// found yet (or that a `connect` event announced and Docker does not
    /// list yet), and how many times they were looked for.
    unbound: HashMap<String, u32>,
}

/// How soon, and how many times, a container whose bridge port is not
/// found yet is looked for again: Docker reports a container connected a
/// few milliseconds before its veth is complete, and its process starts
/// right after — a proxy must be bound before its first packet.
const UNBOUND_RETRY: Duration = Duration::from_millis(2);
const UNBOUND_TRIES: u32 = 250;

/// Docker mode.
async fn run_docker(
    args: &RunArgs,
    fw: &mut Firewall,
    signals: &mut Signals,
    blocked: &mut Option<UnboundedReceiver<Blocked>>,
    poll: Duration,
    log: Log,
) -> Result<Stop, CliError> {
    // Bad filters are the user's mistake, not Docker's: refuse at once.
    parse_filters(&args.policy.whitelist_filters)?;
    instances(args)?;
    let mut touched = watch_ours(args, log)?;
    let bridges: Arc<Mutex<HashSet<u32>>> = Arc::default();
    let mut links = watch::links(args.policy.target.netns.clone(), bridges.clone(), log)?;
    let mut state = State::default();
    let mut backoff = Duration::from_secs(1);
    loop {
        let client = match DockerClient::connect().await {
            Ok(c) => c,
            Err(e) => {
                log.warn(&format!(
                    "{e}; keeping the current rules, retrying in {}s",
                    backoff.as_secs()
                ));
                tokio::select! {
                    stop = signals.next() => return Ok(stop),
                    _ = sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        METRICS.docker_connected();
        log.info(&format!("connected to Docker at {}", client.host()));
        // Subscribe before the first reconcile so no change in between is
        // missed.
        let mut filters = HashMap::new();
        filters.insert(
            "type".to_string(),
            vec!["container".into(), "network".into()],
        );
        let mut events = client.api().events(Some(EventsOptions {
            filters: Some(filters),
            ..Default::default()
        }));
        match Containers::load(&client).await {
            Ok(c) => state.containers = c,
            Err(e) => {
                log.warn(&format!("{e}; keeping the current rules, reconnecting"));
                continue;
            }
        }
        if let Err(e) = reconcile(&client, args, fw, &mut state, log).await {
            if e.is_unreachable() {
                log.warn(&format!("{e}; keeping the current rules, reconnecting"));
                continue;
            }
        }
        backoff = Duration::from_secs(1);
        let mut pending: Option<Instant> = None;
        let mut next_poll = Instant::now() + poll;
        loop {
            let deadline = pending.unwrap_or(next_poll).min(next_poll);
            tokio::select! {
                stop = signals.next() => return Ok(stop),
                Some(b) = next_blocked(blocked) => {
                    let mut names: BTreeMap<IpAddr, String> = args.names.iter().cloned().collect();
                    for d in state.applied.values() {
                        names.extend(d.names.iter().map(|(ip, n)| (*ip, n.clone())));
                    }
                    METRICS.blocked_line();
                    log.info(&blocked::line(&b, &names));
                }
                Some(seen) = touched.recv() => {
                    while touched.try_recv().is_ok() {}
                    let policies = applied_policies(args, &state);
                    reassert(fw, &policies, seen, log);
                }
                Some(_) = links.recv() => {
                    // A port plugged into (or out of) a managed bridge:
                    // enrol it at once, quarantined until Docker says whose.
                    while links.try_recv().is_ok() {}
                    pending = Some(Instant::now());
                }
                event = events.next() => match event {
                    Some(Ok(ev)) => {
                        state.containers.learn(&ev);
                        let action = ev.action.clone().unwrap_or_default();
                        log.debug(&format!("event {:?} {action}", ev.typ));
                        if let Some(id) = leaving_container(&ev) {
                            // Revoke at once, without waiting for the
                            // debounce: its address may be handed to another
                            // container as soon as Docker releases it.
                            state.revoked.insert(id);
                            revoke(args, fw, &mut state, log);
                        } else if let Some(id) = starting_container(&ev) {
                            state.revoked.remove(&id);
                        } else if let Some(id) = destroyed_container(&ev) {
                            // Gone for good: it can never start again, so
                            // there is nothing left to remember.
                            state.revoked.remove(&id);
                        }
                        if is_connect(&ev) {
                            // A container plugged into a network: its process
                            // is about to run, and if it is a proxy its first
                            // packet must find it whitelisted. No debounce,
                            // and it is looked for until it is bound.
                            if let Some(id) = starting_container(&ev) {
                                state.unbound.entry(id).or_insert(0);
                            }
                            pending = Some(Instant::now());
                        } else if relevant(&action) && pending.is_none() {
                            pending = Some(Instant::now() + DEBOUNCE);
                        }
                    }
                    Some(Err(e)) => {
                        log.warn(&format!("lost the Docker event stream ({e}); keeping the current rules, reconnecting"));
                        break;
                    }
                    None => {
                        log.warn("the Docker event stream ended; keeping the current rules, reconnecting");
                        break;
                    }
                },
                _ = tokio::time::sleep_until(deadline) => {
                    let polled = Instant::now() >= next_poll;
                    if polled {
                        next_poll = Instant::now() + poll;
                        log.debug("poll interval: re-checking");
                    }
                    pending = None;
                    if let Err(e) = reconcile(&client, args, fw, &mut state, log).await {
                        if e.is_unreachable() {
                            log.warn(&format!("{e}; keeping the current rules, reconnecting"));
                            break;
                        }
                    }
                    if state.unbound.values().any(|tries| *tries < UNBOUND_TRIES) {
                        pending = Some(Instant::now() + UNBOUND_RETRY);
                    }
                    if let Ok(mut b) = bridges.lock() {
                        *b = state.applied.values().filter_map(|d| d.bridge_index).collect();
                    }
                }
            }
        }
        sleep(backoff).await;
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
fn watch_ours(args: &RunArgs, log: Log) -> Result<UnboundedReceiver<Touched>, CliError> {
    let ours = instances(args)?.iter().map(|i| i.table_name()).collect();
    Ok(watch(args.policy.target.netns.clone(), ours, log)?)
}

/// The policies last enforced for every network.
fn applied_policies(args: &RunArgs, state: &State) -> Vec<Policy> {
    state
        .applied
        .iter()
        .filter_map(|(network, d)| docker_policy(&args.policy, d, network).ok())
        .collect()
}

/// Someone changed one of our tables: put back exactly what was enforced
/// (one transaction per policy; nothing is sent if the change was ours).
fn reassert(fw: &mut Firewall, policies: &[Policy], seen: Touched, log: Log) {
    for policy in policies {
        match apply_counted(fw, policy) {
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

/// The container an event says is stopping or leaving a network.
fn leaving_container(ev: &EventMessage) -> Option<String> {
    let action = ev.action.as_deref()?;
    let actor = ev.actor.as_ref()?;
    match (ev.typ?, action.split(':').next()?) {
        // Not `kill`: a signal (e.g. SIGHUP to reload nginx) does not stop
        // the container; `die` follows when it really exits.
        (EventMessageTypeEnum::CONTAINER, "die" | "stop") => actor.id.clone(),
        (EventMessageTypeEnum::NETWORK, "disconnect") => {
            actor.attributes.as_ref()?.get("container").cloned()
        }
        _ => None,
    }
}

/// Whether an event is a container being connected to a network.
fn is_connect(ev: &EventMessage) -> bool {
    ev.typ == Some(EventMessageTypeEnum::NETWORK) && ev.action.as_deref() == Some("connect")
}

/// The container an event says was removed.
fn destroyed_container(ev: &EventMessage) -> Option<String> {
    match (ev.typ?, ev.action.as_deref()?) {
        (EventMessageTypeEnum::CONTAINER, "destroy") => ev.actor.as_ref()?.id.clone(),
        _ => None,
    }
}

/// The container an event says started (or joined a network).
fn starting_container(ev: &EventMessage) -> Option<String> {
    let actor = ev.actor.as_ref()?;
    match (ev.typ?, ev.action.as_deref()?) {
        (EventMessageTypeEnum::CONTAINER, "start") => actor.id.clone(),
        (EventMessageTypeEnum::NETWORK, "connect") => {
            actor.attributes.as_ref()?.get("container").cloned()
        }
        _ => None,
    }
}

/// Re-enforce every network without the revoked containers, from what was
/// last discovered: no Docker round trip, one small transaction.
fn revoke(args: &RunArgs, fw: &mut Firewall, state: &mut State, log: Log) {
    for (network, applied) in state.applied.clone() {
        let kept = applied.without(&state.revoked);
        if kept.whitelist == applied.whitelist {
            continue;
        }
        let Ok(policy) = docker_policy(&args.policy, &kept, &network) else {
            continue;
        };
        let context = format!("network {}: ", applied.network);
        match enforce(fw, &policy, &context, log) {
            Ok(_) => {
                for c in kept.changes_since(Some(&applied)) {
                    log.info(&format!("network {}: {c}", applied.network));
                }
                state.applied.insert(network, kept);
            }
            Err(e) => log.warn(&format!("network {network}: revoking failed: {e}")),
        }
    }
}

/// Events that can change a network's members or subnets.
fn relevant(action: &str) -> bool {
    let action = action.split(':').next().unwrap_or(action);
    matches!(
        action,
        "start"
            | "die"
            | "stop"
            | "kill"
            | "restart"
            | "connect"
            | "disconnect"
            | "create"
            | "destroy"
            | "rename"
            | "update"
    )
}

/// Discover every network and enforce its policy. Returns the Docker error
/// that stopped it, if Docker became unreachable; other errors are logged
/// and the network keeps its last rules.
async fn reconcile(
    client: &DockerClient,
    args: &RunArgs,
    fw: &mut Firewall,
    state: &mut State,
    log: Log,
) -> Result<(), DockerError> {
    let filters = parse_filters(&args.policy.whitelist_filters)?;
    // Who is still looked for is worked out again below, network by network.
    let looked_for = std::mem::take(&mut state.unbound);
    for network in &args.policy.networks {
        let discovery = match client
            .discover(network, &filters, Some(&state.containers))
            .await
        {
            Ok(d) => d,
            Err(e) if e.is_unreachable() => return Err(e),
            Err(e) => {
                let msg = e.to_string();
                if state.waiting.get(network) != Some(&msg) {
                    let what = match e {
                        DockerError::NetworkNotFound(_) => {
                            "waiting for it to be created".to_string()
                        }
                        _ => "keeping its last rules".to_string(),
                    };
                    log.warn(&format!("network {network}: {msg}; {what}"));
                    state.waiting.insert(network.clone(), msg);
                }
                continue;
            }
        };
        state.waiting.remove(network);
        let mut discovery = discovery.without(&state.revoked);
        if let Err(e) = super::bind_ports(&mut discovery, args.policy.target.netns.as_deref()) {
            log.warn(&format!(
                "network {network}: reading the ports of {} failed: {e}; keeping its last rules",
                discovery.bridge
            ));
            state.unbound.insert(String::new(), 0);
            continue;
        }
        // Announced by an event, not listed by Docker yet.
        for (id, tries) in &looked_for {
            if !discovery.endpoints.iter().any(|e| e.id == *id) && *tries < UNBOUND_TRIES {
                state.unbound.insert(id.clone(), tries + 1);
            }
        }
        for e in discovery.unbound() {
            let tries = looked_for.get(&e.id).map_or(1, |t| t + 1);
            if tries == UNBOUND_TRIES {
                log.warn(&format!(
                    "network {network}: the bridge port of container {} is not found (no veth on {} with its MAC {}); it is not bound{}",
                    e.name,
                    discovery.bridge,
                    e.mac.map_or("(none reported)".to_string(), |m| trafficjam_core::model::Value::Ether(m).to_string()),
                    if discovery.whitelist.iter().any(|w| w.id == e.id) { " and cannot open connections until it is" } else { "" }
                ));
            }
            state.unbound.insert(e.id.clone(), tries);
        }
        let policy = match docker_policy(&args.policy, &discovery, network) {
            Ok(p) => p,
            Err(e) => {
                log.warn(&format!("network {network}: {e}; keeping its last rules"));
                continue;
            }
        };
        let changes = discovery.changes_since(state.applied.get(network));
        let context = format!("network {}: ", discovery.network);
        match enforce(fw, &policy, &context, log) {
            Ok(_) => {
                for c in changes {
                    log.info(&format!("network {}: {c}", discovery.network));
                }
                state.applied.insert(network.clone(), discovery);
            }
            Err(e) => log.warn(&format!(
                "network {network}: applying failed: {e}; will retry"
            )),
        }
    }
    Ok(())
}
