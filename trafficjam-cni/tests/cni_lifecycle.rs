//! trafficjam-cni's lifecycle beyond the matrix: 20 parallel ADDs and DELs
//! on one bridge leave exactly the right state, CHECK catches missing and
//! altered rules, and every failure is a CNI error document.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;

use serde_json::{json, Value};
use trafficjam_testbed::cni::{result_addrs, Attach, Runtime};
use trafficjam_testbed::{require_root, Netns};

const PLUGIN: &str = env!("CARGO_BIN_EXE_trafficjam-cni");

fn network(rt: &Runtime, policy: &str) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": "tjlife",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "tjlife0",
                "isGateway": true,
                "ipMasq": false,
                "ipam": {
                    "type": "host-local",
                    "dataDir": rt.scratch("ipam").to_str().unwrap(),
                    "ranges": [[{"subnet": "10.92.0.0/24"}], [{"subnet": "fd92::/64"}]]
                }
            },
            {
                "type": "trafficjam",
                "ingressPolicy": policy,
                "dataDir": rt.scratch("trafficjam").to_str().unwrap()
            }
        ]
    })
}

/// The elements of a set of the runtime host's tables, as nft prints them.
fn set_elements(rt: &Runtime, family: &str, table: &str, set: &str) -> BTreeSet<String> {
    let out = rt
        .host
        .exec("nft", &["-j", "list", "set", family, table, set])
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o.get("set"))
        .flat_map(|s| s["elem"].as_array().cloned().unwrap_or_default())
        .map(|e| {
            e.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| e.to_string())
        })
        .collect()
}

fn state_members(rt: &Runtime) -> BTreeSet<String> {
    let path = rt
        .scratch("trafficjam")
        .join("bridges")
        .join("tjlife0.json");
    let Ok(bytes) = std::fs::read(path) else {
        return BTreeSet::new();
    };
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    v["members"].as_object().unwrap().keys().cloned().collect()
}

struct Member {
    id: String,
    ns: Netns,
    whitelisted: bool,
    addrs: Vec<IpAddr>,
}

fn args(whitelisted: bool) -> &'static str {
    if whitelisted {
        "IgnoreUnknown=1;TRAFFICJAM_WHITELIST=true"
    } else {
        "IgnoreUnknown=1"
    }
}

/// ADD every member in parallel (one thread each).
fn add_all(rt: &Runtime, net: &Value, members: &mut [Member]) {
    let results: Vec<Value> = std::thread::scope(|s| {
        let handles: Vec<_> = members
            .iter()
            .map(|m| s.spawn(|| rt.add(net, &m.id, &m.ns, args(m.whitelisted), &json!({}))))
            .collect();
        members
            .iter()
            .zip(handles)
            .map(|(m, h)| {
                h.join()
                    .unwrap()
                    .unwrap_or_else(|e| panic!("ADD {}: {e}", m.id))
            })
            .collect()
    });
    for (m, r) in members.iter_mut().zip(results) {
        m.addrs = result_addrs(&r);
    }
}

fn del_all(rt: &Runtime, net: &Value, members: &[Member]) {
    std::thread::scope(|s| {
        let handles: Vec<_> = members
            .iter()
            .map(|m| s.spawn(|| rt.del(net, &m.id, &m.ns, args(m.whitelisted), &json!({}))))
            .collect();
        for (m, h) in members.iter().zip(handles) {
            h.join()
                .unwrap()
                .unwrap_or_else(|e| panic!("DEL {}: {e}", m.id));
        }
    });
}

fn members(from: usize, to: usize) -> Vec<Member> {
    (from..to)
        .map(|i| Member {
            id: format!("tjlife-c{i}"),
            ns: Netns::new(&format!("tjlc{i}")).unwrap(),
            whitelisted: i % 4 == 0,
            addrs: Vec::new(),
        })
        .collect()
}

/// The kernel's whitelist and the state's members equal what `live` says.
fn assert_state(rt: &Runtime, live: &[&Member]) {
    let ids: BTreeSet<String> = live.iter().map(|m| format!("{}/eth0", m.id)).collect();
    assert_eq!(state_members(rt), ids, "state members");
    let want4: BTreeSet<String> = live
        .iter()
        .filter(|m| m.whitelisted)
        .flat_map(|m| {
            m.addrs
                .iter()
                .filter(|a| a.is_ipv4())
                .map(|a| a.to_string())
        })
        .collect();
    let want6: BTreeSet<String> = live
        .iter()
        .filter(|m| m.whitelisted)
        .flat_map(|m| {
            m.addrs
                .iter()
                .filter(|a| a.is_ipv6())
                .map(|a| a.to_string())
        })
        .collect();
    let t = "trafficjam-cni-tjlife0";
    assert_eq!(
        set_elements(rt, "inet", t, "whitelist4"),
        want4,
        "kernel whitelist4"
    );
    assert_eq!(
        set_elements(rt, "inet", t, "whitelist6"),
        want6,
        "kernel whitelist6"
    );
    // The bridge layer knows them by port: every live container's, the
    // whitelisted ones as proxies.
    assert_eq!(
        set_elements(rt, "bridge", t, "ports").len(),
        live.len(),
        "bridge ports"
    );
    assert_eq!(
        set_elements(rt, "bridge", t, "proxies").len(),
        live.iter().filter(|m| m.whitelisted).count(),
        "bridge proxies"
    );
}

