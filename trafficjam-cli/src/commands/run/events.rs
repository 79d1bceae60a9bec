//! One Docker event, or one batch of link notifications, applied to what
//! the daemon knows of its networks, without listing any of them again:
//!
//! - a container connected: it is inspected (one API call; the whitelist
//!   filters are matched here when they can be), and its port found among
//!   the bridge's (the new veth is the only one read);
//! - a container stopping, dying or disconnected: it is dropped at once,
//!   whitelisted or not (no API call);
//! - a container renamed: its allow labels and log lines follow;
//! - the network itself created, removed or changed: a whole discovery.

use std::time::Duration;

use bollard::models::{EventMessage, EventMessageTypeEnum};
use tokio::time::Instant;
use trafficjam_core::model::Value;
use trafficjam_netlink::RouteSocket;

use super::docker::{
    Ctx, State, Unbound, TIDY_WITHIN, UNBOUND_PATIENCE, UNBOUND_RETRY, UNBOUND_WAIT,
};
use crate::docker::discover::{parse_filters, PortsChanged};
use crate::docker::ports::PortCache;
use crate::docker::{Discovery, DockerError};
use crate::watch::LinkNews;

/// What an event asks of the daemon.
pub(super) enum Step {
    /// Nothing that changes a policy.
    Nothing,
    /// Enforce these networks again.
    Enforce(Vec<String>),
    /// Discover every network whole (soon: several such events come
    /// together).
    Full,
}

/// Apply one event.
pub(super) async fn follow(
    ctx: &mut Ctx<'_>,
    state: &mut State,
    ev: &EventMessage,
) -> Result<Step, DockerError> {
    let Some(actor) = &ev.actor else {
        return Ok(Step::Nothing);
    };
    let attrs = actor.attributes.clone().unwrap_or_default();
    let action = ev.action.as_deref().unwrap_or_default();
    // `exec_start: sh`, `health_status: healthy`: the action is the head.
    let action = action.split(':').next().unwrap_or(action);
    match ev.typ {
        Some(EventMessageTypeEnum::NETWORK) => {
            let id = actor.id.as_deref().unwrap_or_default();
            let name = attrs.get("name").map(String::as_str).unwrap_or_default();
            let ours: Vec<String> = ctx
                .args
                .policy
                .networks
                .iter()
                .filter(|n| {
                    state.applied.get(*n).is_some_and(|d| d.is(id)) || *n == name || *n == id
                })
                // Overlays are discovered again on each of their events.
                .filter(|n| !state.swarm.overlays.contains_key(*n))
                .cloned()
                .collect();
            if ours.is_empty() {
                return Ok(Step::Nothing);
            }
            match (action, attrs.get("container")) {
                ("connect", Some(container)) => {
                    // Connected: its process is about to run, and if it is
                    // a proxy its first packet must find it whitelisted.
                    state.revoked.remove(container);
                    let mut out = Vec::new();
                    for network in ours {
                        if !state.applied.contains_key(&network) {
                            return Ok(Step::Full);
                        }
                        out.extend(join(ctx, state, &network, container).await?);
                    }
                    Ok(Step::Enforce(out))
                }
                ("disconnect", Some(container)) => Ok(Step::Enforce(leave(state, container))),
                _ => Ok(Step::Full),
            }
        }
        Some(EventMessageTypeEnum::CONTAINER) => {
            let Some(id) = actor.id.clone() else {
                return Ok(Step::Nothing);
            };
            match action {
                // Not `kill`: a signal (SIGHUP to reload nginx) does not
                // stop the container; `die` follows when it really exits.
                // At once: its address may be handed to another container
                // as soon as Docker releases it.
                "die" | "stop" => Ok(Step::Enforce(leave(state, &id))),
                "start" => {
                    state.revoked.remove(&id);
                    Ok(Step::Nothing)
                }
                "destroy" => {
                    // Gone for good: nothing left to remember.
                    state.revoked.remove(&id);
                    state.unbound.remove(&id);
                    Ok(Step::Nothing)
                }
                "rename" => {
                    let Some(name) = attrs.get("name") else {
                        return Ok(Step::Nothing);
                    };
                    let mut out = Vec::new();
                    for (network, d) in state.applied.iter_mut() {
                        if d.rename(&id, name) {
                            out.push(network.clone());
                        }
                    }
                    Ok(Step::Enforce(out))
                }
                _ => Ok(Step::Nothing),
            }
        }
        _ => Ok(Step::Nothing),
    }
}

