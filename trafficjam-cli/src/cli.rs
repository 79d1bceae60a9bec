//! Command-line interface: commands, options and their environment
//! variables (the old TrafficJam image's variables work as defaults).

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{builder::FalseyValueParser, ArgGroup, Args, Parser, Subcommand};
use ipnet::IpNet;
use trafficjam_core::Service;

/// trafficjam keeps the containers of a network from opening connections to
/// each other and to the host: only whitelisted addresses (your reverse
/// proxy) may. Rules are nftables objects sent straight to the kernel in one
/// atomic transaction; no iptables or nft binary is used.
#[derive(Debug, Parser)]
#[command(name = "trafficjam", version, about, long_about = None)]
#[command(after_help = "Examples:\n  \
  trafficjam run   --network traefik_public --whitelist-filter ancestor=traefik:latest\n  \
  trafficjam apply --network traefik_public --whitelist-filter label=role=proxy\n  \
  trafficjam plan  --subnet 172.23.0.0/16 --whitelist-ip 172.23.0.2 --bridge br0\n  \
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
    /// Daemon: apply, then follow Docker's events and re-apply within
    /// milliseconds of a change; rules stay when it stops (SIGTERM/SIGINT),
    /// SIGUSR1 removes them and exits.
    Run(RunArgs),
    /// Remove what trafficjam installed (one instance, or all), nothing else.
    Clear(ClearArgs),
    /// Show what the kernel enforces now (read back from the kernel).
    Status(StatusArgs),
    /// Inspect this host, then prove enforcement live: build throwaway
    /// network namespaces (a proxy and two backends on a bridge), test
    /// every connection without and with the policy, print the matrix.
    /// Exits 0 only if everything holds.
    #[command(
        long_about = "Inspect this host, then prove enforcement live on this kernel.\n\n\
The host part reports CAP_NET_ADMIN, whether nf_tables answers (and which trafficjam \
tables it holds), br_netfilter, Docker (version, firewall backend) and, with --network, \
the network's subnets and whitelisted containers.\n\n\
The live part builds a lab in anonymous network namespaces: a bridge with 192.0.2.0/24 and \
2001:db8:7a::/64, a proxy and two backends on veths. It makes every TCP and UDP \
connection over IPv4 and IPv6 without rules (the lab must work), applies the trafficjam \
policy with the proxy whitelisted, and tries again: only proxy → backend may connect. \
Then backend1 attacks, as a compromised container holding CAP_NET_RAW would (a forged \
source address and MAC, a VLAN-tagged frame, link-local addresses of a neighbour and \
of the host, limited broadcast, a request split into fragments, a gratuitous ARP \
taking over the proxy's address), once in a lab without rules (each must work there) \
and once with the policy (each must be stopped).\n\n\
The namespaces are held by file descriptors only, so when check ends - or is \
interrupted or killed - the kernel removes them with every interface and rule in them; \
nothing on the host is changed.\n\n\
Exit status: 0 if every check passed, 1 otherwise, 2 on bad options."
    )]
    Check(CheckArgs),
}

/// Where to act.
#[derive(Debug, Args)]
pub struct Target {
    /// Act inside this network namespace (e.g. /run/netns/NAME or
    /// /proc/PID/ns/net) instead of the current one.
    #[arg(long, value_name = "PATH")]
    pub netns: Option<PathBuf>,
}

