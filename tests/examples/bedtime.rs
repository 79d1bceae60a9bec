use trafficjam_testbed::*;
use std::time::Duration;
fn main() {
    let bin = "/work/main/target/debug/trafficjam";
    let s = scenario::Stage::build(Duration::from_secs(2)).unwrap();
    let mut args = vec!["apply"]; args.extend(POLICY_ARGS);
    s.bed.trafficjam(bin, &args);
    // A container attached after apply.
    let c = Netns::new("tjb3").unwrap();
    s.bed.host.ip_batch(&[format!("link add vb3 type veth peer name eth0 netns {}", c.name()), "link set vb3 master br-m up".into()]).unwrap();
    c.ip_batch(&["addr add 10.77.1.13/24 dev eth0".into(), "link set eth0 up".into()]).unwrap();
    let b3 = frame::mac_of(&c, "eth0").unwrap();
    // The host and the proxy know each other, and the proxy knows backend2.
    assert!(probe::tcp_connect(&s.bed.host, ip(addr::PROXY4), Duration::from_secs(1)));
    assert!(probe::tcp_connect(&s.bed.proxy, ip(addr::B2_4), Duration::from_secs(1)));
    let before_h = observe::neighbour_mac(&s.bed.host, "br-m", ip(addr::PROXY4)).unwrap();
    let before_p = observe::neighbour_mac(&s.bed.proxy, "eth0", ip(addr::B2_4)).unwrap();
    attack::send(&c, "eth0", &[attack::gratuitous_arp(b3, "10.77.1.10".parse().unwrap(), attack::ArpOp::Request),
        attack::gratuitous_arp(b3, "10.77.1.12".parse().unwrap(), attack::ArpOp::Request)]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let f = |m: Option<[u8;6]>| m.map(observe::format_mac);
    println!("attacker vb3 {}", observe::format_mac(b3));
    println!("host entry for proxy: before {:?} after {:?}", f(before_h), f(observe::neighbour_mac(&s.bed.host, "br-m", ip(addr::PROXY4)).unwrap()));
    println!("proxy entry for backend2: before {:?} after {:?}", f(before_p), f(observe::neighbour_mac(&s.bed.proxy, "eth0", ip(addr::B2_4)).unwrap()));
    println!("{}", s.bed.trafficjam(bin, &["status"]));
}
