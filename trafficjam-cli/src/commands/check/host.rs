//! What `check` finds out about the host before testing on it.

use std::time::Duration;

use crate::commands::runtime;
use crate::docker::{discover::parse_filters, DockerClient};
use crate::firewall::Firewall;

/// How a finding counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// A requirement that holds.
    Pass,
    /// A requirement that does not: `check` fails.
    Fail,
    /// Information; does not decide the result.
    Info,
}

/// One line of the host report.
#[derive(Debug, Clone)]
pub struct Finding {
    /// Pass, fail or information.
    pub mark: Mark,
    /// What was looked at.
    pub subject: String,
    /// What was found, and what to do about a failure.
    pub detail: String,
}

impl Finding {
    fn new(mark: Mark, subject: &str, detail: impl Into<String>) -> Finding {
        Finding {
            mark,
            subject: subject.to_string(),
            detail: detail.into(),
        }
    }

    /// `  ✓ nf_tables        answers: …`
    pub fn line(&self) -> String {
        let m = match self.mark {
            Mark::Pass => "✓",
            Mark::Fail => "✗",
            Mark::Info => "·",
        };
        format!("  {m} {:<16} {}", self.subject, self.detail)
    }
}

/// CAP_NET_ADMIN in the effective set, from `/proc/self/status`.
pub fn net_admin() -> Finding {
    const CAP_NET_ADMIN: u32 = 12;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok());
    match eff {
        Some(caps) if caps & (1 << CAP_NET_ADMIN) != 0 => {
            Finding::new(Mark::Pass, "CAP_NET_ADMIN", "held")
        }
        Some(_) => Finding::new(
            Mark::Fail,
            "CAP_NET_ADMIN",
            "missing: trafficjam cannot change the firewall; run it as root, or with \
             `docker run --cap-add NET_ADMIN`, or `setcap cap_net_admin+ep trafficjam`",
        ),
        None => Finding::new(
            Mark::Info,
            "CAP_NET_ADMIN",
            "unknown (cannot read /proc/self/status)",
        ),
    }
}

/// nf_tables answers, and which trafficjam instances it holds.
pub fn nf_tables() -> Finding {
    let found = Firewall::open(None).and_then(|mut fw| fw.list_own_tables());
    match found {
        Ok(own) if own.is_empty() => Finding::new(
            Mark::Pass,
            "nf_tables",
            "answers over NFNETLINK; no trafficjam table yet",
        ),
        Ok(own) => {
            let names: Vec<String> = own.iter().map(|(f, n)| format!("{f} {n}")).collect();
            Finding::new(
                Mark::Pass,
                "nf_tables",
                format!(
                    "answers over NFNETLINK; trafficjam tables: {}",
                    names.join(", ")
                ),
            )
        }
        Err(e) => Finding::new(Mark::Fail, "nf_tables", e.to_string()),
    }
}

/// Whether bridged traffic passes the IP hooks on the host.
pub fn br_netfilter() -> Finding {
    let detail = match crate::commands::status::br_netfilter(None) {
        Some(true) => "on: traffic between containers passes the stateful inet rules",
        Some(false) => {
            "off: between containers only trafficjam's stateless bridge rules apply \
             (UDP and non-SYN TCP towards the proxy pass; see README)"
        }
        None => "not loaded: trafficjam's stateless bridge rules apply between containers",
    };
    Finding::new(Mark::Info, "br_netfilter", detail)
}

/// Docker: reachable, its version and firewall backend; and, for each
/// `networks`, its subnets and whitelisted containers. Docker is only
/// required when networks are named.
pub fn docker(networks: &[String], filters: &[String]) -> Vec<Finding> {
    let required = !networks.is_empty();
    let unreachable = if required { Mark::Fail } else { Mark::Info };
    let filters = match parse_filters(filters) {
        Ok(f) => f,
        Err(e) => return vec![Finding::new(Mark::Fail, "whitelist filter", e.to_string())],
    };
    runtime().block_on(async {
        let wait = Duration::from_secs(3);
        let client = match tokio::time::timeout(wait, DockerClient::connect()).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                let hint = if required {
                    ""
                } else {
                    " (static mode, --subnet, works without it)"
                };
                return vec![Finding::new(unreachable, "Docker", format!("{e}{hint}"))];
            }
            Err(_) => {
                return vec![Finding::new(
                    unreachable,
                    "Docker",
                    format!("no answer within {} s", wait.as_secs()),
                )]
            }
        };
        let mut out = Vec::new();
        let version = tokio::time::timeout(wait, client.api().version()).await;
        let info = tokio::time::timeout(wait, client.api().info()).await;
        let version = match version {
            Ok(Ok(v)) => format!(
                "{} (API {})",
                v.version.unwrap_or_default(),
                v.api_version.unwrap_or_default()
            ),
            _ => "version unknown".to_string(),
        };
        let backend = match info {
            Ok(Ok(i)) => i
                .firewall_backend
                .and_then(|f| f.driver)
                .map(|d| format!("firewall backend {d}"))
                .unwrap_or_else(|| "firewall backend not reported (Docker < 28)".into()),
            _ => "firewall backend unknown".into(),
        };
        out.push(Finding::new(
            Mark::Pass,
            "Docker",
            format!("{version} at {}; {backend}", client.host()),
        ));
        for network in networks {
            let subject = format!("network {network}");
            match tokio::time::timeout(wait, client.discover(network, &filters, None)).await {
                Ok(Ok(d)) => {
                    let subnets: Vec<String> = d.subnets.iter().map(|s| s.to_string()).collect();
                    let white: Vec<String> = d
                        .whitelist
                        .iter()
                        .map(|w| {
                            let a: Vec<String> = w.addrs.iter().map(|a| a.to_string()).collect();
                            format!("{} ({})", w.name, a.join(", "))
                        })
                        .collect();
                    let white = if white.is_empty() {
                        "nobody (no running container matches --whitelist-filter)".to_string()
                    } else {
                        white.join(", ")
                    };
                    out.push(Finding::new(
                        Mark::Pass,
                        &subject,
                        format!(
                            "bridge {}, subnets {}; whitelisted: {white}; {} container(s)",
                            d.bridge,
                            subnets.join(", "),
                            d.names.len()
                        ),
                    ));
                }
                Ok(Err(e)) => out.push(Finding::new(Mark::Fail, &subject, e.to_string())),
                Err(_) => out.push(Finding::new(Mark::Fail, &subject, "Docker did not answer")),
            }
        }
        out
    })
}
