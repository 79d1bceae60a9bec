//! trafficjam-netlink (work in progress)
