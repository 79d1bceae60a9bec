//! The connections `check` tries, what the policy requires of each, and
//! the table it prints.

use std::fmt::Write as _;

/// A participant of the lab, by what the policy makes of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Whitelisted: may open connections into the subnets.
    Proxy,
    /// Any other container.
    Backend,
    /// The host, through the bridge's gateway address.
    Host,
}

/// Transport of a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// A TCP handshake.
    Tcp,
    /// A datagram that must be echoed back.
    Udp,
}

/// Address family of a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

/// The four columns of the table.
pub const COLUMNS: [(Proto, Family); 4] = [
    (Proto::Tcp, Family::V4),
    (Proto::Udp, Family::V4),
    (Proto::Tcp, Family::V6),
    (Proto::Udp, Family::V6),
];

fn column_name(c: (Proto, Family)) -> &'static str {
    match c {
        (Proto::Tcp, Family::V4) => "tcp/v4",
        (Proto::Udp, Family::V4) => "udp/v4",
        (Proto::Tcp, Family::V6) => "tcp/v6",
        (Proto::Udp, Family::V6) => "udp/v6",
    }
}

/// What a probe saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The connection was made (or the datagram echoed).
    Reached,
    /// Nothing came back in time: dropped.
    Blocked,
    /// Something else went wrong (refused, no route): the lab is broken.
    Failed(String),
}

/// Whether the policy (with host traffic blocked) lets `from` open a
/// connection to `to`. This is DESIGN.md's policy table.
pub fn required(from: Role, to: Role) -> bool {
    matches!((from, to), (Role::Proxy, Role::Backend))
}

/// One row: a pair of participants and an outcome per column.
#[derive(Debug, Clone)]
pub struct Row {
    /// Source name.
    pub from: String,
    /// Source role.
    pub from_role: Role,
    /// Destination name.
    pub to: String,
    /// Destination role.
    pub to_role: Role,
    /// Outcome per column of [`COLUMNS`].
    pub outcomes: Vec<Outcome>,
}

impl Row {
    /// True if every column is what `expect_reached` says.
    pub fn as_expected(&self, expect_reached: bool) -> bool {
        self.outcomes.iter().all(|o| match o {
            Outcome::Reached => expect_reached,
            Outcome::Blocked => !expect_reached,
            Outcome::Failed(_) => false,
        })
    }

    /// True if every column is what the policy requires.
    pub fn as_required(&self) -> bool {
        self.as_expected(required(self.from_role, self.to_role))
    }
}

/// (probes as expected, probes in all); `expect` says whether a row's
/// connections should be made.
pub fn score(rows: &[Row], expect: impl Fn(&Row) -> bool) -> (usize, usize) {
    let mut good = 0;
    let mut all = 0;
    for r in rows {
        let want = expect(r);
        for o in &r.outcomes {
            all += 1;
            if (*o == Outcome::Reached) == want && !matches!(o, Outcome::Failed(_)) {
                good += 1;
            }
        }
    }
    (good, all)
}

/// The table: ✓ connected, ✗ blocked, `!` marks a cell the policy does
/// not allow, `?` a probe that failed for another reason (listed below).
pub fn render(rows: &[Row]) -> String {
    let width = rows
        .iter()
        .map(|r| r.from.chars().count() + r.to.chars().count() + 3)
        .max()
        .unwrap_or(0);
    let mut out = format!("    {:width$}", "");
    for c in COLUMNS {
        let _ = write!(out, "  {:<7}", column_name(c));
    }
    out.push_str("  required\n");
    let mut failures = Vec::new();
    for r in rows {
        let want = required(r.from_role, r.to_role);
        let pair = format!("{} → {}", r.from, r.to);
        let _ = write!(out, "    {pair:width$}");
        for (o, c) in r.outcomes.iter().zip(COLUMNS) {
            let cell = match o {
                Outcome::Reached if want => "✓",
                Outcome::Reached => "✓ !",
                Outcome::Blocked if !want => "✗",
                Outcome::Blocked => "✗ !",
                Outcome::Failed(why) => {
                    failures.push(format!("{pair} {}: {why}", column_name(c)));
                    "?"
                }
            };
            let _ = write!(out, "  {cell:<7}");
        }
        let verdict = match (want, r.as_required()) {
            (true, true) => "connects",
            (false, true) => "blocked",
            (true, false) => "connects  <- NOT AS REQUIRED",
            (false, false) => "blocked   <- NOT AS REQUIRED",
        };
        let _ = writeln!(out, "  {verdict}");
    }
    for f in failures {
        let _ = writeln!(out, "    ? {f}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(from_role: Role, to_role: Role, o: Outcome) -> Row {
        Row {
            from: "a".into(),
            from_role,
            to: "b".into(),
            to_role,
            outcomes: vec![o; 4],
        }
    }

    #[test]
    fn only_the_proxy_reaches_backends() {
        assert!(required(Role::Proxy, Role::Backend));
        for (f, t) in [
            (Role::Backend, Role::Backend),
            (Role::Backend, Role::Proxy),
            (Role::Backend, Role::Host),
            (Role::Proxy, Role::Host),
        ] {
            assert!(!required(f, t), "{f:?} → {t:?}");
        }
    }

    #[test]
    fn a_leak_or_a_broken_lab_is_not_as_required() {
        assert!(row(Role::Proxy, Role::Backend, Outcome::Reached).as_required());
        assert!(row(Role::Backend, Role::Backend, Outcome::Blocked).as_required());
        assert!(!row(Role::Backend, Role::Backend, Outcome::Reached).as_required());
        assert!(!row(Role::Proxy, Role::Backend, Outcome::Blocked).as_required());
        let broken = row(Role::Backend, Role::Host, Outcome::Failed("refused".into()));
        assert!(!broken.as_required());
        let rows = [
            row(Role::Proxy, Role::Backend, Outcome::Reached),
            row(Role::Backend, Role::Backend, Outcome::Reached),
        ];
        assert_eq!(score(&rows, |r| required(r.from_role, r.to_role)), (4, 8));
        assert_eq!(score(&rows, |_| true), (8, 8));
        let table = render(&rows);
        assert!(table.contains("✓ !"), "{table}");
        assert!(table.contains("blocked   <- NOT AS REQUIRED"), "{table}");
    }
}
