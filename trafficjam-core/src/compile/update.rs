//! A change of container ports as set elements, without compiling the
//! whole ruleset again: a daemon following hundreds of containers changes
//! a handful of elements per event, and need not build, sort and compare
//! every set to find them.
//!
//! Only what is sure to touch nothing but set elements takes this way:
//! ports added, removed or changed (backends and proxies), ports nobody is
//! bound to (quarantined) coming and going, and the whitelisted addresses
//! that come and go with the proxies, when everything else in the policy
//! is the same. An allowed flow's ends give the `inet` table their
//! addresses in other sets: a change of one is compiled whole.

use std::cmp::Ordering;
use std::net::IpAddr;

use super::bridge::{ifname, port_elements, Roles, PORTS_SET, PORT_SETS, ROLES_SET};
use super::names;
use crate::model::{Element, Family, Table, Value};
use crate::policy::Port;
use crate::Policy;

/// At most this many ports and quarantined ports may differ for an
/// update: more (a whole compose project at once) are compiled whole,
/// which is as cheap then and keeps an update's cost bounded.
pub const MAX_UPDATED_PORTS: usize = 32;

/// The elements one set gains and loses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetChange {
    /// The set's name.
    pub set: &'static str,
    /// Elements it gains, sorted.
    pub added: Vec<Element>,
    /// Elements it loses, sorted.
    pub removed: Vec<Element>,
}

/// What turns the tables of one policy into those of another which
/// differs from it only in ports and whitelisted addresses (see
/// [`Policy::port_update`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortUpdate {
    /// The tables' name (the `bridge` and the `inet` table share it).
    pub table: String,
    /// What changes in the bridge table's port sets; sets that keep their
    /// elements are left out.
    pub sets: Vec<SetChange>,
    /// What changes in the `inet` table's whitelists (`whitelist4`,
    /// `whitelist6`), likewise.
    pub whitelists: Vec<SetChange>,
}

impl PortUpdate {
    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.sets.is_empty() && self.whitelists.is_empty()
    }

    /// Elements added and removed, over all sets of both tables.
    pub fn counts(&self) -> (usize, usize) {
        let (a, r) = tally(&self.sets);
        let (wa, wr) = tally(&self.whitelists);
        (a + wa, r + wr)
    }

    /// Elements added and removed in the table of this family (see
    /// [`changes`](Self::changes)).
    pub fn counts_in(&self, family: Family) -> (usize, usize) {
        tally(self.changes(family))
    }

    /// What changes in the table of this family: the bridge table's port
    /// sets, the `inet` table's whitelists, nothing in any other.
    pub fn changes(&self, family: Family) -> &[SetChange] {
        match family {
            Family::Bridge => &self.sets,
            Family::Inet => &self.whitelists,
            _ => &[],
        }
    }

    /// The whitelisted addresses the update removes: they lose the
    /// connections they opened, as when the whole ruleset is applied.
    pub fn revoked(&self) -> Vec<IpAddr> {
        self.whitelists
            .iter()
            .flat_map(|c| &c.removed)
            .flat_map(|e| e.values())
            .filter_map(|v| match v {
                Value::Net(n) => Some(n.addr()),
                _ => None,
            })
            .collect()
    }

    /// Whether `table` is the bridge or the `inet` table this update
    /// starts from, as far as the update can tell: every set it changes
    /// there is there, holds every element removed and none of those added
    /// (elements sorted, as compiled).
    pub fn fits(&self, table: &Table) -> bool {
        matches!(table.family, Family::Bridge | Family::Inet)
            && table.name == self.table
            && self.changes(table.family).iter().all(|c| {
                table.set(c.set).is_some_and(|s| {
                    !s.interval
                        && s.dynamic.is_none()
                        && c.removed
                            .iter()
                            .all(|e| s.elements.binary_search(e).is_ok())
                        && c.added.iter().all(|e| s.elements.binary_search(e).is_err())
                })
            })
    }

    /// Change `table` (the bridge or the `inet` table of the policy this
    /// update starts from) into that table of the policy it leads to.
    /// Returns `false`, leaving `table` as it was, when the update does not
    /// [`fit`](Self::fits) it.
    pub fn apply_to(&self, table: &mut Table) -> bool {
        if !self.fits(table) {
            return false;
        }
        for c in self.changes(table.family) {
            let Some(set) = table.sets.iter_mut().find(|s| s.name == c.set) else {
                continue;
            };
            for e in &c.removed {
                if let Ok(i) = set.elements.binary_search(e) {
                    set.elements.remove(i);
                }
            }
            for e in &c.added {
                if let Err(i) = set.elements.binary_search(e) {
                    set.elements.insert(i, *e);
                }
            }
        }
        true
    }
}

/// One name on either side of a change: a port, a quarantined port, or
/// neither, before and after.
enum Side<'a> {
    Port(&'a Port),
    Quarantined,
    Absent,
}