/// Container `id` connected to `network`: inspect it, find its port.
/// `None` when Docker has not given it an address there yet (it is looked
/// for again).
async fn join(
    ctx: &mut Ctx<'_>,
    state: &mut State,
    network: &str,
    id: &str,
) -> Result<Option<String>, DockerError> {
    let Some(d) = state.applied.get(network) else {
        return Ok(None);
    };
    let known = state.containers.get(id);
    let Some(joining) = ctx.client.joining(id, d, known).await? else {
        state.unbound.insert(
            id.to_string(),
            Unbound {
                network: network.to_string(),
                inspect: true,
                since: Instant::now(),
            },
        );
        return Ok(None);
    };
    let filters = parse_filters(&ctx.args.policy.whitelist_filters)?;
    let whitelisted = ctx
        .client
        .whitelists(&joining.container, &d.id, &filters)
        .await?;
    let (Some(d), Some(cache)) = (state.applied.get_mut(network), state.ports.get_mut(network))
    else {
        return Ok(None);
    };
    d.connect(joining, whitelisted);
    let moved = bind(ctx.route, d, cache) != PortsChanged::Nothing;
    let bound = !d.endpoints.iter().any(|e| e.id == id && e.port.is_none());
    if bound {
        state.unbound.remove(id);
    } else {
        state.unbound.insert(
            id.to_string(),
            Unbound {
                network: network.to_string(),
                inspect: false,
                since: Instant::now(),
            },
        );
    }
    // A backend without a port yet changes no rule (its addresses are in
    // the policy only with its port): compiled again once it is found.
    // A proxy's addresses are whitelisted at once.
    Ok((whitelisted || bound || moved).then(|| network.to_string()))
}

/// Container `id` stopped, died or was disconnected: dropped from every
/// network at once, and not whitelisted again until Docker connects it.
fn leave(state: &mut State, id: &str) -> Vec<String> {
    state.revoked.insert(id.to_string());
    state.unbound.remove(id);
    let mut out = Vec::new();
    for (network, d) in state.applied.iter_mut() {
        if d.disconnect(id) {
            if let Some(cache) = state.ports.get(network) {
                // Its port, while it still exists, is nobody's: quarantined.
                d.find_ports(cache.ports());
            }
            out.push(network.clone());
        }
    }
    out
}

/// Find the ports of the containers of `d`; read again the peers of the
/// ports nobody is bound to when someone is still unbound (the runtime
/// was moving or setting up the veth). Returns what changed.
fn bind(route: &mut RouteSocket, d: &mut Discovery, cache: &mut PortCache) -> PortsChanged {
    let mut changed = if d.bridge_index != cache.index {
        PortsChanged::Bindings
    } else {
        PortsChanged::Nothing
    };
    d.bridge_index = cache.index;
    changed = changed.max(d.find_ports_telling(cache.ports()));
    if !d.unbound().is_empty() && cache.refresh(route, &d.unidentified) {
        changed = changed.max(d.find_ports_telling(cache.ports()));
    }
    changed
}

/// Link notifications: ports plugged into or out of managed bridges.
/// Returns the networks whose ports changed.
pub(super) fn links_changed(
    ctx: &mut Ctx<'_>,
    state: &mut State,
    news: &[LinkNews],
) -> Vec<String> {
    let lost = news.iter().any(|n| n.lost);
    let mut out = Vec::new();
    for (network, cache) in state.ports.iter_mut() {
        let mut changed = false;
        let mut reread = lost;
        let applied = state.applied.get(network);
        // A port a container is bound to, with the MAC Docker gave it:
        // what is plugged in there is known, until the port itself changes.
        let settled = |name: &str| {
            applied.is_some_and(|d| {
                d.endpoints
                    .iter()
                    .any(|e| e.port.as_deref() == Some(name) && e.mac.is_some())
            })
        };
        for change in news.iter().flat_map(|n| n.changes.iter()) {
            match cache.link_changed(ctx.route, change, settled) {
                Some(c) => changed |= c,
                None => reread = true,
            }
        }
        if reread {
            match PortCache::read(ctx.route, &cache.bridge) {
                Ok(c) => {
                    *cache = c;
                    changed = true;
                }
                Err(e) => ctx.log.warn(&format!(
                    "network {network}: reading the ports of {} failed: {e}",
                    cache.bridge
                )),
            }
        }
        if !changed {
            continue;
        }
        if let Some(d) = state.applied.get_mut(network) {
            // A veth being set up changes several times; the rules only
            // when who is on which port does. A quarantined port gone
            // (a container's veth after it died) is taken out of the rules
            // by the network's next transaction, or within a second: not
            // a transaction of its own for every container that leaves.
            match bind(ctx.route, d, cache) {
                PortsChanged::Nothing => continue,
                PortsChanged::QuarantinedLeft => {
                    state
                        .tidy
                        .entry(network.clone())
                        .or_insert_with(|| Instant::now() + TIDY_WITHIN);
                    continue;
                }
                PortsChanged::Bindings => {}
            }
            for e in &d.endpoints {
                if e.port.is_some() {
                    state.unbound.remove(&e.id);
                }
            }
            out.push(network.clone());
        }
    }
    out
}

