//! A bridge's port cache kept from link notifications alone, against the
//! kernel: through every step of a veth's life on a bridge (plugged in,
//! its peer moved into a container and given its MAC, taken off the
//! bridge and put back, deleted), the cache equals a whole read of the
//! bridge. The cache takes an interface's own notification as its state
//! and reads only the peer; this is the proof that nothing is missed.

use std::collections::HashSet;
use std::time::Duration;

use trafficjam_docker::ports::{concerns, PortCache};
use trafficjam_netlink::RouteSocket;
use trafficjam_testbed::{require_root, Netns};

struct Bed {
    host: Netns,
    container: Netns,
    route: RouteSocket,
    watch: RouteSocket,
    cache: PortCache,
}

impl Bed {
    fn new() -> Bed {
        require_root();
        let host = Netns::new("tj-ports").expect("host namespace");
        let container = Netns::new("tj-ports-c").expect("container namespace");
        // As Docker makes its bridges: with a MAC of its own (else the
        // bridge takes its ports' and is notified as each comes), and a
        // port that stays up, so the bridge's carrier does not change with
        // the port under test (that too would be notified of the bridge).
        host.ip(&[
            "link",
            "add",
            "br0",
            "address",
            "02:42:0a:00:00:01",
            "type",
            "bridge",
        ])
        .unwrap();
        host.ip(&["link", "add", "vk", "type", "veth", "peer", "name", "vk1"])
            .unwrap();
        for dev in ["br0", "vk", "vk1"] {
            host.ip(&["link", "set", dev, "up"]).unwrap();
        }
        host.ip(&["link", "set", "vk", "master", "br0"]).unwrap();
        let mut route = RouteSocket::open_in(Some(&host.path())).expect("rtnetlink socket");
        let mut watch = RouteSocket::open_in(Some(&host.path())).expect("rtnetlink socket");
        watch.watch_links().expect("join RTNLGRP_LINK");
        let cache = PortCache::read(&mut route, "br0").expect("read the bridge");
        assert!(cache.index.is_some(), "the bridge is read");
        assert_eq!(cache.ports().len(), 1, "the port that stays");
        Bed {
            host,
            container,
            route,
            watch,
            cache,
        }
    }

    /// Feed the cache what was notified (until 300 ms pass without any),
    /// passed on as the daemon does; `settled` is what the daemon says of
    /// every port (bound, or not yet). Returns how many notifications
    /// were passed on.
    fn follow(&mut self, settled: bool) -> usize {
        let bridges: HashSet<u32> = self.cache.index.into_iter().collect();
        let mut passed = 0;
        loop {
            let changes = self
                .watch
                .link_changes(Some(Duration::from_millis(300)))
                .expect("no notification lost");
            if changes.is_empty() {
                return passed;
            }
            for c in changes.iter().filter(|c| concerns(c, &bridges)) {
                passed += 1;
                let r = self.cache.link_changed(&mut self.route, c, |_| settled);
                assert!(
                    r.is_some(),
                    "a port's notification taken for the bridge's: {c:?}"
                );
            }
        }
    }

    /// The port under test, as cached.
    fn port(&self) -> &trafficjam_netlink::BridgePort {
        self.cache
            .ports()
            .iter()
            .find(|p| p.name != "vk")
            .expect("the port under test is cached")
    }

    /// The cache is what a whole read of the bridge gives now.
    fn check(&mut self, step: &str) {
        let read = PortCache::read(&mut self.route, "br0").expect("read the bridge");
        assert_eq!(self.cache.index, read.index, "{step}: the bridge");
        assert_eq!(self.cache.ports(), read.ports(), "{step}: the ports");
    }
}

const MAC: [u8; 6] = [0x02, 0x42, 0x0a, 0x00, 0x00, 0x05];

#[test]
fn ports_followed_from_notifications_equal_a_whole_read() {
    let mut bed = Bed::new();
    let c = bed.container.name().to_string();
    bed.host
        .ip(&["link", "add", "vp", "type", "veth", "peer", "name", "eth0"])
        .unwrap();
    bed.follow(false);
    bed.check("veth made");
    assert_eq!(bed.cache.ports().len(), 1, "not a port yet");

    bed.host
        .ip(&["link", "set", "vp", "master", "br0"])
        .unwrap();
    assert!(bed.follow(false) > 0, "plugging in is notified");
    bed.check("plugged in");
    assert_eq!(bed.cache.ports().len(), 2);
    assert!(
        bed.port().peer_mac.is_some(),
        "the peer's MAC, read in this namespace"
    );

    bed.host.ip(&["link", "set", "eth0", "netns", &c]).unwrap();
    bed.follow(false);
    bed.check("peer moved into the container");

    // The MAC is set inside the container (nothing is notified here); the
    // peer coming up is, and the cache reads the peer then.
    bed.container
        .ip(&["link", "set", "eth0", "address", "02:42:0a:00:00:05"])
        .unwrap();
    bed.container.ip(&["link", "set", "eth0", "up"]).unwrap();
    bed.host.ip(&["link", "set", "vp", "up"]).unwrap();
    bed.follow(false);
    bed.check("peer up with its MAC");
    assert_eq!(bed.port().peer_mac, Some(MAC));

    // Bound from here on: notifications that change nothing are not read,
    // and those that do still are.
    bed.host.ip(&["link", "set", "vp", "down"]).unwrap();
    bed.host.ip(&["link", "set", "vp", "up"]).unwrap();
    bed.follow(true);
    bed.check("carrier lost and back");

    bed.host.ip(&["link", "set", "vp", "nomaster"]).unwrap();
    bed.follow(true);
    bed.check("taken off the bridge");
    assert_eq!(bed.cache.ports().len(), 1, "taken off");

    bed.host
        .ip(&["link", "set", "vp", "master", "br0"])
        .unwrap();
    bed.follow(true);
    bed.check("put back");
    assert_eq!(bed.cache.ports().len(), 2);
    assert_eq!(bed.port().peer_mac, Some(MAC));

    bed.host.ip(&["link", "set", "vp", "name", "vq"]).unwrap();
    bed.follow(true);
    bed.check("renamed");
    assert!(bed.cache.ports().iter().any(|p| p.name == "vq"), "renamed");

    // The container's end deleted takes the port with it.
    bed.container.ip(&["link", "del", "eth0"]).unwrap();
    bed.follow(true);
    bed.check("deleted");
    assert_eq!(bed.cache.ports().len(), 1, "deleted");
}
