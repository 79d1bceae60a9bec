//! Docker mode of the daemon: every managed network discovered whole at
//! start, at every poll and when the network itself changes; between
//! those, followed one event at a time (see `events.rs`): a container
//! connected is one container inspected and one port read, a container
//! leaving is neither, and either is one small transaction planned
//! against the last one.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::query_parameters::EventsOptions;
use futures_util::StreamExt;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::{sleep, Instant};
use trafficjam_core::nflog::Blocked;
use trafficjam_core::Policy;
use trafficjam_netlink::RouteSocket;

use super::events::{self, Step};
use super::overlay;
use super::{enforce, instances, next_blocked, reassert, watch_ours, Signals, Stop};
use crate::blocked;
use crate::cli::RunArgs;
use crate::commands::{docker_policy, docker_policy_allowing};
use crate::docker::containers::Containers;
use crate::docker::discover::{parse_filters, Summary};
use crate::docker::ports::PortCache;
use crate::docker::{Discovery, DockerClient, DockerError};
use crate::error::CliError;
use crate::firewall::Firewall;
use crate::log::Log;
use crate::metrics::METRICS;
use crate::watch;

/// Network-level events arriving within this window are handled by one
/// full discovery.
const DEBOUNCE: Duration = Duration::from_millis(25);
/// How often the Engine's namespaces are looked at (overlays, ingress_sbox):
/// a stat of a few files.
const NAMESPACE_CHECK: Duration = Duration::from_millis(20);
/// Longest wait between attempts to reach Docker.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How soon a container whose bridge port is not found yet is looked for
/// again, and for how long: Docker reports a container connected
/// some hundred milliseconds before its veth is complete, and its process
/// starts right after — a proxy must be bound before its first packet.
/// The last step, the runtime setting the MAC inside the container, is
/// not notified in the host's namespace: that is polled for, fast, once
/// the veth's peer has moved there. Until then the link notifications
/// say when to look, and a slower poll only guards against a lost one
/// (every wake-up costs a context switch; a container start would
/// otherwise pay some 150 of them).
pub(super) const UNBOUND_RETRY: Duration = Duration::from_millis(2);
/// The guard poll while no veth's peer has moved yet.
pub(super) const UNBOUND_WAIT: Duration = Duration::from_millis(20);
/// How many times an overlay's unbound endpoints are looked for (at
/// [`UNBOUND_RETRY`]).
pub(super) const UNBOUND_TRIES: u32 = 250;
/// How long a container connected is looked for before it is reported
/// unbound (its port is still bound whenever a notification shows it).
pub(super) const UNBOUND_PATIENCE: Duration = Duration::from_secs(1);

/// How soon the rules stop naming a quarantined port that is gone, when
/// nothing else changes the network before.
pub(super) const TIDY_WITHIN: Duration = Duration::from_secs(1);
/// How long the connections of a proxy that left may wait to be cut while
/// nobody holds its addresses (given to a container again, they are cut
/// first): every proxy leaving in that time shares one walk of the
/// conntrack table.
pub(super) const CUT_WITHIN: Duration = Duration::from_secs(10);

/// What the daemon knows, and last enforced, of every managed network.
#[derive(Default)]
pub(super) struct State {
    /// By network (as given on the command line): what Docker said, with
    /// the ports found, as last enforced (revoked containers left out).
    pub applied: HashMap<String, Discovery>,
    /// The ports of each network's bridge.
    pub ports: HashMap<String, PortCache>,
    /// Networks that could not be discovered, with the reason last logged.
    pub waiting: HashMap<String, String>,
    /// Containers that died or left a network: never whitelisted again
    /// until Docker says they started, whatever a racing listing says.
    pub revoked: HashSet<String>,
    /// Allow labels that do not parse, by network, as last reported.
    pub allow_problems: HashMap<String, Vec<String>>,
    /// What each network's log lines last said it was (whitelisted
    /// containers, allowed flows): the next line says what changed.
    pub logged: HashMap<String, Summary>,
    /// What is known of every container (names, images, labels), from
    /// Docker's list at connection and its events since.
    pub containers: Containers,
    /// Containers connected whose port is not found yet (or whom Docker
    /// has not given an address yet), by id.
    pub unbound: HashMap<String, Unbound>,
    /// Managed overlays, docker_gwbridge and ingress_sbox.
    pub swarm: overlay::Swarm,
    /// Networks whose rules still name quarantined ports that are gone,
    /// with when they are enforced at the latest.
    pub tidy: HashMap<String, Instant>,
}