#[test]
fn twenty_parallel_adds_and_dels_lose_no_update() {
    require_root();
    let rt = Runtime::new("tjlife", Path::new(PLUGIN)).unwrap();
    let net = network(&rt, "proxy-only");
    let mut first = members(0, 20);
    add_all(&rt, &net, &mut first);
    assert_state(&rt, &first.iter().collect::<Vec<_>>());

    // Ten leave while ten others arrive, all at once.
    let mut second = members(20, 30);
    let (leaving, staying) = first.split_at(10);
    std::thread::scope(|s| {
        s.spawn(|| del_all(&rt, &net, leaving));
        s.spawn(|| add_all(&rt, &net, &mut second));
    });
    let live: Vec<&Member> = staying.iter().chain(&second).collect();
    assert_state(&rt, &live);

    let rest: Vec<Member> = first.into_iter().skip(10).chain(second).collect();
    del_all(&rt, &net, &rest);
    let tables = rt.host.exec("nft", &["list", "tables"]).unwrap();
    let tables = String::from_utf8_lossy(&tables.stdout);
    assert!(!tables.contains("trafficjam"), "{tables}");
    assert!(state_members(&rt).is_empty());
}

#[test]
fn check_reports_missing_and_altered_rules() {
    require_root();
    let rt = Runtime::new("tjchk", Path::new(PLUGIN)).unwrap();
    let net = network(&rt, "same-bridge");
    let ns = Netns::new("tjchkc").unwrap();
    let result = rt.add(&net, "tjchk-c1", &ns, "", &json!({})).unwrap();
    let mut conf = net["plugins"][1].clone();
    conf["name"] = net["name"].clone();
    conf["cniVersion"] = net["cniVersion"].clone();
    conf["prevResult"] = result;
    let check = |id: &str| {
        rt.invoke(
            "trafficjam",
            "CHECK",
            &Attach {
                container: id,
                ns: &ns,
                cni_args: "",
            },
            &conf,
        )
    };
    check("tjchk-c1").expect("CHECK right after ADD");

    let e = check("tjchk-other").unwrap_err();
    assert_eq!(e.code(), Some(101), "{e}");
    assert!(e.msg().contains("not enrolled"), "{e}");

    rt.host
        .exec(
            "nft",
            &["flush", "chain", "inet", "trafficjam-cni", "forward"],
        )
        .unwrap();
    let e = check("tjchk-c1").unwrap_err();
    assert_eq!(e.code(), Some(101), "{e}");
    assert!(e.msg().contains("inet trafficjam-cni was altered"), "{e}");

    rt.host
        .exec("nft", &["delete", "table", "inet", "trafficjam-cni"])
        .unwrap();
    let e = check("tjchk-c1").unwrap_err();
    assert!(e.msg().contains("inet trafficjam-cni is missing"), "{e}");

    // ADD again (as a runtime retrying would) restores them; an element
    // deleted by hand is an alteration too.
    rt.invoke(
        "trafficjam",
        "ADD",
        &Attach {
            container: "tjchk-c1",
            ns: &ns,
            cni_args: "",
        },
        &conf,
    )
    .unwrap();
    check("tjchk-c1").expect("ADD restores the rules");
    rt.host
        .exec(
            "nft",
            &[
                "delete",
                "element",
                "inet",
                "trafficjam-cni",
                "bridges",
                "{ \"tjlife0\" }",
            ],
        )
        .unwrap();
    assert_eq!(check("tjchk-c1").unwrap_err().code(), Some(101));

    rt.del(&net, "tjchk-c1", &ns, "", &json!({})).unwrap();
    // DEL of what is not there (any more) succeeds, as the spec asks.
    rt.del(&net, "tjchk-c1", &ns, "", &json!({})).unwrap();
}

