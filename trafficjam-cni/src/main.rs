//! `trafficjam-cni`: trafficjam as a chained CNI plugin. Runtimes run it
//! after `bridge` (and `portmap`) with the CNI environment variables and
//! the network configuration on stdin; see the README for the options.

mod error;
mod invocation;
mod plugin;
mod spec;
mod state;

use std::io::{Read, Write};

use error::PluginError;
use invocation::{Command, Invocation};
use spec::NetConf;

fn main() {
    let (version, result) = run();
    let mut out = std::io::stdout().lock();
    let code = match result {
        Ok(Some(doc)) => {
            let _ = writeln!(out, "{doc}");
            0
        }
        Ok(None) => 0,
        Err(e) => {
            let _ = writeln!(out, "{}", spec::error_document(&version, &e));
            1
        }
    };
    let _ = out.flush();
    std::process::exit(code);
}

/// The spec version to answer in, and the document to print.
fn run() -> (String, Result<Option<serde_json::Value>, PluginError>) {
    let inv = match Invocation::from_env(|k| std::env::var(k).ok()) {
        Ok(i) => i,
        Err(e) => return ("1.0.0".into(), Err(e)),
    };
    if inv.command == Command::Version {
        return ("1.0.0".into(), Ok(Some(spec::version_document())));
    }
    let mut stdin = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut stdin) {
        return ("1.0.0".into(), Err(PluginError::io("reading stdin", e)));
    }
    let conf = match NetConf::parse(&stdin) {
        Ok(c) => c,
        Err(e) => return ("1.0.0".into(), Err(e)),
    };
    let result = match inv.command {
        Command::Add => plugin::add(&conf, &inv).map(Some),
        Command::Del => plugin::del(&conf, &inv).map(|()| None),
        Command::Check => plugin::check(&conf, &inv).map(|()| None),
        Command::Version => Ok(Some(spec::version_document())),
    };
    (conf.cni_version, result)
}
