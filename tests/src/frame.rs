//! Forged frames for the spoofing tests: Ethernet + IPv4/IPv6 + UDP,
//! written straight to an interface with an `AF_PACKET` socket from inside
//! a namespace (as a compromised container with CAP_NET_RAW could).

use std::io;
use std::net::IpAddr;

use crate::Netns;

/// A MAC address.
pub type Mac = [u8; 6];

/// The MAC address of `ifname` in `ns`.
pub fn mac_of(ns: &Netns, ifname: &str) -> io::Result<Mac> {
    let out = ns.iproute2("ip", &["-o", "link", "show", ifname])?;
    let text = String::from_utf8_lossy(&out.stdout);
    let hex = text
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .ok_or_else(|| io::Error::other(format!("no MAC address on {ifname}")))?;
    let mut mac = [0u8; 6];
    for (i, part) in hex.split(':').enumerate().take(6) {
        mac[i] = u8::from_str_radix(part, 16).map_err(io::Error::other)?;
    }
    Ok(mac)
}

fn checksum(data: &[u8], initial: u32) -> u16 {
    let mut sum = initial;
    for chunk in data.chunks(2) {
        let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet frame carrying a UDP datagram from `src` to `dst`.
pub fn udp_frame(
    src_mac: Mac,
    dst_mac: Mac,
    src: IpAddr,
    dst: IpAddr,
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut udp = Vec::new();
    udp.extend_from_slice(&40000u16.to_be_bytes());
    udp.extend_from_slice(&dport.to_be_bytes());
    udp.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    let mut frame = Vec::new();
    frame.extend_from_slice(&dst_mac);
    frame.extend_from_slice(&src_mac);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            frame.extend_from_slice(&0x0800u16.to_be_bytes());
            let mut ip = vec![0x45, 0];
            ip.extend_from_slice(&((20 + udp.len()) as u16).to_be_bytes());
            ip.extend_from_slice(&[0, 1, 0x40, 0, 64, 17, 0, 0]);
            ip.extend_from_slice(&s.octets());
            ip.extend_from_slice(&d.octets());
            let c = checksum(&ip, 0);
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            frame.extend(ip);
            frame.extend(udp); // UDP checksum 0: none, allowed over IPv4
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            frame.extend_from_slice(&0x86ddu16.to_be_bytes());
            // The UDP checksum is mandatory over IPv6 (pseudo-header).
            let mut pseudo = Vec::new();
            pseudo.extend_from_slice(&s.octets());
            pseudo.extend_from_slice(&d.octets());
            pseudo.extend_from_slice(&(udp.len() as u32).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, 17]);
            pseudo.extend_from_slice(&udp);
            let c = checksum(&pseudo, 0);
            udp[6..8].copy_from_slice(&c.to_be_bytes());
            frame.extend_from_slice(&[0x60, 0, 0, 0]);
            frame.extend_from_slice(&(udp.len() as u16).to_be_bytes());
            frame.extend_from_slice(&[17, 64]);
            frame.extend_from_slice(&s.octets());
            frame.extend_from_slice(&d.octets());
            frame.extend(udp);
        }
        _ => panic!("source and destination of different families"),
    }
    frame
}

/// Write `frame` to `ifname` inside `ns`, bypassing the IP stack.
pub fn send_frame(ns: &Netns, ifname: &str, frame: Vec<u8>) -> io::Result<()> {
    let ifname = std::ffi::CString::new(ifname).map_err(io::Error::other)?;
    ns.run(move || -> io::Result<()> {
        // SAFETY: plain libc calls with a valid sockaddr_ll and buffer; the
        // socket is closed before returning.
        unsafe {
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            let index = libc::if_nametoindex(ifname.as_ptr());
            let mut addr: libc::sockaddr_ll = std::mem::zeroed();
            addr.sll_family = libc::AF_PACKET as u16;
            addr.sll_ifindex = index as i32;
            addr.sll_halen = 6;
            let sent = libc::sendto(
                fd,
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            );
            let err = io::Error::last_os_error();
            libc::close(fd);
            if sent < 0 {
                return Err(err);
            }
        }
        Ok(())
    })?
}
