//! The whole stack in simulation, without DPDK: reliable connections over the network interface
//! (`net::Interface` + `channel::link::UdpLink`), exchanging Ethernet frames on `VecBuf`s. The peers
//! know nothing of each other's MAC: ARP resolves them (the first request is lost, so it is retried).
//! Every frame on the wire is checked to be well-formed Ethernet + ARP or Ethernet/IPv4/UDP with
//! verifying checksums.

use core::net::{Ipv4Addr, SocketAddrV4};
use std::rc::Rc;
use std::time::Duration;

use rosette_proto::buf::{BufError, BufPool, PacketBuf, VecBuf, VecPool};
use rosette_proto::channel::conn;
use rosette_proto::channel::link::{LinkStats, UdpLink};
use rosette_proto::channel::reliable::{self, Reliable};
use rosette_proto::channel::time::Instant;
use rosette_proto::net;
use rosette_proto::wire::{arp, ethernet, ipv4, udp};

const MAC_A: ethernet::Address = ethernet::Address([2, 0, 0, 0, 1, 1]);
const MAC_B: ethernet::Address = ethernet::Address([2, 0, 0, 0, 1, 2]);
const IP_A: Ipv4Addr = Ipv4Addr::new(10, 55, 0, 1);
const IP_B: Ipv4Addr = Ipv4Addr::new(10, 55, 0, 2);
const PORT: u16 = 7000;

fn link<P: BufPool>(mac: ethernet::Address, ip: Ipv4Addr, peer: Ipv4Addr, pool: P) -> UdpLink<P> {
    let mut cfg = net::Config::new(mac, ip, &[PORT]);
    cfg.arp_retry_interval = Duration::from_millis(10);
    cfg.first_ident = 100;
    UdpLink::new(cfg, pool, SocketAddrV4::new(peer, PORT))
}

/// A buffer whose `share` is a second handle to the same bytes, as an mbuf's reference count: while
/// shared, its bytes cannot be written (headers cannot be prepended). Adjusting a shared handle copies
/// it first, so each handle keeps its own view of the bytes.
#[derive(Debug)]
struct RcBuf(Rc<VecBuf>);

impl PacketBuf for RcBuf {
    fn data(&self) -> &[u8] {
        self.0.data()
    }
    fn data_mut(&mut self) -> &mut [u8] {
        match Rc::get_mut(&mut self.0) {
            Some(b) => b.data_mut(),
            None => &mut [],
        }
    }
    fn headroom(&self) -> usize {
        self.0.headroom()
    }
    fn tailroom(&self) -> usize {
        self.0.tailroom()
    }
    fn prepend(&mut self, n: usize) -> Result<&mut [u8], BufError> {
        Rc::get_mut(&mut self.0).ok_or(BufError::Shared)?.prepend(n)
    }
    fn append(&mut self, n: usize) -> Result<&mut [u8], BufError> {
        Rc::get_mut(&mut self.0).ok_or(BufError::Shared)?.append(n)
    }
    fn adjust(&mut self, n: usize) -> Result<(), BufError> {
        Rc::make_mut(&mut self.0).adjust(n)
    }
    fn trim(&mut self, n: usize) -> Result<(), BufError> {
        Rc::make_mut(&mut self.0).trim(n)
    }
    fn share(&self) -> Option<Self> {
        Some(RcBuf(Rc::clone(&self.0)))
    }
    fn is_shared(&self) -> bool {
        Rc::strong_count(&self.0) > 1
    }
    /// A chain of the bytes behind both handles; a shared tail is cloned (the test pays a copy an mbuf
    /// chain would not).
    fn chain(self, tail: Self) -> Result<Self, (Self, Self)> {
        let head = Rc::try_unwrap(self.0).unwrap_or_else(|rc| (*rc).clone());
        let rest = Rc::try_unwrap(tail.0).unwrap_or_else(|rc| (*rc).clone());
        match head.chain(rest) {
            Ok(c) => Ok(RcBuf(Rc::new(c))),
            Err((h, t)) => Err((RcBuf(Rc::new(h)), RcBuf(Rc::new(t)))),
        }
    }
    fn segment_count(&self) -> usize {
        self.0.segment_count()
    }
    fn segment(&self, index: usize) -> Option<&[u8]> {
        self.0.segment(index)
    }
    fn total_len(&self) -> usize {
        self.0.total_len()
    }
    fn split_first(self) -> Result<(Self, Option<Self>), Self> {
        match Rc::try_unwrap(self.0) {
            Ok(b) => match b.split_first() {
                Ok((first, rest)) => Ok((RcBuf(Rc::new(first)), rest.map(|r| RcBuf(Rc::new(r))))),
                Err(b) => Err(RcBuf(Rc::new(b))),
            },
            Err(rc) => Err(RcBuf(rc)),
        }
    }
}