/// Where the policy comes from: Docker (`--network`), or the command line
/// (`--subnet`, for any bridge, no Docker needed). Exactly one of the two.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").required(true).args(["subnets", "networks"])))]
pub struct PolicyArgs {
    /// Docker network to isolate (name or id); repeat for several (the
    /// environment variable takes a comma-separated list).
    #[arg(long = "network", value_name = "NAME", env = "NETWORK", hide_env_values = true, value_delimiter = ',', conflicts_with_all = ["subnets", "whitelist"])]
    pub networks: Vec<String>,
    /// Docker filter selecting the whitelisted containers (your proxy), as
    /// in `docker ps --filter`: ancestor=traefik:latest, label=KEY=VALUE,
    /// name=traefik, id=…; repeat to OR several.
    #[arg(
        long = "whitelist-filter",
        value_name = "FILTER",
        env = "WHITELIST_FILTER",
        hide_env_values = true,
        requires = "networks"
    )]
    pub whitelist_filters: Vec<String>,
    /// A managed subnet (IPv4 or IPv6 CIDR); repeat for several.
    #[arg(long = "subnet", value_name = "CIDR")]
    pub subnets: Vec<IpNet>,
    /// A whitelisted address (the proxy's address on the managed network);
    /// repeat for several. Without any, no container may open connections
    /// inside the subnets.
    #[arg(long = "whitelist-ip", value_name = "IP", requires = "subnets")]
    pub whitelist: Vec<IpAddr>,
    /// The bridge of the managed network. Default: the interface holding an
    /// address inside the subnets (the gateway); trafficjam says which it
    /// chose, and refuses to guess between several.
    #[arg(long, value_name = "IFNAME", requires = "subnets")]
    pub bridge: Option<String>,
    /// A container port of the bridge and what it may send as: its MAC and
    /// addresses, e.g. `--port veth1a2b=02:42:ac:17:00:03,172.23.0.3`.
    /// Veth ports are found on their own (the MAC and addresses of the
    /// other end); give this for other ports (a tap), or to pin a port.
    /// A bridge port that is neither a veth nor given here is an uplink:
    /// traffic through it is outside the host and left alone.
    #[arg(long = "port", value_name = "IFNAME=MAC,IP…", requires = "subnets", value_parser = parse_port)]
    pub ports: Vec<PortArg>,
    /// The port of a whitelisted container (the host side of the proxy's
    /// veth, e.g. vethab12cd3); repeat for several. Ports holding a
    /// --whitelist-ip are whitelisted too.
    #[arg(long = "whitelist-port", value_name = "IFNAME", requires = "subnets")]
    pub whitelist_ports: Vec<String>,
    /// Let containers open connections to the host (its addresses and
    /// published ports). Off by default: a compromised container should not
    /// reach the host.
    #[arg(long, env = "ALLOW_HOST_TRAFFIC", hide_env_values = true, value_parser = FalseyValueParser::new(), default_value_t = false, num_args = 0, default_missing_value = "true")]
    pub allow_host_traffic: bool,
    /// Let every container open connections to the whitelisted containers
    /// on these services, e.g. `--allow-to-proxy 8443/tcp` (a forward-auth
    /// or single-sign-on endpoint backends call through the proxy);
    /// comma-separated or repeated.
    #[arg(
        long,
        value_name = "PORT/PROTO",
        env = "ALLOW_TO_PROXY",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub allow_to_proxy: Vec<Service>,
    /// Let containers open connections to these services of the host, e.g.
    /// `--allow-host-port 53/udp` for a DNS cache; narrower than
    /// --allow-host-traffic. Comma-separated or repeated.
    #[arg(
        long,
        value_name = "PORT/PROTO",
        env = "ALLOW_HOST_PORT",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub allow_host_port: Vec<Service>,
    /// Static mode: let the container holding FROM open connections to the
    /// one holding TO, to any port or to these:
    /// `--allow 172.23.0.5->172.23.0.7:5432/tcp,6379/tcp`. With Docker,
    /// use the labels trafficjam.allow-from / trafficjam.allow-ports.
    #[arg(long = "allow", value_name = "FROM->TO[:PORTS]", requires = "subnets", value_parser = parse_allow)]
    pub allow: Vec<AllowArg>,
    /// Report dropped new connections (at most PER_SECOND a second, default
    /// 10): the rules send them to NFLOG and `run` prints one line per
    /// attempt, e.g. `blocked web1 (172.23.0.3) → db (172.23.0.4) tcp/5432`.
    #[arg(long, value_name = "PER_SECOND", num_args = 0..=1, default_missing_value = "10", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub log_blocked: Option<u32>,
    /// Instance name: independent instances own independent rules. Default:
    /// `default` with --subnet; the network's name with --network.
    #[arg(long, env = "INSTANCE_ID", hide_env_values = true, value_name = "ID")]
    pub instance: Option<String>,
    #[command(flatten)]
    pub target: Target,
}