impl Policy {
    /// The set elements that turn this policy's tables into `after`'s,
    /// when the two differ only in ports (added, removed, or with other
    /// addresses or role), in ports nobody is bound to, at most
    /// [`MAX_UPDATED_PORTS`] of them, none an end of an allowed flow, and
    /// in whitelisted addresses. `None` otherwise: compile `after` whole
    /// ([`ruleset`](Policy::ruleset)).
    pub fn port_update(&self, after: &Policy) -> Option<PortUpdate> {
        if !self.same_except_ports(after) {
            return None;
        }
        let changed = changed_names(self, after)?;
        let roles = Roles::of(self.tracking());
        let mut added: [Vec<Element>; PORT_SETS.len()] = Default::default();
        let mut removed: [Vec<Element>; PORT_SETS.len()] = Default::default();
        for (name, before, now) in changed {
            let named = |a: &crate::Allowed| a.from == name || a.to == name;
            if self.allowed().iter().any(named) {
                return None;
            }
            for (side, out) in [(before, &mut removed), (now, &mut added)] {
                match side {
                    Side::Port(p) => port_elements(p, Some(roles), |set, e| out[set].push(e)),
                    Side::Quarantined => {
                        out[PORTS_SET].push(Element::of([ifname(name)]));
                        out[ROLES_SET].push(roles.element(name, false));
                    }
                    Side::Absent => {}
                }
            }
        }
        let sets = PORT_SETS
            .iter()
            .zip(added)
            .zip(removed)
            .filter_map(|((set, added), removed)| {
                // A port that became quarantined (or the reverse) keeps
                // its name in `ports`: given on both sides, it stays.
                set_change(set, added, removed)
            })
            .collect();
        // The whitelist changes only with a proxy: most events have none to
        // build and compare.
        let whitelists: Vec<SetChange> = if self.whitelist() == after.whitelist() {
            Vec::new()
        } else {
            [names::WHITELIST4, names::WHITELIST6]
                .into_iter()
                .zip(self.whitelist_sets())
                .zip(after.whitelist_sets())
                .filter_map(|((name, old), new)| set_change(name, new.elements, old.elements))
                .collect()
        };
        // Bounded as the ports are: tens of proxies at once are compiled
        // whole.
        let (white_added, white_removed) = tally(&whitelists);
        if white_added + white_removed > 4 * MAX_UPDATED_PORTS {
            return None;
        }
        Some(PortUpdate {
            table: self.instance().table_name(),
            sets,
            whitelists,
        })
    }
}

/// Elements added and removed over `changes`.
fn tally(changes: &[SetChange]) -> (usize, usize) {
    changes
        .iter()
        .fold((0, 0), |(a, r), c| (a + c.added.len(), r + c.removed.len()))
}

/// What set `set` gains and loses, from what one side gives it and the
/// other takes away (in any order); `None` when that is nothing.
fn set_change(
    set: &'static str,
    mut added: Vec<Element>,
    mut removed: Vec<Element>,
) -> Option<SetChange> {
    added.sort_unstable();
    removed.sort_unstable();
    let (added, removed) = cancel(added, removed);
    (!added.is_empty() || !removed.is_empty()).then_some(SetChange {
        set,
        added,
        removed,
    })
}

/// The names whose port or quarantine differ between `before` and `after`,
/// with what each was and is; `None` when there are more than
/// [`MAX_UPDATED_PORTS`]. Ports and quarantined names are sorted, so one
/// merge walks each list once.
fn changed_names<'a>(
    before: &'a Policy,
    after: &'a Policy,
) -> Option<Vec<(&'a str, Side<'a>, Side<'a>)>> {
    let mut out: Vec<(&str, Side, Side)> = Vec::new();
    let ports = merge(before.ports(), after.ports(), |p| p.name.as_str());
    for (name, b, a) in ports {
        out.push((
            name,
            b.map_or(Side::Absent, Side::Port),
            a.map_or(Side::Absent, Side::Port),
        ));
        if out.len() > MAX_UPDATED_PORTS {
            return None;
        }
    }
    let quarantined = merge(before.unidentified(), after.unidentified(), String::as_str);
    for (name, b, a) in quarantined {
        let side = |q: Option<&String>| q.map_or(Side::Absent, |_| Side::Quarantined);
        match out.iter_mut().find(|(n, ..)| *n == name) {
            // A name is a port or quarantined, never both in one policy.
            Some(entry) => {
                if b.is_some() {
                    entry.1 = Side::Quarantined;
                }
                if a.is_some() {
                    entry.2 = Side::Quarantined;
                }
            }
            None => out.push((name, side(b), side(a))),
        }
        if out.len() > MAX_UPDATED_PORTS {
            return None;
        }
    }
    Some(out)
}

/// The entries of two lists sorted by `key` that differ: by key, what each
/// list holds of it (`None` when it has none).
fn merge<'a, T: PartialEq>(
    before: &'a [T],
    after: &'a [T],
    key: impl Fn(&'a T) -> &'a str,
) -> Vec<(&'a str, Option<&'a T>, Option<&'a T>)> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    loop {
        let order = match (before.get(i), after.get(j)) {
            (Some(b), Some(a)) => key(b).cmp(key(a)),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => return out,
        };
        match order {
            Ordering::Equal => {
                if before[i] != after[j] {
                    out.push((key(&before[i]), Some(&before[i]), Some(&after[j])));
                }
                i += 1;
                j += 1;
            }
            Ordering::Less => {
                out.push((key(&before[i]), Some(&before[i]), None));
                i += 1;
            }
            Ordering::Greater => {
                out.push((key(&after[j]), None, Some(&after[j])));
                j += 1;
            }
        }
    }
}

/// Two sorted lists without the elements they share.
fn cancel(added: Vec<Element>, removed: Vec<Element>) -> (Vec<Element>, Vec<Element>) {
    let keep = |v: &[Element], other: &[Element]| -> Vec<Element> {
        v.iter()
            .filter(|e| other.binary_search(e).is_err())
            .copied()
            .collect()
    };
    (keep(&added, &removed), keep(&removed, &added))
}
