//! Fuzz target: a connection table listening (`UdpMux<Reliable<VecPool>>`), with a dialer table
//! opening a few genuine connections to it through their interfaces, and a third host (plus
//! packets spoofing the dialer's address) sending what the input says: repaired garbage frames,
//! forged Syns with correct CRC (with the protocol's initial sequence number or not), forged
//! packets with guessed cookies, handshakes completed with cookies the third host was really sent,
//! replays of captured genuine frames, mutations of them (CRC fixed), loss, duplication, reordering,
//! bounded transmit bursts and time jumps.
//!
//! Input: records `[op][len: u8][len bytes]` (channel_common's `Records`).
//!
//! Invariants checked after every record:
//! - no panic; neither table ever holds more than its `max_connections`;
//! - every frame either table transmits is well-formed (frames.rs `check_transmitted` for the
//!   listener);
//! - an injected packet that made the listener's table grow carried, as its destination id, a
//!   cookie the listener sent in a SynAck (the cookie key is derived from the whole input, so the
//!   fuzzer cannot learn it from comparisons and reuse it);
//! - while no packet was injected that a genuine connection could take as its own (a parsing,
//!   altered packet from the dialer's address and port), every connection the listener accepted
//!   delivers one dialer connection's messages, from its first, exactly once, in order, intact,
//!   and only messages that were sent.
#![no_main]

#[path = "channel_common.rs"]
mod channel_common;
#[path = "../common/frames.rs"]
mod frames;
#[path = "../common/oracle.rs"]
mod oracle;

use std::collections::{HashMap, HashSet, VecDeque};

use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;

use channel_common::{config, mutate, pool, Records};
use frames::{check_transmitted, repair, ADDR, MAC, PORTS};
use libfuzzer_sys::fuzz_target;
use rosette_proto::buf::{BufPool, PacketBuf, VecBuf, VecPool};
use rosette_proto::channel::link::FrameSink;
use rosette_proto::channel::mux::{ConnHandle, MuxConfig, UdpMux};
use rosette_proto::channel::reliable::{Event, Reliable};
use rosette_proto::channel::time::Instant;
use rosette_proto::net;
use rosette_proto::wire::ethernet;
use rosette_proto::wire::transport::{Packet, PacketType, Repr, HEADER_LEN};

type Rel = Reliable<VecPool>;

const DIALER_MAC: ethernet::Address = ethernet::Address([2, 0, 0, 0, 0, 0x0b]);
const DIALER_IP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
const DIALER_PORT: u16 = 9100;
const FORGER_MAC: ethernet::Address = ethernet::Address([2, 0, 0, 0, 0, 0x0c]);
const FORGER_IP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 3);
const FORGER_PORTS: [u16; 4] = [20000, 20001, 20002, 20003];
/// Offset of the transport header in a frame built by an interface (Ethernet, IPv4 without
/// options, UDP).
const TRANSPORT_AT: usize = 42;

const LISTEN_MAX: usize = 4;
const DIAL_MAX: usize = 3;
const MAX_QUEUE: usize = 64;
const MAX_CAPTURED: usize = 32;
const MAX_MESSAGES: u32 = 2_000;

fn net_config(mac: ethernet::Address, ip: Ipv4Addr, ports: &[u16]) -> net::Config {
    let mut cfg = net::Config::new(mac, ip, ports);
    for (m, i) in [(MAC, ADDR), (DIALER_MAC, DIALER_IP), (FORGER_MAC, FORGER_IP)] {
        if i != ip {
            cfg.static_arp.push((i, m));
        }
    }
    cfg.pending_capacity = 4;
    cfg.arp_table_capacity = 4;
    cfg.tx_queue_capacity = 256;
    cfg
}

/// The initial sequence number of a dialer's connection `id` in `epoch` (the protocol's formula,
/// which a forger knows).
fn isn(epoch: u32, id: u32) -> u32 {
    (epoch ^ id.rotate_left(16)).wrapping_mul(0x9E37_79B9)
}

