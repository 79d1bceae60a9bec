//! A reachability matrix: many probes in parallel, one readable table, and
//! an assertion that lists every mismatch at once.

use std::net::IpAddr;
use std::time::Duration;

use crate::probe::{probe, Proto};
use crate::Netns;

/// One expected flow.
#[derive(Debug, Clone)]
pub struct Flow {
    /// Human label, e.g. `backend1 -> backend2`.
    pub label: String,
    /// Source namespace label (key into the bed).
    pub from: &'static str,
    /// Destination address.
    pub to: IpAddr,
    /// Protocol.
    pub proto: Proto,
    /// Whether the flow must succeed.
    pub allowed: bool,
}

/// The outcome of one flow.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The flow.
    pub flow: Flow,
    /// Whether it succeeded.
    pub reached: bool,
}

/// Run every flow in parallel, each from its namespace.
pub fn run<'a>(
    flows: &[Flow],
    ns_of: impl Fn(&str) -> &'a Netns + Sync,
    timeout: Duration,
) -> Vec<Outcome> {
    std::thread::scope(|s| {
        let handles: Vec<_> = flows
            .iter()
            .map(|f| {
                let ns = ns_of(f.from);
                s.spawn(move || Outcome {
                    flow: f.clone(),
                    reached: probe(ns, f.to, f.proto, timeout),
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("probe thread"))
            .collect()
    })
}

/// The matrix as a table: one line per flow.
pub fn render(title: &str, outcomes: &[Outcome]) -> String {
    let mut out = format!("== {title}\n");
    for o in outcomes {
        let want = if o.flow.allowed { "allow" } else { "block" };
        let got = if o.reached { "reached" } else { "blocked" };
        let mark = if o.reached == o.flow.allowed {
            "✓"
        } else {
            "✗"
        };
        out.push_str(&format!(
            "{mark} {:<34} {:<5} {:<40} want {want:<5} got {got}\n",
            o.flow.label, o.flow.proto, o.flow.to
        ));
    }
    out
}

/// Print the matrix and panic listing every flow that did not behave.
pub fn assert_matrix(title: &str, outcomes: &[Outcome]) {
    let table = render(title, outcomes);
    println!("{table}");
    let bad: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.reached != o.flow.allowed)
        .collect();
    assert!(
        bad.is_empty(),
        "{} flow(s) did not behave:\n{table}",
        bad.len()
    );
}
