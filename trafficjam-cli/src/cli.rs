//! Command-line interface: commands, options and their environment
//! variables (the old TrafficJam image's variables work as defaults).

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{builder::FalseyValueParser, Args, Parser, Subcommand};
use ipnet::IpNet;

/// trafficjam keeps the containers of a network from opening connections to
/// each other and to the host: only whitelisted addresses (your reverse
/// proxy) may. Rules are nftables objects sent straight to the kernel in one
/// atomic transaction; no iptables or nft binary is used.
#[derive(Debug, Parser)]
#[command(name = "trafficjam", version, about, long_about = None)]
#[command(after_help = "Examples:\n  \
  trafficjam plan  --subnet 172.23.0.0/16 --whitelist-ip 172.23.0.2\n  \
  trafficjam apply --subnet 172.23.0.0/16 --subnet fd00:23::/64 --whitelist-ip 172.23.0.2 --whitelist-ip fd00:23::2\n  \
  trafficjam status --json\n  \
  trafficjam clear --instance default")]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Install or update the policy in one transaction (no change if the
    /// kernel already enforces it).
    Apply(PolicyArgs),
    /// Print the rules `apply` would install, as nft text; touches nothing.
    Plan(PolicyArgs),
    /// Remove what trafficjam installed (one instance, or all), nothing else.
    Clear(ClearArgs),
    /// Show what the kernel enforces now (read back from the kernel).
    Status(StatusArgs),
}

/// Where to act.
#[derive(Debug, Args)]
pub struct Target {
    /// Act inside this network namespace (e.g. /run/netns/NAME or
    /// /proc/PID/ns/net) instead of the current one.
    #[arg(long, value_name = "PATH")]
    pub netns: Option<PathBuf>,
}

/// The policy options shared by `apply` and `plan`.
#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// A managed subnet (IPv4 or IPv6 CIDR); repeat for several.
    #[arg(long = "subnet", value_name = "CIDR", required = true)]
    pub subnets: Vec<IpNet>,
    /// A whitelisted address (the proxy's address on the managed network);
    /// repeat for several. Without any, no container may open connections
    /// inside the subnets.
    #[arg(long = "whitelist-ip", value_name = "IP")]
    pub whitelist: Vec<IpAddr>,
    /// Let containers open connections to the host (its addresses and
    /// published ports). Off by default: a compromised container should not
    /// reach the host.
    #[arg(long, env = "ALLOW_HOST_TRAFFIC", value_parser = FalseyValueParser::new(), default_value_t = false, num_args = 0, default_missing_value = "true")]
    pub allow_host_traffic: bool,
    /// Instance name: independent instances own independent rules.
    #[arg(
        long,
        env = "INSTANCE_ID",
        default_value = "default",
        value_name = "ID"
    )]
    pub instance: String,
    #[command(flatten)]
    pub target: Target,
}

/// Options of `clear`.
#[derive(Debug, Args)]
pub struct ClearArgs {
    /// The instance whose rules are removed.
    #[arg(
        long,
        env = "INSTANCE_ID",
        default_value = "default",
        value_name = "ID",
        conflicts_with = "all"
    )]
    pub instance: String,
    /// Remove the rules of every trafficjam instance.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub target: Target,
}

/// Options of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON (stable field names) instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub target: Target,
}