/// Message `n` of dialer stream `stream`: its names, then bytes from both (8 to 407 bytes, one
/// to three packets of the fuzz config's mss).
fn message(stream: u32, n: u32) -> Vec<u8> {
    let len = 8 + (n as usize * 151 + stream as usize * 17) % 400;
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&stream.to_le_bytes());
    m.extend_from_slice(&n.to_le_bytes());
    m.extend((8..len).map(|j| (stream as usize * 5 + n as usize * 3 + j * 11) as u8));
    m
}

fn packets(len: usize) -> usize {
    len.div_ceil(200).max(1)
}

/// A 64-bit FNV-1a of the input: the cookie key, so it changes with every mutation.
fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

fn be32(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    for (i, x) in w.iter_mut().enumerate() {
        *x = b.get(at + i).copied().unwrap_or(0);
    }
    u32::from_be_bytes(w)
}

/// A transmit burst with room for `room` frames (the rest wait in the tables).
struct Burst {
    frames: Vec<VecBuf>,
    room: usize,
}

impl FrameSink<VecBuf> for Burst {
    fn has_room(&self) -> bool {
        self.frames.len() < self.room
    }
    fn push(&mut self, frame: VecBuf) -> Result<(), VecBuf> {
        if !self.has_room() {
            return Err(frame);
        }
        self.frames.push(frame);
        Ok(())
    }
}

/// The transport packet of a UDP frame a correct receiver accepts, with its source.
fn transport(frame: &[u8]) -> Option<(SocketAddrV4, SocketAddrV4, Repr)> {
    let d = oracle::accept_udp(frame)?;
    let r = Packet::new_checked(d.payload).and_then(|p| Repr::parse(&p)).ok()?;
    Some((SocketAddrV4::new(d.src_ip.into(), d.src_port), SocketAddrV4::new(d.dst_ip.into(), d.dst_port), r))
}

fn push(q: &mut VecDeque<VecBuf>, f: VecBuf) {
    if q.len() == MAX_QUEUE {
        q.pop_front();
    }
    q.push_back(f);
}

/// One genuine dialer connection and the stream of messages it sends.
struct Dialed {
    handle: ConnHandle,
    stream: u32,
    sent: u32,
}

/// What the listener's application has seen on one accepted connection.
struct Accepted {
    stream: u32,
    next: u32,
}

struct World {
    now: Instant,
    listener: UdpMux<Rel>,
    dialer: UdpMux<Rel>,
    /// Builds frames from the third host.
    forger: net::Interface<VecPool>,
    /// Builds frames that claim to come from the dialer.
    spoofer: net::Interface<VecPool>,
    to_listener: VecDeque<VecBuf>,
    to_dialer: VecDeque<VecBuf>,
    /// Genuine frames seen on the wire, for replays and mutations.
    captured_up: VecDeque<VecBuf>,
    captured_down: VecDeque<VecBuf>,
    /// Every cookie the listener sent in a SynAck, and the SynAcks it sent to the third host.
    cookies: HashSet<u32>,
    forger_syn_acks: VecDeque<(SocketAddrV4, Repr)>,
    dialed: Vec<Dialed>,
    next_stream: u32,
    sent: HashMap<u32, u32>,
    accepted: HashMap<ConnHandle, Accepted>,
    /// A packet a genuine connection could take as its own was injected: deliveries are no longer
    /// checked for content and order.
    tampered: bool,
}

impl World {
    fn new(data: &[u8]) -> World {
        let now = Instant::from_secs(1);
        let key = fnv(data);
        let mut lmux = MuxConfig::listen(LISTEN_MAX, 7);
        lmux.cookie_key = [key, key.rotate_left(29) ^ 0x5eed];
        lmux.idle_timeout = Some(Duration::from_millis(500));
        lmux.reply_queue = 4;
        lmux.spare_storage = 1;
        let mut dmux = MuxConfig::connect(SocketAddrV4::new(ADDR, PORTS[0]), DIAL_MAX, 3);
        dmux.idle_timeout = Some(Duration::from_secs(2));
        dmux.spare_storage = 1;
        let listener = UdpMux::new(net_config(MAC, ADDR, &PORTS[..1]), pool(), config(), lmux);
        let dialer = UdpMux::new(net_config(DIALER_MAC, DIALER_IP, &[DIALER_PORT]), pool(), config(), dmux);
        let mut w = World {
            now,
            listener,
            dialer,
            forger: net::Interface::new(net_config(FORGER_MAC, FORGER_IP, &FORGER_PORTS), pool()),
            spoofer: net::Interface::new(net_config(DIALER_MAC, DIALER_IP, &[DIALER_PORT]), pool()),
            to_listener: VecDeque::new(),
            to_dialer: VecDeque::new(),
            captured_up: VecDeque::new(),
            captured_down: VecDeque::new(),
            cookies: HashSet::new(),
            forger_syn_acks: VecDeque::new(),
            dialed: Vec::new(),
            next_stream: 0,
            sent: HashMap::new(),
            accepted: HashMap::new(),
            tampered: false,
        };
        w.open();
        w.open();
        w
    }

