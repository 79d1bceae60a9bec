//! Bad input and missing privileges: a clear message, a non-zero exit, and
//! nothing changed in the kernel.

use std::process::{Command, Output};

use trafficjam_testbed::cli::refused;
use trafficjam_testbed::{require_root, Netns};

fn trafficjam(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trafficjam"))
        .args(args)
        .output()
        .expect("run trafficjam")
}

fn tables(ns: &Netns) -> String {
    let out = ns.exec("nft", &["list", "tables"]).unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn bad_input_is_refused_before_the_kernel_is_touched() {
    require_root();
    let ns = Netns::new("tjbad").unwrap();
    let path = ns.path();
    let p = path.to_str().unwrap();
    let cases: [(&[&str], i32, &str); 7] = [
        (
            &["apply", "--netns", p, "--subnet", "10.1.0.0/33"],
            2,
            "--subnet",
        ),
        (
            &[
                "apply",
                "--netns",
                p,
                "--subnet",
                "10.1.0.0/16",
                "--whitelist-ip",
                "10.1.0.300",
            ],
            2,
            "--whitelist-ip",
        ),
        (
            &[
                "apply",
                "--netns",
                p,
                "--subnet",
                "10.1.0.0/16",
                "--whitelist-ip",
                "10.2.0.5",
            ],
            2,
            "outside every managed subnet",
        ),
        (
            &["apply", "--netns", p, "--subnet", "10.1.0.5/32"],
            2,
            "single address",
        ),
        (
            &[
                "apply",
                "--netns",
                p,
                "--subnet",
                "10.1.0.0/16",
                "--instance",
                "no spaces",
            ],
            2,
            "invalid instance id",
        ),
        (&["apply", "--netns", p], 2, "--subnet"),
        (
            &[
                "apply",
                "--netns",
                "/run/netns/tj-does-not-exist",
                "--subnet",
                "10.1.0.0/16",
            ],
            2,
            "does not exist",
        ),
    ];
    for (args, code, needle) in cases {
        refused(&trafficjam(args), code, needle);
    }
    assert_eq!(tables(&ns), "", "something was created");
    assert!(!std::path::Path::new("/run/netns/tj-does-not-exist").exists());
}

#[test]
fn missing_cap_net_admin_is_named() {
    require_root();
    let ns = Netns::new("tjcap").unwrap();
    let bin = env!("CARGO_BIN_EXE_trafficjam");
    let p = ns.path();
    for cmd in [
        vec!["apply", "--subnet", "10.1.0.0/16", "--bridge", "tj-none"],
        vec!["status"],
        vec!["clear", "--all"],
    ] {
        let out = Command::new("setpriv")
            .args(["--bounding-set=-net_admin", "--inh-caps=-net_admin", bin])
            .args(&cmd)
            .arg("--netns")
            .arg(&p)
            .output()
            .expect("setpriv (util-linux) is needed");
        refused(&out, 1, "CAP_NET_ADMIN");
    }
    assert_eq!(tables(&ns), "");
}

#[test]
fn help_explains_every_command() {
    let out = trafficjam(&["--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["apply", "plan", "clear", "status"] {
        assert!(text.contains(cmd), "{text}");
    }
    let out = trafficjam(&["apply", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for opt in [
        "--subnet",
        "--whitelist-ip",
        "--allow-host-traffic",
        "--instance",
        "--netns",
        "ALLOW_HOST_TRAFFIC",
    ] {
        assert!(text.contains(opt), "{opt} missing from: {text}");
    }
}
