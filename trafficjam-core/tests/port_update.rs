//! `Policy::port_update`: the elements it gives, applied to the ruleset
//! compiled from one policy, are the ruleset compiled from the other —
//! for thousands of random policies and changes — and it declines every
//! change it cannot express that way.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use trafficjam_core::model::{Family, Table};
use trafficjam_core::{
    Allowed, InstanceId, Policy, Port, Role, Ruleset, Service, Tracking, MAX_UPDATED_PORTS,
};

/// xorshift64*: reproducible without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// What a policy is made of, to change it and build it again.
#[derive(Clone)]
struct Parts {
    ports: Vec<Port>,
    unidentified: Vec<String>,
    allowed: Vec<Allowed>,
    tracking: Tracking,
    proxy_services: Vec<Service>,
    next_id: u32,
}

/// A port of its own MAC and addresses, from a number never used before.
fn port(id: u32, role: Role, v6: bool) -> Port {
    let mut addrs = vec![IpAddr::V4(Ipv4Addr::new(10, 9, (id >> 8) as u8, id as u8))];
    if v6 {
        addrs.push(IpAddr::V6(Ipv6Addr::new(
            0xfd09, 0, 0, 0, 0, 0, 0, id as u16,
        )));
    }
    Port {
        name: format!("veth{id}"),
        role,
        mac: [0x02, 0x42, 0x0a, 0x09, (id >> 8) as u8, id as u8],
        addrs,
    }
}

impl Parts {
    /// These ports and nothing else; new ones numbered after `next_id`.
    fn of(ports: Vec<Port>, next_id: u32) -> Parts {
        Parts {
            ports,
            unidentified: Vec::new(),
            allowed: Vec::new(),
            tracking: Tracking::FlowSets,
            proxy_services: Vec::new(),
            next_id,
        }
    }

    fn random(rng: &mut Rng) -> Parts {
        let mut p = Parts {
            ports: Vec::new(),
            unidentified: Vec::new(),
            allowed: Vec::new(),
            tracking: if rng.chance(50) {
                Tracking::FlowSets
            } else {
                Tracking::Conntrack
            },
            proxy_services: Vec::new(),
            next_id: 1,
        };
        for _ in 0..rng.below(40) {
            let role = if rng.chance(15) {
                Role::Proxy
            } else {
                Role::Backend
            };
            p.add(role, rng.chance(50));
        }
        for _ in 0..rng.below(4) {
            p.quarantine_new();
        }
        if p.ports.len() >= 2 && rng.chance(30) {
            p.allow(rng);
        }
        p
    }

    fn fresh(&mut self) -> u32 {
        self.next_id += 1;
        self.next_id
    }

    fn add(&mut self, role: Role, v6: bool) {
        let id = self.fresh();
        self.ports.push(port(id, role, v6));
    }

    fn new_service(&mut self) {
        let port = self.fresh() as u16;
        self.proxy_services.push(Service::tcp(port));
    }

    fn quarantine_new(&mut self) {
        let id = self.fresh();
        self.unidentified.push(format!("veth{id}"));
    }

    fn allow(&mut self, rng: &mut Rng) {
        let from = self.ports[rng.below(self.ports.len())].name.clone();
        let to = self.ports[rng.below(self.ports.len())].name.clone();
        if from != to {
            let services = if rng.chance(50) {
                vec![Service::tcp(5432)]
            } else {
                Vec::new()
            };
            self.allowed.push(Allowed { from, to, services });
        }
    }

    fn build(&self) -> Option<Policy> {
        let whitelist: Vec<IpAddr> = Vec::new();
        Policy::new(
            InstanceId::new("pu").ok()?,
            ["10.9.0.0/16".parse().ok()?, "fd09::/64".parse().ok()?],
            whitelist,
            false,
        )
        .ok()?
        .with_bridges(["br-pu".to_string()])
        .ok()?
        .with_ports(self.ports.clone())
        .ok()?
        .with_unidentified(self.unidentified.clone())
        .ok()?
        .with_allowed(self.allowed.clone())
        .ok()
        .map(|p| {
            p.with_tracking(self.tracking)
                .with_proxy_services(self.proxy_services.clone())
        })
    }