    fn open(&mut self) {
        if let Ok(handle) = self.dialer.connect(self.now) {
            let stream = self.next_stream;
            self.next_stream += 1;
            self.dialed.push(Dialed { handle, stream, sent: 0 });
        }
    }

    /// The dialer's application: as many messages as fit on every connection.
    fn produce(&mut self) {
        let now = self.now;
        for d in &mut self.dialed {
            let room = self.dialer.get(d.handle).map_or(0, |c| c.send_space());
            if d.sent >= MAX_MESSAGES || room < packets(message(d.stream, d.sent).len()) {
                continue;
            }
            let (stream, sent) = (d.stream, &mut d.sent);
            self.dialer.with(now, d.handle, |c| {
                while *sent < MAX_MESSAGES {
                    let m = message(stream, *sent);
                    if c.send_space() < packets(m.len()) || c.send(now, &m).is_err() {
                        break;
                    }
                    *sent += 1;
                }
            });
            self.sent.insert(d.stream, d.sent);
        }
    }

    /// Both tables' transmissions onto the wire (bursts of `room` frames).
    fn pump(&mut self, room: usize) {
        let now = self.now;
        let mut up = Burst { frames: Vec::new(), room };
        self.dialer.transmit(now, &mut up);
        for f in up.frames {
            let (src, dst, _) = transport(f.data()).expect("the dialer sends well-formed packets");
            assert_eq!(src, SocketAddrV4::new(DIALER_IP, DIALER_PORT));
            assert_eq!(dst, SocketAddrV4::new(ADDR, PORTS[0]));
            capture(&mut self.captured_up, &f);
            push(&mut self.to_listener, f);
        }
        let mut down = Burst { frames: Vec::new(), room };
        self.listener.transmit(now, &mut down);
        for f in down.frames {
            check_transmitted(f.data());
            let Some((_, dst, r)) = transport(f.data()) else { continue }; // ARP
            if r.kind == PacketType::SynAck {
                self.cookies.insert(r.src_conn);
            }
            if *dst.ip() == DIALER_IP {
                capture(&mut self.captured_down, &f);
                push(&mut self.to_dialer, f);
            } else if *dst.ip() == FORGER_IP && r.kind == PacketType::SynAck {
                if self.forger_syn_acks.len() == 16 {
                    self.forger_syn_acks.pop_front();
                }
                self.forger_syn_acks.push_back((dst, r));
            }
        }
    }

    /// Hands an injected frame to the listener; checks that the table grew only for a returned
    /// cookie.
    fn inject(&mut self, frame: VecBuf) {
        let parsed = transport(frame.data());
        if let Some((src, dst, _)) = parsed {
            if src == SocketAddrV4::new(DIALER_IP, DIALER_PORT) && dst == SocketAddrV4::new(ADDR, PORTS[0]) {
                self.tampered = true;
            }
        }
        let before = self.listener.len();
        let _ = self.listener.receive(self.now, frame);
        if self.listener.len() > before {
            let (_, _, r) = parsed.expect("a frame that is not a valid packet opened a connection");
            assert!(
                self.cookies.contains(&r.dst_conn),
                "a packet opened a connection with a cookie the listener never sent: {r:?}"
            );
        }
    }

