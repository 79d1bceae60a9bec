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
    if flows.iter().any(|f| f.proto == Proto::Icmp) {
        crate::probe::require_ping();
    }
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

/// One line of the table.
fn line(o: &Outcome) -> String {
    let want = if o.flow.allowed { "allow" } else { "block" };
    let got = if o.reached { "reached" } else { "blocked" };
    let mark = if o.reached == o.flow.allowed {
        "✓"
    } else {
        "✗"
    };
    format!(
        "{mark} {:<34} {:<5} {:<39} want {want:<5} got {got}\n",
        o.flow.label, o.flow.proto, o.flow.to
    )
}

/// The matrix as a table: one line per flow, then a summary line.
pub fn render(title: &str, outcomes: &[Outcome]) -> String {
    let mut out = format!("== {title}\n");
    for o in outcomes {
        out.push_str(&line(o));
    }
    let bad = outcomes.iter().filter(|o| o.reached != o.flow.allowed);
    out.push_str(&format!(
        "== {} flows, {} as expected, {} not\n",
        outcomes.len(),
        outcomes.len() - bad.clone().count(),
        bad.count()
    ));
    out
}

/// Print the matrix and panic listing every flow that did not behave,
/// followed by the whole table (one failing run shows the whole picture).
pub fn assert_matrix(title: &str, outcomes: &[Outcome]) {
    let table = render(title, outcomes);
    println!("{table}");
    let bad: String = outcomes
        .iter()
        .filter(|o| o.reached != o.flow.allowed)
        .map(line)
        .collect();
    assert!(
        bad.is_empty(),
        "{title}: {} flow(s) did not behave:\n{bad}\nwhole matrix:\n{table}",
        bad.lines().count()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(label: &str, allowed: bool, reached: bool) -> Outcome {
        Outcome {
            flow: Flow {
                label: label.into(),
                from: "proxy",
                to: "fd77:1::11".parse().unwrap(),
                proto: Proto::Udp,
                allowed,
            },
            reached,
        }
    }

    #[test]
    fn render_marks_mismatches_and_counts_them() {
        let table = render("t", &[outcome("a", true, true), outcome("b", false, true)]);
        assert!(table.contains("✓ a "), "{table}");
        assert!(table.contains("✗ b "), "{table}");
        assert!(table.contains("udp   fd77:1::11"), "{table}");
        assert!(table.contains("2 flows, 1 as expected, 1 not"), "{table}");
    }

    #[test]
    #[should_panic(expected = "t: 2 flow(s) did not behave:\n✗ b")]
    fn assert_matrix_lists_every_mismatch() {
        assert_matrix(
            "t",
            &[
                outcome("a", true, true),
                outcome("b", false, true),
                outcome("c", true, false),
            ],
        );
    }
}