/// A container being looked for.
#[derive(Debug, Clone)]
pub(super) struct Unbound {
    /// The network it was connected to.
    pub network: String,
    /// Whether Docker must be asked again (it had no address there yet).
    pub inspect: bool,
    /// Since when it is looked for.
    pub since: Instant,
}

/// The daemon's tools for one connection to Docker.
pub(super) struct Ctx<'a> {
    pub args: &'a RunArgs,
    pub client: &'a DockerClient,
    pub fw: &'a mut Firewall,
    pub route: &'a mut RouteSocket,
    pub log: Log,
}

/// Docker mode.
pub(super) async fn run_docker(
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
    let mut touched = watch_ours(args, fw, log)?;
    let bridges: Arc<Mutex<HashSet<u32>>> = Arc::default();
    let mut links = watch::links(args.policy.target.netns.clone(), bridges.clone(), log)?;
    let mut route = RouteSocket::open_in(args.policy.target.netns.as_deref())?;
    let mut state = State::default();
    let mut backoff = Duration::from_secs(1);
    fw.defer_cuts();
    let mut cut_at: Option<Instant> = None;
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
        // Subscribe before the first discovery so no change in between is
        // missed.
        let mut filters = HashMap::new();
        filters.insert(
            "type".to_string(),
            vec!["container".into(), "network".into()],
        );
        METRICS.docker_call();
        let mut stream = client.api().events(Some(EventsOptions {
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
        let mut ctx = Ctx {
            args,
            client: &client,
            fw: &mut *fw,
            route: &mut route,
            log,
        };
        if let Err(e) = full_sync(&mut ctx, &mut state).await {
            if e.is_unreachable() {
                log.warn(&format!("{e}; keeping the current rules, reconnecting"));
                continue;
            }
        }
        share_bridges(&bridges, &state);
        backoff = Duration::from_secs(1);
        let mut full: Option<Instant> = None;
        let mut retry: Option<Instant> = None;
        let mut next_poll = Instant::now() + poll;
        let mut next_ns = Instant::now() + NAMESPACE_CHECK;
        loop {
            if let Some(wait) = events::retry_interval(&state) {
                let at = Instant::now() + wait;
                retry = Some(retry.map_or(at, |r| r.min(at)));
            }
            let namespaces = state
                .swarm
                .active(&args.swarm.block_ingress)
                .then_some(next_ns);
            let tidy = state.tidy.values().min().copied();
            if ctx.fw.pending_cuts() == 0 {
                cut_at = None;
            } else if cut_at.is_none() {
                cut_at = Some(Instant::now() + CUT_WITHIN);
            }
            let deadline = [full, retry, namespaces, tidy, cut_at, Some(next_poll)]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(next_poll);
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
                    reassert(ctx.fw, &policies, seen, log);
                }
                Some(news) = links.recv() => {
                    // Ports plugged into (or out of) a managed bridge: enrol
                    // them at once, quarantined until Docker says whose.
                    let mut all = vec![news];
                    while let Ok(n) = links.try_recv() {
                        all.push(n);
                    }
                    let changed = events::links_changed(&mut ctx, &mut state, &all);
                    enforce_networks(&mut ctx, &mut state, changed);
                    share_bridges(&bridges, &state);
                }
                event = stream.next() => match event {
                    Some(Ok(ev)) => {
                        METRICS.docker_event();
                        state.containers.learn(&ev);
                        log.debug(&format!("event {:?} {}", ev.typ, ev.action.clone().unwrap_or_default()));
                        let overlays = overlay::touched(&state.swarm, &ev);
                        // A container leaving is revoked before its overlays
                        // are discovered again (Docker may still list it).
                        if !overlays.is_empty()
                            && ev.typ == Some(bollard::models::EventMessageTypeEnum::CONTAINER)
                            && matches!(ev.action.as_deref(), Some("die" | "stop"))
                        {
                            if let Some(id) = ev.actor.as_ref().and_then(|a| a.id.clone()) {
                                state.revoked.insert(id);
                            }
                        }
                        for network in overlays {
                            if let Err(e) = overlay::resync(&mut ctx, &mut state, &network).await {
                                log.debug(&format!("network {network}: {e}; discovering again"));
                                full = Some(Instant::now());
                            }
                        }
                        match events::follow(&mut ctx, &mut state, &ev).await {
                            Ok(Step::Nothing) => {}
                            Ok(Step::Enforce(networks)) => enforce_networks(&mut ctx, &mut state, networks),
                            Ok(Step::Full) => {
                                full.get_or_insert(Instant::now() + DEBOUNCE);
                            }
                            Err(e) if e.is_unreachable() => {
                                log.warn(&format!("{e}; keeping the current rules, reconnecting"));
                                break;
                            }
                            Err(e) => {
                                // Whatever went wrong, a whole discovery
                                // puts it right.
                                log.debug(&format!("following the event failed ({e}); discovering again"));
                                full = Some(Instant::now());
                            }
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
                    let now = Instant::now();
                    if now >= next_poll {
                        next_poll = now + poll;
                        log.debug("poll interval: discovering every network again");
                        // A change from outside the watcher missed is
                        // found by reading the kernel afresh.
                        ctx.fw.forget();
                        full = Some(now);
                    }
                    if full.is_some_and(|f| now >= f) {
                        full = None;
                        if let Err(e) = full_sync(&mut ctx, &mut state).await {
                            if e.is_unreachable() {
                                log.warn(&format!("{e}; keeping the current rules, reconnecting"));
                                break;
                            }
                        }
                        share_bridges(&bridges, &state);
                    }
                    if now >= next_ns {
                        next_ns = now + NAMESPACE_CHECK;
                        for network in overlay::moved_namespaces(&ctx, &state) {
                            if let Err(e) = overlay::resync(&mut ctx, &mut state, &network).await {
                                log.debug(&format!("network {network}: {e}; discovering again"));
                                full = Some(now);
                            }
                        }
                        overlay::enforce_ingress(&ctx, &mut state.swarm, false);
                    }
                    let due: Vec<String> = state
                        .tidy
                        .iter()
                        .filter(|(_, at)| now >= **at)
                        .map(|(n, _)| n.clone())
                        .collect();
                    if !due.is_empty() {
                        enforce_networks(&mut ctx, &mut state, due);
                    }
                    if cut_at.is_some_and(|c| now >= c) {
                        cut_at = None;
                        match ctx.fw.cut_pending() {
                            Ok(n) => {
                                METRICS.conntrack_walks(ctx.fw.conntrack_walks());
                                log.debug(&format!("cut {n} connection(s) of proxies that left"));
                            }
                            Err(e) => log.warn(&format!("cutting the connections of proxies that left failed: {e}; retrying")),
                        }
                    }
                    if retry.is_some_and(|r| now >= r) {
                        retry = None;
                        overlay::retry_unbound(&mut ctx, &mut state);
                        match events::look_for_unbound(&mut ctx, &mut state).await {
                            Ok(changed) => enforce_networks(&mut ctx, &mut state, changed),
                            Err(e) if e.is_unreachable() => {
                                log.warn(&format!("{e}; keeping the current rules, reconnecting"));
                                break;
                            }
                            Err(e) => log.debug(&format!("looking for a container's port: {e}")),
                        }
                    }
                }
            }
        }
        sleep(backoff).await;
    }
}

/// Tell the link watcher which bridges are managed.
fn share_bridges(bridges: &Arc<Mutex<HashSet<u32>>>, state: &State) {
    if let Ok(mut b) = bridges.lock() {
        *b = state.ports.values().filter_map(|c| c.index).collect();
    }
}

/// The policies last enforced for every network.
fn applied_policies(args: &RunArgs, state: &State) -> Vec<Policy> {
    state
        .applied
        .iter()
        .filter_map(|(network, d)| docker_policy(&args.policy, d, network).ok())
        .collect()
}

/// Enforce what is now known of `networks` (each once), and log what
/// changed since the last transaction.
pub(super) fn enforce_networks(ctx: &mut Ctx<'_>, state: &mut State, networks: Vec<String>) {
    let mut done = HashSet::new();
    for network in networks {
        if !done.insert(network.clone()) {
            continue;
        }
        // Whatever is tidied up later is part of this transaction.
        state.tidy.remove(&network);
        let Some(d) = state.applied.get(&network) else {
            continue;
        };
        // Found once: the policy and the log line both say them.
        let allowed = d.allowed();
        let policy = match docker_policy_allowing(&ctx.args.policy, d, &network, &allowed) {
            // Said at once, so the policy is not copied to say it.
            Ok(p) => p.with_tracking(ctx.fw.bridge_tracking()),
            Err(e) => {
                ctx.log
                    .warn(&format!("network {network}: {e}; keeping its last rules"));
                continue;
            }
        };
        let context = format!("network {}: ", d.network);
        match enforce(ctx.fw, policy, &context, ctx.log) {
            Ok(_) => {
                let before = state.logged.get(&network);
                if !before.is_some_and(|b| d.summary_is(b, &allowed)) {
                    let now = d.summary_allowing(&allowed);
                    for c in before.map(|b| now.changes_since(b)).unwrap_or_default() {
                        ctx.log.info(&format!("network {}: {c}", d.network));
                    }
                    state.logged.insert(network.clone(), now);
                }
            }
            Err(e) => ctx.log.warn(&format!(
                "network {network}: applying failed: {e}; will retry at the next poll"
            )),
        }
        report_allow_problems(ctx.log, state, &network);
    }
    METRICS.kernel_reads(ctx.fw.reads());
    METRICS.port_updates(ctx.fw.port_updates());
    METRICS.interface_reads(ctx.route.requests());
    METRICS.conntrack_walks(ctx.fw.conntrack_walks());
}

/// Log the allow labels that do not parse, once per change.
fn report_allow_problems(log: Log, state: &mut State, network: &str) {
    let Some(d) = state.applied.get(network) else {
        return;
    };
    let problems = d.allow_problems();
    if state.allow_problems.get(network) != Some(&problems) {
        for p in &problems {
            log.warn(&format!(
                "network {network}: ignoring the allow labels of {p}"
            ));
        }
        state.allow_problems.insert(network.to_string(), problems);
    }
}

/// Discover every network whole, read its bridge, and enforce its policy.
/// Returns the Docker error that stopped it, if Docker became
/// unreachable; other errors are logged and the network keeps its last
/// rules.
pub(super) async fn full_sync(ctx: &mut Ctx<'_>, state: &mut State) -> Result<(), DockerError> {
    let args = ctx.args;
    let log = ctx.log;
    let filters = parse_filters(&args.policy.whitelist_filters)?;
    for network in &args.policy.networks {
        METRICS.full_sync();
        let discovery = match ctx
            .client
            .discover(network, &filters, Some(&state.containers))
            .await
        {
            Ok(d) => d,
            Err(e) if e.is_unreachable() => return Err(e),
            Err(e) => {
                let msg = e.to_string();
                if state.waiting.get(network) != Some(&msg) {
                    let what = match e {
                        DockerError::NetworkNotFound(_) => "waiting for it to be created",
                        _ => "keeping its last rules",
                    };
                    log.warn(&format!("network {network}: {msg}; {what}"));
                    state.waiting.insert(network.clone(), msg);
                }
                continue;
            }
        };
        state.waiting.remove(network);
        if discovery.driver == crate::docker::Driver::Overlay {
            // A full sync also reads the kernel afresh (a poll: someone
            // may have changed the namespace's tables).
            if let Some(site) = state
                .swarm
                .overlays
                .get_mut(network)
                .and_then(|o| o.site.as_mut())
            {
                site.fw.forget();
            }
            overlay::adopt(ctx, state, network, discovery);
            continue;
        }
        let mut discovery = discovery.without(&state.revoked);
        let cache = match PortCache::read(ctx.route, &discovery.bridge) {
            Ok(c) => c,
            Err(e) => {
                log.warn(&format!(
                    "network {network}: reading the ports of {} failed: {e}; keeping its last rules",
                    discovery.bridge
                ));
                continue;
            }
        };
        discovery.bridge_index = cache.index;
        discovery.find_ports(cache.ports());
        // Announced by an event, not listed by Docker yet: still looked for.
        let listed: HashSet<&str> = discovery.endpoints.iter().map(|e| e.id.as_str()).collect();
        state
            .unbound
            .retain(|id, u| u.network != *network || (u.inspect && !listed.contains(id.as_str())));
        for e in discovery.unbound() {
            state.unbound.entry(e.id.clone()).or_insert(Unbound {
                network: network.clone(),
                inspect: false,
                since: Instant::now(),
            });
        }
        if !state.logged.contains_key(network) {
            for c in discovery.changes_since(None) {
                log.info(&format!("network {}: {c}", discovery.network));
            }
            state.logged.insert(network.clone(), discovery.summary());
        }
        state.ports.insert(network.clone(), cache);
        state.applied.insert(network.clone(), discovery);
        enforce_networks(ctx, state, vec![network.clone()]);
    }
    overlay::enforce_gwbridge(ctx, state).await;
    overlay::enforce_ingress(ctx, &mut state.swarm, true);
    Ok(())
}