#[test]
fn failures_are_cni_error_documents() {
    require_root();
    let rt = Runtime::new("tjerr", Path::new(PLUGIN)).unwrap();
    let ns = Netns::new("tjerrc").unwrap();
    let data = rt.scratch("trafficjam");
    let base = json!({"cniVersion": "1.0.0", "name": "n", "type": "trafficjam", "dataDir": data});
    let prev = json!({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "tjerr0"}, {"name": "veth0"}, {"name": "eth0", "sandbox": "/x"}],
        "ips": [{"address": "10.93.0.5/24", "interface": 2}]
    });
    let call = |cmd: &str, conf: &Value| {
        rt.invoke(
            "trafficjam",
            cmd,
            &Attach {
                container: "c1",
                ns: &ns,
                cni_args: "",
            },
            conf,
        )
    };

    let v = call("VERSION", &json!({})).unwrap().unwrap();
    assert_eq!(
        v["supportedVersions"],
        json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0"])
    );

    let cases: Vec<(&str, Value, u64, &str)> = vec![
        ("ADD", base.clone(), 7, "chained plugin"),
        (
            "ADD",
            json!({"cniVersion": "0.2.0", "name": "n", "type": "trafficjam"}),
            1,
            "incompatible CNI version",
        ),
        (
            "ADD",
            {
                let mut c = base.clone();
                c["ingressPolicy"] = json!("open");
                c["prevResult"] = prev.clone();
                c
            },
            7,
            "ingressPolicy \"open\"",
        ),
        (
            "CHECK",
            {
                let mut c = base.clone();
                c["cniVersion"] = json!("0.3.1");
                c["prevResult"] = prev.clone();
                c
            },
            1,
            "CHECK needs 0.4.0",
        ),
        ("GC", base.clone(), 4, "CNI_COMMAND \"GC\""),
    ];
    for (cmd, conf, code, needle) in cases {
        let e = call(cmd, &conf).unwrap_err();
        assert_eq!(e.status, Some(1), "{e}");
        let doc = e
            .document
            .as_ref()
            .unwrap_or_else(|| panic!("no error document: {e}"));
        assert_eq!(doc["code"], json!(code), "{cmd} {conf}: {doc}");
        assert!(doc["msg"].as_str().unwrap().contains(needle), "{doc}");
        assert!(
            doc.get("details").is_some() && doc["cniVersion"].is_string(),
            "{doc}"
        );
    }

    // Two networks on one bridge must agree on the policy.
    let mut conf = base.clone();
    conf["prevResult"] = prev.clone();
    call("ADD", &conf).expect("first ADD");
    conf["ingressPolicy"] = json!("isolated");
    let e = rt
        .invoke(
            "trafficjam",
            "ADD",
            &Attach {
                container: "c2",
                ns: &ns,
                cni_args: "",
            },
            &conf,
        )
        .unwrap_err();
    assert_eq!(e.code(), Some(7));
    assert!(e.msg().contains("already has containers"), "{e}");
    conf["ingressPolicy"] = json!("same-bridge");
    call("DEL", &conf).unwrap();
}

#[test]
fn without_cap_net_admin_the_error_says_so() {
    require_root();
    let dir = std::env::temp_dir().join(format!("tjcap-{}", std::process::id()));
    let conf = json!({
        "cniVersion": "1.0.0", "name": "n", "type": "trafficjam", "dataDir": dir,
        "prevResult": {
            "interfaces": [{"name": "tjcap0"}, {"name": "eth0", "sandbox": "/x"}],
            "ips": [{"address": "10.94.0.5/24", "interface": 1}]
        }
    });
    let ns = Netns::new("tjcap").unwrap();
    let mut child = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            ns.name(),
            "setpriv",
            "--bounding-set=-net_admin",
            "--",
            PLUGIN,
        ])
        .env("CNI_COMMAND", "ADD")
        .env("CNI_CONTAINERID", "c1")
        .env("CNI_IFNAME", "eth0")
        .env("CNI_NETNS", ns.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(conf.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(1));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["code"], json!(100), "{doc}");
    assert!(
        doc["msg"].as_str().unwrap().contains("CAP_NET_ADMIN"),
        "{doc}"
    );
}

/// Spec versions 0.3.1 and 0.4.0 as well as 1.0.0: the result of the
/// chain is the bridge plugin's, passed through in the network's version;
/// CHECK exists from 0.4.0 on; DEL cleans up in every version.
#[test]
fn older_spec_versions_pass_the_result_through() {
    require_root();
    for version in ["0.3.1", "0.4.0"] {
        let rt = Runtime::new("tjver", Path::new(PLUGIN)).unwrap();
        let mut net = network(&rt, "same-bridge");
        net["cniVersion"] = json!(version);
        let ns = Netns::new("tjverc").unwrap();
        let result = rt
            .add(&net, "tjver-c1", &ns, "", &json!({}))
            .unwrap_or_else(|e| panic!("{version}: {e}"));
        assert_eq!(result["cniVersion"], json!(version), "{result}");
        let names: Vec<&str> = result["interfaces"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|i| i["name"].as_str())
            .collect();
        assert!(
            names.contains(&"tjlife0") && names.contains(&"eth0"),
            "{result}"
        );
        assert_eq!(result_addrs(&result).len(), 2, "{result}");
        if version == "0.3.1" {
            // 0.3.x results carry the address family: passed through as is.
            assert!(result["ips"][0].get("version").is_some(), "{result}");
        } else {
            rt.check(&net, "tjver-c1", &ns, "", &json!({}))
                .unwrap_or_else(|e| panic!("{version} CHECK: {e}"));
        }
        let tables = rt.host.exec("nft", &["list", "tables"]).unwrap();
        assert!(String::from_utf8_lossy(&tables.stdout).contains("inet trafficjam-cni"));
        rt.del(&net, "tjver-c1", &ns, "", &json!({})).unwrap();
        let tables = rt.host.exec("nft", &["list", "tables"]).unwrap();
        assert!(
            !String::from_utf8_lossy(&tables.stdout).contains("trafficjam"),
            "{version}"
        );
    }
}