    fn is_allowed_end(&self, name: &str) -> bool {
        self.allowed.iter().any(|a| a.from == name || a.to == name)
    }

    /// Change it at random; returns whether an update should express the
    /// change (backends and quarantined ports only, no allowed flow's end).
    fn change(&mut self, rng: &mut Rng) -> bool {
        let mut expressible = true;
        let original: Vec<String> = self.ports.iter().map(|p| p.name.clone()).collect();
        let mut toggled: Vec<String> = Vec::new();
        for _ in 0..1 + rng.below(3) {
            let backends: Vec<usize> = (0..self.ports.len())
                .filter(|i| {
                    self.ports[*i].role == Role::Backend
                        && !self.is_allowed_end(&self.ports[*i].name)
                })
                .collect();
            match rng.below(10) {
                // A backend starts.
                0 | 1 => self.add(Role::Backend, rng.chance(50)),
                // A backend dies: its port quarantined, or gone.
                2 | 3 if !backends.is_empty() => {
                    let gone = self.ports.remove(backends[rng.below(backends.len())]);
                    if rng.chance(60) {
                        self.unidentified.push(gone.name);
                    }
                }
                // A quarantined port is bound, or leaves.
                4 if !self.unidentified.is_empty() => {
                    let name = self.unidentified.remove(rng.below(self.unidentified.len()));
                    if rng.chance(60) {
                        let id = self.fresh();
                        let mut p = port(id, Role::Backend, rng.chance(50));
                        p.name = name;
                        self.ports.push(p);
                    }
                }
                // A veth appears.
                5 => self.quarantine_new(),
                // A backend's addresses or MAC change.
                6 if !backends.is_empty() => {
                    let i = backends[rng.below(backends.len())];
                    let id = self.fresh();
                    let name = self.ports[i].name.clone();
                    self.ports[i] = port(id, Role::Backend, rng.chance(50));
                    self.ports[i].name = name;
                }
                // What an update must not express (each a real change): a
                // proxy comes, a port changes role, an allowed flow, a
                // service, an allowed flow's end changes.
                7 | 8 => {
                    expressible = false;
                    match rng.below(5) {
                        0 => self.add(Role::Proxy, rng.chance(50)),
                        // (Once per port of the policy changed: toggled twice,
                        // or a proxy just added made a backend, it would be
                        // an expressible change.)
                        1 if !self.ports.is_empty() => {
                            let i = rng.below(self.ports.len());
                            let name = self.ports[i].name.clone();
                            if original.contains(&name) && !toggled.contains(&name) {
                                self.ports[i].role = match self.ports[i].role {
                                    Role::Proxy => Role::Backend,
                                    Role::Backend => Role::Proxy,
                                };
                                toggled.push(name);
                            } else {
                                self.new_service();
                            }
                        }
                        2 if self.ports.len() >= 2 => {
                            let (from, to) =
                                (self.ports[0].name.clone(), self.ports[1].name.clone());
                            let a = Allowed {
                                from,
                                to,
                                services: vec![Service::udp(53)],
                            };
                            if self.allowed.contains(&a) {
                                self.new_service();
                            } else {
                                self.allowed.push(a);
                            }
                        }
                        3 if !self.allowed.is_empty() => {
                            let name = self.allowed[0].to.clone();
                            let id = self.fresh() as u16;
                            if let Some(p) = self.ports.iter_mut().find(|p| p.name == name) {
                                p.addrs
                                    .push(IpAddr::V6(Ipv6Addr::new(0xfd09, 1, 0, 0, 0, 0, 0, id)));
                            }
                        }
                        _ => self.new_service(),
                    }
                }
                _ => {}
            }
        }
        expressible
    }
}