/// How soon to look again for the containers not bound yet; `None` when
/// there are none.
pub(super) fn retry_interval(state: &State) -> Option<Duration> {
    let moved = |u: &Unbound| {
        // Docker had no address for it yet (asked again), or its veth's
        // peer is in a container already: its MAC comes any moment.
        u.inspect
            || match (state.applied.get(&u.network), state.ports.get(&u.network)) {
                (Some(d), Some(cache)) => cache.any_peer_moved(&d.unidentified),
                _ => true,
            }
    };
    if !state.swarm.unbound().is_empty() || state.unbound.values().any(moved) {
        Some(UNBOUND_RETRY)
    } else if !state.unbound.is_empty() {
        Some(UNBOUND_WAIT)
    } else {
        None
    }
}

/// Look again for every container still unbound; returns the networks
/// where one was found.
pub(super) async fn look_for_unbound(
    ctx: &mut Ctx<'_>,
    state: &mut State,
) -> Result<Vec<String>, DockerError> {
    let looked_for: Vec<(String, Unbound)> = state
        .unbound
        .iter()
        .map(|(id, u)| (id.clone(), u.clone()))
        .collect();
    let mut out = Vec::new();
    for (id, u) in looked_for {
        let last = u.since.elapsed() >= UNBOUND_PATIENCE;
        if u.inspect {
            state.unbound.remove(&id);
            out.extend(join(ctx, state, &u.network, &id).await?);
        } else if let (Some(d), Some(cache)) = (
            state.applied.get_mut(&u.network),
            state.ports.get_mut(&u.network),
        ) {
            let Some(mac) = d.endpoints.iter().find(|e| e.id == id).map(|e| e.mac) else {
                state.unbound.remove(&id);
                continue;
            };
            // The ports being set up; every interface (in case a
            // notification was lost without the kernel saying so) only
            // at the last try: such a read costs the kernel work for every
            // interface of the host, and Docker's connect event comes a few
            // hundred milliseconds before the veth exists, so a read
            // half-way would be paid by nearly every container.
            if last {
                let _ = cache.resync(ctx.route);
            } else {
                cache.refresh(ctx.route, &d.unidentified);
            }
            // Only a port with its MAC changes anything (the policy is
            // compiled again only then).
            if mac.is_some() && cache.ports().iter().any(|p| p.peer_mac == mac) {
                bind(ctx.route, d, cache);
                if d.endpoints.iter().any(|e| e.id == id && e.port.is_some()) {
                    state.unbound.remove(&id);
                    out.push(u.network.clone());
                    continue;
                }
            }
        }
        if last && state.unbound.contains_key(&id) {
            let u = state.unbound.remove(&id).unwrap_or(u);
            warn_unbound(ctx, state, &u.network, &id);
        }
    }
    Ok(out)
}

fn warn_unbound(ctx: &Ctx<'_>, state: &State, network: &str, id: &str) {
    let Some(d) = state.applied.get(network) else {
        return;
    };
    let Some(e) = d.endpoints.iter().find(|e| e.id == id) else {
        ctx.log.warn(&format!(
            "network {network}: container {id} was connected but Docker gives it no address there; it is not bound"
        ));
        return;
    };
    ctx.log.warn(&format!(
        "network {network}: the bridge port of container {} is not found (no veth on {} with its MAC {}); it is not bound{}",
        e.name,
        d.bridge,
        e.mac.map_or("(none reported)".to_string(), |m| Value::Ether(m).to_string()),
        if d.whitelist.iter().any(|w| w.id == e.id) {
            " and cannot open connections until it is"
        } else {
            ""
        }
    ));
}
