//! The smallest batch that turns what the kernel has into what is wanted.

use super::batch::Batch;
use super::encode;
use crate::model::{Element, Expr, Set, Table};

/// What [`plan`] decided to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The kernel already has the desired table: nothing is sent.
    Unchanged,
    /// The table is missing and is created.
    Create,
    /// Only the elements of address sets differ: they are added and removed
    /// in place, which is cheap whatever the size of the sets.
    Elements {
        /// Elements added, over all sets.
        added: usize,
        /// Elements removed, over all sets.
        removed: usize,
    },
    /// The structure differs (chains, rules, set definitions or intervals):
    /// the table is deleted and created again in the same transaction, so
    /// there is no moment without the policy.
    Replace,
}

/// Push onto `batch` the messages that turn `actual` (the kernel's state,
/// `None` when the table does not exist) into `desired`.
///
/// Linear in the size of the tables and without copying them: a daemon
/// plans a change of one container among hundreds on every event.
pub fn plan(batch: &mut Batch, desired: &Table, actual: Option<&Table>) -> Change {
    let Some(actual) = actual else {
        encode::create_table(batch, desired);
        return Change::Create;
    };
    if !same_structure(desired, actual) {
        // Ensure the table exists (no NLM_F_EXCL), delete it, create it
        // anew: nft's own idiom for an atomic replace.
        let mut empty = desired.clone();
        empty.sets.clear();
        empty.chains.clear();
        encode::create_table_only(batch, &empty);
        encode::delete_table(batch, desired.family, &desired.name);
        encode::create_table(batch, desired);
        return Change::Replace;
    }
    update_elements(batch, desired, actual)
}

/// Whether only the elements of (non-interval) sets can differ: the same
/// table, set definitions, interval sets and rules (counter values
/// aside).
fn same_structure(desired: &Table, actual: &Table) -> bool {
    let rule_eq = |a: &crate::model::Rule, b: &crate::model::Rule| {
        a.comment == b.comment
            && a.exprs.len() == b.exprs.len()
            && a.exprs.iter().zip(&b.exprs).all(|(x, y)| match (x, y) {
                (Expr::Counter { .. }, Expr::Counter { .. }) => true,
                _ => x == y,
            })
    };
    let set_eq = |a: &Set, b: &Set| {
        a.name == b.name
            && a.key == b.key
            && a.interval == b.interval
            && a.dynamic == b.dynamic
            && a.data == b.data
            && (!a.interval || a.elements == b.elements)
    };
    desired.family == actual.family
        && desired.name == actual.name
        && desired.comment == actual.comment
        && desired.sets.len() == actual.sets.len()
        && desired
            .sets
            .iter()
            .zip(&actual.sets)
            .all(|(a, b)| set_eq(a, b))
        && desired.chains.len() == actual.chains.len()
        && desired.chains.iter().zip(&actual.chains).all(|(a, b)| {
            a.name == b.name
                && a.base == b.base
                && a.rules.len() == b.rules.len()
                && a.rules.iter().zip(&b.rules).all(|(x, y)| rule_eq(x, y))
        })
}

fn update_elements(batch: &mut Batch, desired: &Table, actual: &Table) -> Change {
    let (mut added, mut removed) = (0, 0);
    for (want, have) in desired.sets.iter().zip(&actual.sets) {
        // Interval sets are compared whole (above); dynamic ones are filled
        // by the packet path, never by us.
        if want.interval || want.dynamic.is_some() || want.elements == have.elements {
            continue;
        }
        let (gone, new) = difference(&have.elements, &want.elements);
        if !gone.is_empty() {
            encode::delete_elements(batch, desired, want, &gone);
        }
        if !new.is_empty() {
            encode::add_elements(batch, desired, want, &new, None);
        }
        added += new.len();
        removed += gone.len();
    }
    if added == 0 && removed == 0 {
        Change::Unchanged
    } else {
        Change::Elements { added, removed }
    }
}

/// What only `have` holds and what only `want` holds: a merge of the two
/// lists in order (sorted here when they are not).
fn difference(have: &[Element], want: &[Element]) -> (Vec<Element>, Vec<Element>) {
    let sorted = |v: &[Element]| -> Option<Vec<Element>> {
        if v.windows(2).all(|w| w[0] < w[1]) {
            None
        } else {
            let mut s = v.to_vec();
            s.sort();
            s.dedup();
            Some(s)
        }
    };
    let (h, w) = (sorted(have), sorted(want));
    let (have, want) = (h.as_deref().unwrap_or(have), w.as_deref().unwrap_or(want));
    let (mut gone, mut new) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < have.len() || j < want.len() {
        // One comparison a step: hundreds of elements on every event.
        let order = match (have.get(i), want.get(j)) {
            (Some(a), Some(b)) => a.cmp(b),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => break,
        };
        match order {
            std::cmp::Ordering::Equal => {
                i += 1;
                j += 1;
            }
            std::cmp::Ordering::Less => {
                gone.extend(have.get(i).copied());
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                new.extend(want.get(j).copied());
                j += 1;
            }
        }
    }
    (gone, new)
}

/// The table with counter values zeroed, for comparison with a desired
/// table (whose counters are always zero).
pub(crate) fn without_state(table: &Table) -> Table {
    let mut t = table.clone();
    for chain in &mut t.chains {
        for rule in &mut chain.rules {
            rule.exprs = rule.exprs.iter().map(Expr::without_state).collect();
        }
    }
    t
}