fn bridge_table(r: &mut Ruleset) -> &mut Table {
    r.tables
        .iter_mut()
        .find(|t| t.family == Family::Bridge)
        .expect("a bridge table")
}

#[test]
fn an_update_applied_is_the_ruleset_compiled_whole() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut updates, mut declined) = (0, 0);
    for case in 0..4000 {
        let before_parts = Parts::random(&mut rng);
        let Some(before) = before_parts.build() else {
            continue;
        };
        let mut after_parts = before_parts.clone();
        let expressible = after_parts.change(&mut rng);
        let Some(after) = after_parts.build() else {
            continue;
        };
        let whole = after.ruleset();
        match before.port_update(&after) {
            Some(update) => {
                let mut patched = before.ruleset();
                assert!(
                    update.apply_to(bridge_table(&mut patched)),
                    "case {case}: the update does not fit the table it starts from: {update:?}"
                );
                assert_eq!(patched, whole, "case {case}: {update:?}");
                // Applied again, it no longer fits: nothing changes.
                if !update.is_empty() {
                    let mut again = patched.clone();
                    assert!(!update.apply_to(bridge_table(&mut again)), "case {case}");
                    assert_eq!(again, patched, "case {case}");
                }
                assert!(
                    expressible,
                    "case {case}: an update for a change it cannot express: {update:?}\n{before:?}\n{after:?}"
                );
                updates += 1;
            }
            None => {
                assert!(
                    !expressible,
                    "case {case}: no update for backends and quarantined ports alone"
                );
                declined += 1;
            }
        }
    }
    // Both ways were taken, many times.
    assert!(
        updates > 1500 && declined > 200,
        "{updates} updates, {declined} declined"
    );
}

#[test]
fn an_update_is_elements_of_the_port_sets_only() {
    let mut parts = Parts::of(
        vec![port(1, Role::Proxy, true), port(2, Role::Backend, true)],
        10,
    );
    let before = parts.build().expect("a policy");
    // Backend veth2 dies; its port stays, quarantined.
    let dead = parts.ports.remove(1);
    parts.unidentified.push(dead.name);
    let after = parts.build().expect("a policy");
    let update = before.port_update(&after).expect("an update");
    let sets: Vec<&str> = update.sets.iter().map(|s| s.set).collect();
    // `ports` keeps the name: what it sends is dropped as unknown.
    assert_eq!(
        sets,
        [
            "macs",
            "addrs4",
            "addrs6",
            "nd_targets6",
            "bound4",
            "bound6"
        ]
    );
    assert_eq!(update.counts(), (0, 1 + 1 + 2 + 2 + 1 + 2));
    assert!(update.sets.iter().all(|s| s.added.is_empty()));
}

#[test]
fn many_ports_at_once_are_compiled_whole() {
    let mut parts = Parts::of(Vec::new(), 1);
    let before = parts.build().expect("a policy");
    for _ in 0..MAX_UPDATED_PORTS {
        parts.add(Role::Backend, false);
    }
    let at_most = parts.build().expect("a policy");
    assert!(before.port_update(&at_most).is_some());
    parts.add(Role::Backend, false);
    let more = parts.build().expect("a policy");
    assert!(before.port_update(&more).is_none());
}

#[test]
fn an_update_does_not_fit_another_table() {
    let mut parts = Parts::of(vec![port(1, Role::Backend, false)], 10);
    let before = parts.build().expect("a policy");
    parts.add(Role::Backend, false);
    let after = parts.build().expect("a policy");
    let update = before.port_update(&after).expect("an update");
    // The inet table, or the bridge table without one of the sets.
    let mut rules = before.ruleset();
    let inet = rules.tables[0].clone();
    let mut t = inet.clone();
    assert!(!update.apply_to(&mut t));
    assert_eq!(t, inet);
    let bridge = bridge_table(&mut rules);
    bridge.sets.retain(|s| s.name != "bound4");
    let kept = bridge.clone();
    assert!(!update.apply_to(bridge));
    assert_eq!(*bridge, kept);
}