    /// Frames a transport packet from `iface` (the third host's or the spoofed dialer's).
    fn framed(
        iface: &mut net::Interface<VecPool>,
        now: Instant,
        port: u16,
        r: &Repr,
        payload: &[u8],
    ) -> Option<VecBuf> {
        let mut buf = iface.pool_mut().alloc()?;
        let mut r = *r;
        r.payload_len = payload.len() as u16;
        let room = buf.append(r.header_len() + payload.len()).ok()?;
        room[r.header_len()..].copy_from_slice(payload);
        r.emit(room).ok()?;
        iface.send(now, port, SocketAddrV4::new(ADDR, PORTS[0]), buf).ok()?;
        let frame = iface.poll_transmit(now);
        while iface.poll_transmit(now).is_some() {}
        frame
    }

    fn forge_from_third_host(&mut self, port: usize, r: &Repr, payload: &[u8]) {
        let port = FORGER_PORTS[port % FORGER_PORTS.len()];
        if let Some(f) = Self::framed(&mut self.forger, self.now, port, r, payload) {
            self.inject(f);
        }
    }

    /// The listener's and the dialer's applications: every event of every ready connection.
    fn consume(&mut self) {
        let now = self.now;
        while let Some(h) = self.listener.next_ready() {
            let mut events = Vec::new();
            self.listener.with(now, h, |c| {
                while let Some(ev) = c.poll_event() {
                    events.push(ev);
                }
            });
            for ev in events {
                for segs in ev.messages() {
                    let m: Vec<u8> = segs.flat_map(|s| s.iter().copied()).collect();
                    self.delivered(h, &m);
                }
            }
        }
        let mut dead = Vec::new();
        while let Some(h) = self.dialer.next_ready() {
            self.dialer.with(now, h, |c| {
                while let Some(ev) = c.poll_event() {
                    assert!(ev.messages().next().is_none(), "the listener sends no messages");
                    if matches!(ev, Event::Reset(_) | Event::Failed | Event::Closed) {
                        dead.push(h);
                    }
                }
            });
        }
        let dialer = &self.dialer;
        self.dialed.retain(|d| !dead.contains(&d.handle) && dialer.get(d.handle).is_some());
        if self.dialed.is_empty() {
            self.open();
        }
    }

    fn delivered(&mut self, h: ConnHandle, m: &[u8]) {
        // The third host's connections (handshakes it completed) deliver what it sent.
        if self.tampered || self.listener.peer(h) != Some(SocketAddrV4::new(DIALER_IP, DIALER_PORT)) {
            return;
        }
        assert!(m.len() >= 8, "a delivered message shorter than its names");
        let stream = le32(m, 0);
        let n = le32(m, 4);
        assert_eq!(m, &message(stream, n)[..], "message {n} of stream {stream} corrupted");
        assert!(
            n < self.sent.get(&stream).copied().unwrap_or(0),
            "delivered message {n} of stream {stream}, never sent"
        );
        let a = self.accepted.entry(h).or_insert(Accepted { stream, next: 0 });
        assert_eq!(a.stream, stream, "connection {h:?} delivered another connection's message");
        assert_eq!(a.next, n, "stream {stream}: message {n} delivered where {} was due", a.next);
        a.next += 1;
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.dialer.advance(self.now);
        self.listener.advance(self.now);
    }

