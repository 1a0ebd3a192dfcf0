//! The whole stack in simulation, without DPDK: reliable connections over the network interface
//! (`net::Interface` + `channel::link::UdpLink`), exchanging Ethernet frames on `VecBuf`s. The peers
//! know nothing of each other's MAC: ARP resolves them (the first request is lost, so it is retried).
//! Every frame on the wire is checked to be well-formed Ethernet + ARP or Ethernet/IPv4/UDP with
//! verifying checksums.

use core::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use rosette_proto::buf::{PacketBuf, VecBuf, VecPool};
use rosette_proto::channel::conn;
use rosette_proto::channel::link::UdpLink;
use rosette_proto::channel::reliable::{self, Reliable};
use rosette_proto::channel::time::Instant;
use rosette_proto::net;
use rosette_proto::wire::{arp, ethernet, ipv4, udp};

const MAC_A: ethernet::Address = ethernet::Address([2, 0, 0, 0, 1, 1]);
const MAC_B: ethernet::Address = ethernet::Address([2, 0, 0, 0, 1, 2]);
const IP_A: Ipv4Addr = Ipv4Addr::new(10, 55, 0, 1);
const IP_B: Ipv4Addr = Ipv4Addr::new(10, 55, 0, 2);
const PORT: u16 = 7000;

fn link(mac: ethernet::Address, ip: Ipv4Addr, peer: Ipv4Addr) -> UdpLink<VecPool> {
    let mut cfg = net::Config::new(mac, ip, &[PORT]);
    cfg.arp_retry_interval = Duration::from_millis(10);
    cfg.first_ident = 100;
    UdpLink::new(cfg, VecPool::default(), SocketAddrV4::new(peer, PORT))
}

#[derive(Default)]
struct Wire {
    arp: u64,
    udp: u64,
    idents: Vec<u16>,
}

impl Wire {
    /// Checks one frame from `src` the way a receiver on the wire would.
    fn check(&mut self, frame: &[u8], src: ethernet::Address, src_ip: Ipv4Addr) {
        let eth = ethernet::Packet::new_checked(frame).expect("Ethernet header");
        assert_eq!(eth.src_addr(), src);
        match eth.ethertype() {
            ethernet::EtherType::Arp => {
                let repr = arp::Repr::parse(&arp::Packet::new_checked(eth.payload()).unwrap()).unwrap();
                assert_eq!((repr.source_hardware_addr, repr.source_protocol_addr), (src, src_ip));
                self.arp += 1;
            }
            ethernet::EtherType::Ipv4 => {
                assert_ne!(eth.dst_addr(), ethernet::Address::default(), "unresolved frame left");
                let ip = ipv4::Packet::new_checked(eth.payload()).unwrap();
                let ip_repr = ipv4::Repr::parse(&ip).expect("IPv4 header checksum");
                assert_eq!((ip_repr.ttl, ip_repr.dont_frag, ip_repr.src_addr), (64, true, src_ip));
                let u = udp::Packet::new_checked(ip.payload()).unwrap();
                udp::Repr::parse(&u, ip_repr.src_addr, ip_repr.dst_addr).expect("UDP checksum");
                assert_ne!(u.checksum(), 0, "the writer always computes the UDP checksum");
                self.idents.push(ip_repr.ident);
                self.udp += 1;
            }
            other => panic!("unexpected EtherType {other:?}"),
        }
    }
}

#[test]
fn reliable_runs_over_the_interface_end_to_end() {
    let mut now = Instant::from_secs(1);
    let cfg = conn::Config::default();
    let mut a = Reliable::connect(cfg.clone(), VecPool::default(), 1, 1, now);
    let mut b = Reliable::listen(cfg, VecPool::default(), 2, 1, now);
    let (mut la, mut lb) = (link(MAC_A, IP_A, IP_B), link(MAC_B, IP_B, IP_A));
    let (mut wire_a, mut wire_b) = (Wire::default(), Wire::default());

    let msgs: Vec<Vec<u8>> =
        (0..300u32).map(|i| (0..(i * 37 % 3000) as usize).map(|j| (i + j as u32) as u8).collect()).collect();
    let mut next = 0;
    let mut got: Vec<Vec<u8>> = Vec::new();
    let mut lost_first = false;
    let step = Duration::from_micros(50);
    let deadline = now + Duration::from_secs(10);
    while got.len() < msgs.len() {
        assert!(now < deadline, "stalled: {} of {} delivered; a {:?}", got.len(), msgs.len(), la.interface().stats());
        while next < msgs.len() && a.send(now, &msgs[next]).is_ok() {
            next += 1;
        }
        la.advance(&mut a, now);
        let mut frames: Vec<VecBuf> = Vec::new();
        la.transmit(&mut a, now, &mut frames);
        for f in frames {
            wire_a.check(f.data(), MAC_A, IP_A);
            if !lost_first {
                // The first frame (A's ARP request for B) is lost: ARP must retry.
                lost_first = true;
                continue;
            }
            let _ = lb.receive(now, f);
        }
        lb.advance(&mut b, now);
        let mut frames: Vec<VecBuf> = Vec::new();
        lb.transmit(&mut b, now, &mut frames);
        for f in frames {
            wire_b.check(f.data(), MAC_B, IP_B);
            let _ = la.receive(now, f);
        }
        while let Some(ev) = b.poll_event() {
            match ev {
                reliable::Event::Message(m) => {
                    let mut v = Vec::new();
                    m.copy_to(&mut v);
                    got.push(v);
                }
                reliable::Event::Messages(p) => got.extend(p.iter().map(<[u8]>::to_vec)),
                reliable::Event::Connected => {}
                other => panic!("receiver event {other:?}"),
            }
        }
        while a.poll_event().is_some() {}
        now += step;
    }
    assert!(got == msgs, "messages delivered out of order or damaged");

    // ARP: A asked twice (the first request was lost), B answered; B learnt A from A's request.
    let (sa, sb) = (la.interface().stats(), lb.interface().stats());
    assert_eq!(sa.arp_requests_sent, 2, "{sa:?}");
    assert_eq!(sb.arp_replies_sent, 1, "{sb:?}");
    assert_eq!(sb.arp_requests_sent, 0, "B resolved A from its request");
    assert_eq!(la.interface().arp_lookup(now, IP_B), Some(MAC_B));
    // Every frame was accounted for; nothing was dropped on receive.
    for s in [sa, sb] {
        assert_eq!(s.rx_drops.total(), 0, "{s:?}");
        assert_eq!(s.received, s.delivered + s.arp_handled);
    }
    // Data went out framed in place (the usual path), and the IP ids of each side count up by one.
    assert!(la.stats().framed > 0);
    assert_eq!(la.stats().foreign + lb.stats().foreign, 0);
    for w in [&wire_a, &wire_b] {
        for pair in w.idents.windows(2) {
            assert_eq!(pair[1], pair[0].wrapping_add(1));
        }
        assert_eq!(w.idents[0], 100);
    }
    assert_eq!(wire_a.arp, 2);
    assert!(wire_a.udp as usize >= msgs.len() / 4);
}