/// What a NIC does with a chained frame on transmit: the receiver sees one contiguous frame.
fn gather<P: BufPool>(frame: P::Buf, pool: &mut P) -> P::Buf {
    if frame.segment_count() == 1 {
        return frame;
    }
    let mut flat = pool.alloc().expect("a wire buffer");
    let mut at = 0;
    let room = flat.append(frame.total_len()).expect("room for the frame");
    let mut i = 0;
    while let Some(seg) = frame.segment(i) {
        room[at..at + seg.len()].copy_from_slice(seg);
        at += seg.len();
        i += 1;
    }
    flat
}

/// [`RcBuf`]s with `headroom` bytes in front.
struct RcPool {
    headroom: usize,
}

impl BufPool for RcPool {
    type Buf = RcBuf;
    fn alloc(&mut self) -> Option<RcBuf> {
        Some(RcBuf(Rc::new(VecBuf::with_capacity(2048 + self.headroom, self.headroom))))
    }
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

/// Counters of both ends after a run.
struct Outcome {
    a: (net::Stats, LinkStats),
    b: (net::Stats, LinkStats),
    wire_a: Wire,
    wire_b: Wire,
    messages: usize,
}

/// Sends 300 messages from A to B over two links; A's connection takes buffers from `conn_pool_a`,
/// everything else from `pool()`. The first frame A sends (its ARP request) is lost.
fn run<P: BufPool>(conn_pool_a: P, pool: impl Fn() -> P) -> Outcome
where
    P::Buf: core::fmt::Debug,
{
    let mut now = Instant::from_secs(1);
    let cfg = conn::Config::default();
    let mut a = Reliable::connect(cfg.clone(), conn_pool_a, 1, 1, now);
    let mut b = Reliable::listen(cfg, pool(), 2, 1, now);
    let (mut la, mut lb) = (link(MAC_A, IP_A, IP_B, pool()), link(MAC_B, IP_B, IP_A, pool()));
    let (mut wire_a, mut wire_b) = (Wire::default(), Wire::default());
    let mut wire_pool = pool();

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
        let mut frames: Vec<P::Buf> = Vec::new();
        la.transmit(&mut a, now, &mut frames);
        for f in frames {
            let f = gather(f, &mut wire_pool);
            wire_a.check(f.data(), MAC_A, IP_A);
            if !lost_first {
                // The first frame (A's ARP request for B) is lost: ARP must retry.
                lost_first = true;
                continue;
            }
            let _ = lb.receive(now, f);
        }
        lb.advance(&mut b, now);
        let mut frames: Vec<P::Buf> = Vec::new();
        lb.transmit(&mut b, now, &mut frames);
        for f in frames {
            let f = gather(f, &mut wire_pool);
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
    assert_eq!(la.interface().arp_lookup(now, IP_B), Some(MAC_B));
    Outcome {
        a: (la.interface().stats().clone(), la.stats()),
        b: (lb.interface().stats().clone(), lb.stats()),
        wire_a,
        wire_b,
        messages: msgs.len(),
    }
}

fn check_common(o: &Outcome) {
    let ((sa, _), (sb, _)) = (&o.a, &o.b);
    // ARP: A asked twice (the first request was lost), B answered; B learnt A from A's request.
    assert_eq!(sa.arp_requests_sent, 2, "{sa:?}");
    assert_eq!(sb.arp_replies_sent, 1, "{sb:?}");
    assert_eq!(sb.arp_requests_sent, 0, "B resolved A from its request");
    // Every frame was accounted for; nothing was dropped on receive.
    for s in [sa, sb] {
        assert_eq!(s.rx_drops.total(), 0, "{s:?}");
        assert_eq!(s.received, s.delivered + s.arp_handled);
    }
    assert_eq!(o.a.1.foreign + o.b.1.foreign, 0);
    // The IP ids of each side count up by one from the configured first value.
    for w in [&o.wire_a, &o.wire_b] {
        for pair in w.idents.windows(2) {
            assert_eq!(pair[1], pair[0].wrapping_add(1));
        }
        assert_eq!(w.idents[0], 100);
    }
    assert_eq!(o.wire_a.arp, 2);
    assert!(o.wire_a.udp as usize >= o.messages / 4);
    assert!(o.wire_b.udp > 0);
}

#[test]
fn reliable_runs_over_the_interface_end_to_end() {
    let o = run(VecPool::default(), VecPool::default);
    check_common(&o);
    // Data went out framed in place (the usual path).
    assert!(o.a.1.framed > 0);
}

/// With buffers that are really shared while the connection keeps them, and no headroom in A's
/// connection buffers, every data packet goes out behind a separate header (chained) once the peer is
/// resolved, and is copied once while it is not.
#[test]
fn shared_packets_without_headroom_go_out_behind_a_header() {
    let o = run(RcPool { headroom: 0 }, || RcPool { headroom: 128 });
    check_common(&o);
    let (sa, la) = &o.a;
    assert_eq!(la.framed, 0, "{la:?}");
    assert!(la.chained as usize >= o.messages / 4, "{la:?}");
    assert!(la.copied > 0, "the handshake waited for ARP: {la:?}");
    assert!(sa.framed >= la.chained);
}
