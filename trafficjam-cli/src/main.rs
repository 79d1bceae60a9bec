//! The `trafficjam` binary.

mod blocked;
mod cli;
mod commands;
mod error;
mod firewall;
mod heap;
mod log;
mod metrics;
mod watch;

use clap::Parser;
/// The Docker side, as `crate::docker` (a crate of its own for embedders).
use trafficjam_docker as docker;

use cli::{Cli, Command};

fn main() {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Apply(args) => commands::apply::run(args),
        Command::Check(args) => commands::check::run(args),
        Command::Plan(args) => commands::plan::run(args),
        Command::Run(args) => commands::run::run(args),
        Command::Clear(args) => commands::clear::run(args),
        Command::Status(args) => commands::status::run(args),
    };
    if let Err(e) = result {
        eprintln!("trafficjam: error: {e}");
        std::process::exit(e.exit_code());
    }
}