/// Options of `run`: the policy options plus the daemon's own.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Re-check Docker (or, in static mode, the kernel) every this many
    /// seconds, in case an event was missed. Docker events, not this
    /// interval, are how changes are noticed.
    #[arg(long, env = "POLL_INTERVAL", hide_env_values = true, default_value_t = 60, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub poll_interval: u64,
    /// Name an address in the blocked-connection log (static mode; with
    /// Docker the container names are used), e.g. `--name 10.0.0.5=db`.
    #[arg(long = "name", value_name = "IP=NAME", value_parser = parse_name)]
    pub names: Vec<(IpAddr, String)>,
    /// Serve Prometheus metrics on ADDR (default 127.0.0.1:9771, loopback
    /// only): transactions and their latency, restores after tampering,
    /// Docker (re)connects, blocked-log lines, and the kernel's drop
    /// counters per instance and chain. Off unless given.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:9771")]
    pub metrics: Option<std::net::SocketAddr>,
    /// Log every event and every kernel transaction.
    #[arg(short, long, env = "DEBUG", hide_env_values = true, value_parser = FalseyValueParser::new(), default_value_t = false, num_args = 0, default_missing_value = "true")]
    pub verbose: bool,
    #[command(flatten)]
    pub swarm: SwarmArgs,
}

/// Options for Docker Swarm nodes (`run` on every node of the swarm).
#[derive(Debug, Args, Clone)]
pub struct SwarmArgs {
    /// The Engine's --exec-root, where it mounts the overlay, load-balancer
    /// and ingress namespaces (`<DIR>/netns`). In a container, bind-mount
    /// `<DIR>/netns` at the same path with `rslave` propagation, so
    /// namespaces the Engine creates later are seen.
    #[arg(long, env = "DOCKER_EXEC_ROOT", hide_env_values = true, value_name = "DIR", default_value = trafficjam_docker::overlay::DEFAULT_EXEC_ROOT)]
    pub docker_exec_root: std::path::PathBuf,
    /// Drop the routing mesh's traffic for these published ports on this
    /// node (in its `ingress_sbox` namespace, before IPVS sees it): from
    /// other nodes and from this host alike. The port is still served
    /// where its tasks are reached directly (host-mode ports, other nodes).
    /// E.g. `--block-ingress 8080/tcp,53/udp`; reasserted when the Engine
    /// recreates ingress_sbox.
    #[arg(
        long,
        value_name = "PORT/PROTO",
        env = "BLOCK_INGRESS",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub block_ingress: Vec<Service>,
    /// The swarm's data-path port (`docker swarm init --data-path-port`):
    /// containers of a managed overlay may not send to it, so none can
    /// inject VXLAN frames into another node's overlays.
    #[arg(
        long,
        env = "SWARM_DATA_PATH_PORT",
        hide_env_values = true,
        value_name = "PORT",
        default_value_t = 4789
    )]
    pub data_path_port: u16,
    /// Accepted from the original image and ignored: no manager-side
    /// daemon or second service is needed; run trafficjam as a global
    /// service and every node enforces its own containers.
    #[arg(long, env = "SWARM_DAEMON", hide = true, value_parser = FalseyValueParser::new(), default_value_t = false, num_args = 0, default_missing_value = "true")]
    pub swarm_daemon: bool,
    /// Accepted from the original image and ignored (see SWARM_DAEMON).
    #[arg(long, env = "SWARM_IMAGE", hide = true, value_name = "IMAGE")]
    pub swarm_image: Option<String>,
}

/// Options of `clear`.
#[derive(Debug, Args)]
pub struct ClearArgs {
    /// The instance whose rules are removed.
    #[arg(
        long,
        env = "INSTANCE_ID", hide_env_values = true,
        default_value = "default",
        value_name = "ID",
        conflicts_with_all = ["all", "network"]
    )]
    pub instance: String,
    /// Remove the rules of the instance managing this Docker network (as
    /// `apply --network NAME` named it).
    #[arg(long, value_name = "NAME", conflicts_with = "all")]
    pub network: Option<String>,
    /// Remove the rules of every trafficjam instance.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub target: Target,
}

/// Options of `check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Also report this Docker network: its subnets and who is
    /// whitelisted (fails if it does not exist); repeat for several.
    #[arg(
        long = "network",
        value_name = "NAME",
        env = "NETWORK",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub networks: Vec<String>,
    /// Docker filter selecting the whitelisted containers, as for `run`.
    #[arg(
        long = "whitelist-filter",
        value_name = "FILTER",
        env = "WHITELIST_FILTER",
        hide_env_values = true
    )]
    pub whitelist_filters: Vec<String>,
}

/// Options of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON (stable field names) instead of text.
    #[arg(long)]
    pub json: bool,
    /// The Engine's --exec-root: the tables in its namespaces (Swarm
    /// overlays, ingress_sbox) are shown too, each with its namespace.
    #[arg(long, env = "DOCKER_EXEC_ROOT", hide_env_values = true, value_name = "DIR", default_value = trafficjam_docker::overlay::DEFAULT_EXEC_ROOT)]
    pub docker_exec_root: std::path::PathBuf,
    #[command(flatten)]
    pub target: Target,
}

