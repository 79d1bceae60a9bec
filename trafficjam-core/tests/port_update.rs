//! `Policy::port_update`: the elements it gives, applied to the ruleset
//! compiled from one policy, are the ruleset compiled from the other —
//! for thousands of random policies and changes of backends, proxies,
//! quarantined ports and whitelisted addresses — and it declines every
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
    /// Whitelisted addresses of no port (a proxy not bound yet).
    whitelist: Vec<IpAddr>,
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

/// The role a port changes to.
fn other_role(role: Role) -> Role {
    match role {
        Role::Proxy => Role::Backend,
        Role::Backend => Role::Proxy,
    }
}

impl Parts {
    /// A proxy (veth1) and a backend (veth2), both with IPv6.
    fn proxy_and_backend() -> Parts {
        Parts::of(
            vec![port(1, Role::Proxy, true), port(2, Role::Backend, true)],
            10,
        )
    }

    /// These ports and nothing else; new ones numbered after `next_id`.
    fn of(ports: Vec<Port>, next_id: u32) -> Parts {
        Parts {
            ports,
            whitelist: Vec::new(),
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
            whitelist: Vec::new(),
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
        for _ in 0..rng.below(3) {
            p.whitelist_new();
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

    fn whitelist_new(&mut self) {
        let id = self.fresh();
        self.whitelist
            .push(IpAddr::V4(Ipv4Addr::new(10, 9, 200, id as u8)));
    }

    fn random_role(rng: &mut Rng) -> Role {
        if rng.chance(20) {
            Role::Proxy
        } else {
            Role::Backend
        }
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
        Policy::new(
            InstanceId::new("pu").ok()?,
            ["10.9.0.0/16".parse().ok()?, "fd09::/64".parse().ok()?],
            self.whitelist.clone(),
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
    /// change (ports of either role, quarantined ports and whitelisted
    /// addresses, no allowed flow's end).
    fn change(&mut self, rng: &mut Rng) -> bool {
        let mut expressible = true;
        for _ in 0..1 + rng.below(3) {
            let free: Vec<usize> = (0..self.ports.len())
                .filter(|i| !self.is_allowed_end(&self.ports[*i].name))
                .collect();
            match rng.below(11) {
                // A backend or a proxy starts.
                0 | 1 => self.add(Parts::random_role(rng), rng.chance(50)),
                // One dies: its port quarantined, or gone.
                2 | 3 if !free.is_empty() => {
                    let gone = self.ports.remove(free[rng.below(free.len())]);
                    if rng.chance(60) {
                        self.unidentified.push(gone.name);
                    }
                }
                // A quarantined port is bound, or leaves.
                4 if !self.unidentified.is_empty() => {
                    let name = self.unidentified.remove(rng.below(self.unidentified.len()));
                    if rng.chance(60) {
                        let id = self.fresh();
                        let mut p = port(id, Parts::random_role(rng), rng.chance(50));
                        p.name = name;
                        self.ports.push(p);
                    }
                }
                // A veth appears.
                5 => self.quarantine_new(),
                // A port's addresses or MAC change, or its role.
                6 if !free.is_empty() => {
                    let i = free[rng.below(free.len())];
                    if rng.chance(30) {
                        self.ports[i].role = other_role(self.ports[i].role);
                    } else {
                        let id = self.fresh();
                        let name = self.ports[i].name.clone();
                        self.ports[i] = port(id, self.ports[i].role, rng.chance(50));
                        self.ports[i].name = name;
                    }
                }
                // A proxy not bound yet is whitelisted, or leaves.
                7 => {
                    if !self.whitelist.is_empty() && rng.chance(50) {
                        self.whitelist.remove(rng.below(self.whitelist.len()));
                    } else {
                        self.whitelist_new();
                    }
                }
                // What an update must not express (each a real change): a
                // service, an allowed flow, an allowed flow's end changes.
                8 | 9 => {
                    expressible = false;
                    match rng.below(3) {
                        0 if self.ports.len() >= 2 => {
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
                        1 if !self.allowed.is_empty() => {
                            let name = self.allowed[0].to.clone();
                            let id = self.fresh() as u16;
                            match self.ports.iter_mut().find(|p| p.name == name) {
                                Some(p) if rng.chance(50) => p
                                    .addrs
                                    .push(IpAddr::V6(Ipv6Addr::new(0xfd09, 1, 0, 0, 0, 0, 0, id))),
                                Some(p) => p.role = other_role(p.role),
                                None => self.new_service(),
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
        // (A role toggled twice is no change: nothing to decline.)
        let expressible = expressible || after == before;
        let whole = after.ruleset();
        match before.port_update(&after) {
            Some(update) => {
                let mut patched = before.ruleset();
                for table in &mut patched.tables {
                    assert!(
                        update.apply_to(table),
                        "case {case}: the update does not fit the table it starts from: {update:?}"
                    );
                }
                assert_eq!(patched, whole, "case {case}: {update:?}");
                // The whitelisted addresses it removes are those the
                // policy lost.
                let mut revoked = update.revoked();
                revoked.sort();
                let lost: Vec<IpAddr> = before
                    .whitelist()
                    .iter()
                    .filter(|a| !after.whitelist().contains(a))
                    .copied()
                    .collect();
                assert_eq!(revoked, lost, "case {case}");
                // Applied again, it no longer fits: nothing changes.
                if !update.is_empty() {
                    let mut again = patched.clone();
                    let fits = again.tables.iter_mut().all(|t| update.apply_to(t));
                    assert!(!fits, "case {case}");
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
                    "case {case}: no update for ports, quarantined ports and whitelists alone"
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
    let mut parts = Parts::proxy_and_backend();
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
    // A backend is no whitelisted address.
    assert!(update.whitelists.is_empty() && update.revoked().is_empty());
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
fn a_proxy_leaving_takes_its_port_and_its_whitelisted_addresses() {
    let mut parts = Parts::proxy_and_backend();
    let before = parts.build().expect("a policy");
    let gone = parts.ports.remove(0);
    let after = parts.build().expect("a policy");
    let update = before.port_update(&after).expect("an update");
    let sets: Vec<&str> = update.sets.iter().map(|s| s.set).collect();
    assert!(
        sets.contains(&"proxies") && sets.contains(&"bound4"),
        "{sets:?}"
    );
    let whitelists: Vec<&str> = update.whitelists.iter().map(|s| s.set).collect();
    assert_eq!(whitelists, ["whitelist4", "whitelist6"]);
    assert!(update.whitelists.iter().all(|s| s.added.is_empty()));
    // Its connections are cut: both of its addresses are revoked.
    assert_eq!(update.revoked(), gone.addrs);
    // And back: the same elements, added.
    let back = after.port_update(&before).expect("an update");
    assert_eq!(back.counts(), (update.counts().1, update.counts().0));
    assert!(back.revoked().is_empty());
}

#[test]
fn an_update_does_not_fit_another_table() {
    let mut parts = Parts::of(vec![port(1, Role::Backend, false)], 10);
    let before = parts.build().expect("a policy");
    parts.add(Role::Proxy, false);
    let after = parts.build().expect("a policy");
    let update = before.port_update(&after).expect("an update");
    assert!(!update.whitelists.is_empty());
    let mut rules = before.ruleset();
    // A table of another name, or of another family.
    for (family, name) in [(Family::Bridge, "other"), (Family::Ip, "trafficjam-pu")] {
        let mut t = bridge_table(&mut rules).clone();
        t.family = family;
        t.name = name.to_string();
        let kept = t.clone();
        assert!(!update.apply_to(&mut t));
        assert_eq!(t, kept);
    }
    // The inet table without its whitelist, the bridge table without one
    // of the sets.
    for (i, set) in [(0, "whitelist4"), (1, "bound4")] {
        let table = &mut rules.tables[i];
        table.sets.retain(|s| s.name != set);
        let kept = table.clone();
        assert!(!update.apply_to(table), "{set}");
        assert_eq!(*table, kept);
    }
}
