//! The smallest batch that turns what the kernel has into what is wanted.

use std::collections::BTreeSet;

use super::batch::Batch;
use super::encode;
use crate::model::{Element, Expr, Table};

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
pub fn plan(batch: &mut Batch, desired: &Table, actual: Option<&Table>) -> Change {
    let Some(actual) = actual else {
        encode::create_table(batch, desired);
        return Change::Create;
    };
    let actual = without_state(actual);
    if actual == *desired {
        return Change::Unchanged;
    }
    if actual.skeleton() == desired.skeleton() && intervals_equal(&actual, desired) {
        return update_elements(batch, desired, &actual);
    }
    // Ensure the table exists (no NLM_F_EXCL), delete it, create it anew:
    // nft's own idiom for an atomic replace.
    let mut empty = desired.clone();
    empty.sets.clear();
    empty.chains.clear();
    encode::create_table_only(batch, &empty);
    encode::delete_table(batch, desired.family, &desired.name);
    encode::create_table(batch, desired);
    Change::Replace
}

fn intervals_equal(a: &Table, b: &Table) -> bool {
    let intervals = |t: &Table| {
        t.sets
            .iter()
            .filter(|s| s.interval)
            .cloned()
            .collect::<Vec<_>>()
    };
    intervals(a) == intervals(b)
}

fn update_elements(batch: &mut Batch, desired: &Table, actual: &Table) -> Change {
    let (mut added, mut removed) = (0, 0);
    for want in desired.sets.iter().filter(|s| !s.interval) {
        let have: BTreeSet<&Element> = actual
            .set(&want.name)
            .map(|s| s.elements.iter().collect())
            .unwrap_or_default();
        let want_set: BTreeSet<&Element> = want.elements.iter().collect();
        let gone: Vec<Element> = have.difference(&want_set).map(|e| (*e).clone()).collect();
        let new: Vec<Element> = want_set.difference(&have).map(|e| (*e).clone()).collect();
        if !gone.is_empty() {
            encode::delete_elements(batch, desired, want, &gone);
        }
        if !new.is_empty() {
            encode::add_elements(batch, desired, want, &new, None);
        }
        added += new.len();
        removed += gone.len();
    }
    Change::Elements { added, removed }
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