    fn check(&self) {
        assert!(self.listener.len() <= LISTEN_MAX, "listener table over max_connections");
        assert!(self.dialer.len() <= DIAL_MAX, "dialer table over max_connections");
        assert_eq!(self.listener.len(), self.listener.connections().count());
        assert_eq!(self.dialer.len(), self.dialer.connections().count());
    }
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn capture(q: &mut VecDeque<VecBuf>, f: &VecBuf) {
    if q.len() == MAX_CAPTURED {
        q.pop_front();
    }
    q.push_back(f.clone());
}

fuzz_target!(|data: &[u8]| {
    let mut w = World::new(data);
    for (op, body) in Records(data) {
        w.produce();
        w.pump(1 + usize::from(op >> 4));
        let b0 = body.first().copied().unwrap_or(0);
        match op % 16 {
            // The genuine wire: delivery, loss, duplication, reordering.
            0..=2 => {
                for _ in 0..=(b0 % 8) {
                    let Some(f) = w.to_listener.pop_front() else { break };
                    let now = w.now;
                    let _ = w.listener.receive(now, f);
                }
            }
            3 => {
                for _ in 0..=(b0 % 8) {
                    let Some(f) = w.to_dialer.pop_front() else { break };
                    let now = w.now;
                    let _ = w.dialer.receive(now, f);
                }
            }
            4 => {
                if b0 & 1 == 0 {
                    w.to_listener.pop_front();
                } else {
                    w.to_dialer.pop_front();
                }
            }
            5 => {
                let q = if b0 & 1 == 0 { &mut w.to_listener } else { &mut w.to_dialer };
                if let Some(f) = q.front().cloned() {
                    push(q, f);
                }
                let n = q.len().max(1);
                q.rotate_left(usize::from(b0 >> 1) % n);
            }
            // Garbage, addressed to the listener with correct IPv4 and UDP checksums as `op` says.
            6 => {
                let mut frame = body.to_vec();
                repair(body.get(1).copied().unwrap_or(0) & !0x0c, &mut frame);
                w.inject(VecBuf::from_slice(&frame));
            }
            // A Syn from the third host: with the protocol's initial sequence number or not.
            7 => {
                let id = be32(body, 1);
                let epoch = be32(body, 5);
                let mut r = Repr::new(PacketType::Syn, id, if b0 & 2 == 0 { 0 } else { be32(body, 9) }, epoch);
                r.seq = if b0 & 1 == 0 { isn(epoch, id) } else { be32(body, 13) };
                r.window = 8;
                w.forge_from_third_host(usize::from(b0 >> 2), &r, &[]);
            }
            // Any packet from the third host, its destination a guess or a cookie seen on the wire
            // (sent to someone else).
            8 => {
                let kinds = [PacketType::Data, PacketType::Ack, PacketType::Fin, PacketType::Reset, PacketType::SynAck];
                let kind = kinds[usize::from(b0 >> 1) % kinds.len()];
                let dst = match (b0 & 1, w.cookies.iter().nth(usize::from(body.get(1).copied().unwrap_or(0)))) {
                    (1, Some(&c)) => c,
                    _ => be32(body, 2),
                };
                let mut r = Repr::new(kind, be32(body, 6), dst, be32(body, 10));
                r.seq = be32(body, 14);
                r.ack = be32(body, 18);
                r.window = be32(body, 22) % 64;
                r.flags = body.get(26).copied().unwrap_or(0) & 0x03;
                let payload = body.get(27..).unwrap_or(&[]);
                let payload = if kind == PacketType::Data { payload } else { &[] };
                w.forge_from_third_host(usize::from(b0 >> 4), &r, payload);
            }
            // The third host completes a handshake it started (its cookie was really sent to it),
            // possibly getting sequence numbers wrong.
            9 => {
                let Some(&(to, syn_ack)) = w.forger_syn_acks.get(usize::from(b0) % w.forger_syn_acks.len().max(1))
                else {
                    continue;
                };
                let kind = if b0 & 0x40 == 0 { PacketType::Data } else { PacketType::Ack };
                let mut r = Repr::new(kind, syn_ack.dst_conn, syn_ack.src_conn, be32(body, 1));
                if b0 & 0x80 == 0 {
                    r.epoch = w.forger_epoch(&syn_ack).unwrap_or(r.epoch);
                }
                r.seq = syn_ack.ack.wrapping_add(u32::from(body.get(5).copied().unwrap_or(0) % 10));
                r.ack = syn_ack.seq.wrapping_add(u32::from(body.get(6).copied().unwrap_or(0) & 1 ^ 1));
                r.flags = 0x01;
                let payload: &[u8] = if kind == PacketType::Data { b"forged" } else { &[] };
                let port = FORGER_PORTS.iter().position(|&p| p == to.port()).unwrap_or(0);
                w.forge_from_third_host(port, &r, payload);
            }
            // An exact replay of a captured genuine frame.
            10 => {
                let up = b0 & 1 == 0;
                let q = if up { &w.captured_up } else { &w.captured_down };
                let Some(f) = q.get(usize::from(b0 >> 1) % q.len().max(1)).cloned() else { continue };
                let now = w.now;
                if up {
                    let _ = w.listener.receive(now, f);
                } else {
                    let _ = w.dialer.receive(now, f);
                }
            }
            // A captured genuine frame to the listener, altered in its transport bytes, its
            // transport CRC fixed unless bit 0 says not, its UDP checksum fixed.
            11 => {
                let Some(orig) = w.captured_up.get(usize::from(b0 >> 1) % w.captured_up.len().max(1)).cloned() else {
                    continue;
                };
                let mut f = orig.clone();
                if f.len() < TRANSPORT_AT + HEADER_LEN {
                    continue;
                }
                let mut t = VecBuf::from_slice(&f.data()[TRANSPORT_AT..]);
                mutate(&mut t, body.get(1..).unwrap_or(&[]));
                if b0 & 1 == 0 {
                    Packet::new_unchecked(t.data_mut()).fill_checksum();
                }
                f.data_mut()[TRANSPORT_AT..].copy_from_slice(t.data());
                repair(0, f.data_mut());
                if f.data() != orig.data() {
                    w.inject(f);
                }
            }
            // A packet in the dialer's name: its genuine ids (from a captured frame), the rest
            // from the input.
            12 => {
                let Some((_, _, mut r)) =
                    w.captured_up.get(usize::from(b0) % w.captured_up.len().max(1)).and_then(|f| transport(f.data()))
                else {
                    continue;
                };
                r.seq = r.seq.wrapping_add(be32(body, 1) % 32);
                r.ack = r.ack.wrapping_add(be32(body, 5) % 4);
                r.sack_count = 0;
                let payload: &[u8] = if r.kind == PacketType::Data { body.get(9..).unwrap_or(&[]) } else { &[] };
                let now = w.now;
                if let Some(f) = World::framed(&mut w.spoofer, now, DIALER_PORT, &r, payload) {
                    w.inject(f);
                }
            }
            // The applications: another dialer connection, or a close on either side.
            13 => match b0 % 3 {
                0 => w.open(),
                1 => {
                    if let Some(d) = w.dialed.get(usize::from(b0 >> 2) % w.dialed.len().max(1)) {
                        let (h, now) = (d.handle, w.now);
                        w.dialer.with(now, h, |c| c.close(now));
                    }
                }
                _ => {
                    let hs: Vec<ConnHandle> = w.listener.connections().map(|(h, _)| h).collect();
                    if let Some(&h) = hs.get(usize::from(b0 >> 2) % hs.len().max(1)) {
                        let now = w.now;
                        w.listener.with(now, h, |c| c.close(now));
                    }
                }
            },
            // Time: a little, or a jump of up to 4.3 s (idle timeouts, retransmission backoff,
            // give-ups, slot reuse).
            _ => {
                let step = if op & 1 == 0 { u64::from(b0) * 10_000 } else { u64::from(be32(body, 0)) % 4_300_000_000 };
                w.advance(Duration::from_nanos(step.max(1)));
            }
        }
        w.advance(Duration::from_micros(10));
        w.consume();
        w.check();
    }
});

impl World {
    /// The epoch of the third host's Syn that a SynAck answered: the SynAck does not carry it, so
    /// the Syn ops are replayed in thought: the forger's epoch is whatever makes the SynAck's
    /// sequence number (`isn(listener epoch ^ syn epoch, cookie)`) come out.
    fn forger_epoch(&self, syn_ack: &Repr) -> Option<u32> {
        // isn(e, id) = (e ^ id.rotl16) * K with K odd: invertible.
        let k_inv = inverse(0x9E37_79B9);
        let e = syn_ack.seq.wrapping_mul(k_inv) ^ syn_ack.src_conn.rotate_left(16);
        Some(e ^ syn_ack.epoch)
    }
}

/// The multiplicative inverse of an odd `k` modulo 2^32 (Newton's iteration).
fn inverse(k: u32) -> u32 {
    let mut x = k;
    for _ in 0..5 {
        x = x.wrapping_mul(2u32.wrapping_sub(k.wrapping_mul(x)));
    }
    x
}