/// `--allow FROM->TO[:PORTS]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowArg {
    /// The address of the container that may open connections.
    pub from: IpAddr,
    /// The address of the one they go to.
    pub to: IpAddr,
    /// The services; empty for any.
    pub services: Vec<Service>,
}

fn parse_allow(s: &str) -> Result<AllowArg, String> {
    let (from, rest) = s
        .split_once("->")
        .or_else(|| s.split_once('→'))
        .ok_or_else(|| format!("{s:?} is not FROM->TO[:PORTS]"))?;
    // An IPv6 TO may hold colons: the services follow the last `]:` of a
    // bracketed address, or the last `:` of an IPv4 one.
    let (to, ports) = if let Some(v6) = rest.strip_prefix('[') {
        let (a, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("{rest:?}: unclosed ["))?;
        (a, after.strip_prefix(':'))
    } else if rest.matches(':').count() == 1 {
        let (a, p) = rest.split_once(':').unwrap_or((rest, ""));
        (a, Some(p))
    } else {
        (rest, None)
    };
    let parse_ip = |x: &str| {
        x.trim()
            .parse::<IpAddr>()
            .map_err(|e| format!("{x:?}: {e}"))
    };
    let services = match ports {
        None => Vec::new(),
        Some(p) => p
            .split(',')
            .map(|x| x.parse::<Service>())
            .collect::<Result<Vec<_>, _>>()?,
    };
    Ok(AllowArg {
        from: parse_ip(from)?,
        to: parse_ip(to)?,
        services,
    })
}

/// `--port IFNAME=MAC[,IP…]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortArg {
    /// The port's interface name.
    pub name: String,
    /// The container's MAC address.
    pub mac: [u8; 6],
    /// The container's addresses.
    pub addrs: Vec<IpAddr>,
}

fn parse_port(s: &str) -> Result<PortArg, String> {
    let (name, rest) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not IFNAME=MAC[,IP…]"))?;
    let mut parts = rest.split(',');
    let mac_text = parts.next().unwrap_or_default();
    let mac = trafficjam_core::model::parse_mac(mac_text)
        .ok_or_else(|| format!("{mac_text:?} is not a MAC address like 02:42:ac:17:00:03"))?;
    let addrs = parts
        .map(|a| a.parse().map_err(|e| format!("{a:?}: {e}")))
        .collect::<Result<Vec<IpAddr>, String>>()?;
    Ok(PortArg {
        name: name.to_string(),
        mac,
        addrs,
    })
}

/// `IP=NAME` for `--name`.
fn parse_name(s: &str) -> Result<(IpAddr, String), String> {
    let (ip, name) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not IP=NAME"))?;
    let ip = ip.parse().map_err(|e| format!("{ip:?}: {e}"))?;
    if name.is_empty() {
        return Err(format!("{s:?} has an empty name"));
    }
    Ok((ip, name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_arguments_parse() {
        let a = parse_allow("172.23.0.5->172.23.0.7:5432/tcp,6379").unwrap();
        assert_eq!(a.from, "172.23.0.5".parse::<IpAddr>().unwrap());
        assert_eq!(a.services, [Service::tcp(5432), Service::tcp(6379)]);
        let a = parse_allow("fd00::5->[fd00::7]:53/udp").unwrap();
        assert_eq!(a.to, "fd00::7".parse::<IpAddr>().unwrap());
        assert_eq!(a.services, [Service::udp(53)]);
        let a = parse_allow("fd00::5→fd00::7").unwrap();
        assert!(a.services.is_empty());
        for bad in [
            "172.23.0.5",
            "x->172.23.0.7",
            "172.23.0.5->172.23.0.7:0",
            "1.2.3.4->5.6.7.8:80/sctp",
        ] {
            assert!(parse_allow(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn port_arguments_parse() {
        let p = parse_port("veth1=02:42:ac:17:00:03,172.23.0.3,fd00::3").unwrap();
        assert_eq!(p.mac, [2, 0x42, 0xac, 0x17, 0, 3]);
        assert_eq!(p.addrs.len(), 2);
        assert!(parse_port("veth1").is_err());
        assert!(parse_port("veth1=02:42").is_err());
    }
}
