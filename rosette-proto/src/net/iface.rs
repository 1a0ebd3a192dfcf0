//! The interface: one Ethernet/IPv4/UDP endpoint that every socket of a port shares.
//!
//! In the smoltcp `iface` spirit, the interface owns what is per address, not per socket: the
//! neighbor cache and ARP (answers, resolution, retries), the receive validation of every Ethernet,
//! IPv4 and UDP header and checksum, the one header writer ([`Framer`]) with its IPv4 identification
//! counter, the datagrams waiting for ARP, the transmit queue, and per-reason drop counters. Sockets —
//! the unordered channel, and the UDP link carrying a reliable or streaming connection — sit on top:
//! they receive validated datagrams through [`Interface::receive`] and send through
//! [`Interface::send`] (queued, resolving the next hop) or frame packets themselves with
//! [`Interface::frame_in_place`] / [`Interface::write_header`] once the next hop is known.
#![forbid(unsafe_code)]

use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;
use std::collections::VecDeque;

use super::framer::{Framer, FramerConfig, MAX_PAYLOAD};
use super::neighbor::{Due, NeighborCache, NeighborConfig};
use super::stats::{RxDrop, Stats, TxDrop};
use super::{ARP_FRAME_LEN, HEADERS_LEN};
use crate::buf::{BufPool, PacketBuf};
use crate::channel::time::Instant;
use crate::wire::{arp, ethernet, ipv4, udp, Error as WireError};

/// Configuration of an [`Interface`] (and of the sockets on it): addresses, bounds, timers and what the
/// header writer puts in every header. Every queue and table is allocated once, at these sizes, in
/// [`Interface::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Our MAC address (source of every frame; frames to other unicast MACs are dropped).
    pub mac: ethernet::Address,
    /// Our IPv4 address.
    pub addr: Ipv4Addr,
    /// Length of our subnet's prefix: destinations inside it are on-link, others go to
    /// [`Config::gateway`] when there is one.
    pub prefix_len: u8,
    /// Next hop for destinations outside the subnet; `None` treats every destination as on-link.
    pub gateway: Option<Ipv4Addr>,
    /// UDP ports we are bound to: datagrams to other ports are dropped, sends from other ports refused.
    pub ports: Vec<u16>,
    /// ARP entries that never expire and are never overwritten by what the network says.
    pub static_arp: Vec<(Ipv4Addr, ethernet::Address)>,
    /// How many learned ARP entries to keep; when full, the entry closest to expiry is replaced. With 0
    /// nothing is learnt and only [`Config::static_arp`] destinations (and broadcasts) can be reached.
    pub arp_table_capacity: usize,
    /// How long a learned ARP entry is trusted.
    pub arp_entry_lifetime: Duration,
    /// Time between ARP requests for an unresolved address.
    pub arp_retry_interval: Duration,
    /// ARP requests sent for one address before giving up (and dropping its pending datagrams).
    pub arp_max_requests: u32,
    /// Datagrams held while their next hop is being resolved; sends beyond this are refused.
    pub pending_capacity: usize,
    /// How long a datagram may wait for ARP before it is dropped.
    pub pending_timeout: Duration,
    /// Frames queued for [`Interface::poll_transmit`].
    pub tx_queue_capacity: usize,
    /// Receive queue of a socket on the interface (the unordered channel's events, a connection link's
    /// inbox); datagrams beyond it are dropped ([`RxDrop::EventQueueFull`]).
    pub event_queue_capacity: usize,
    /// IP MTU: the largest IPv4 packet (header included) we send.
    pub mtu: usize,
    /// TTL of the packets we send.
    pub ttl: u8,
    /// Whether to set the "don't fragment" flag (Linux does for UDP by default).
    pub dont_frag: bool,
    /// IPv4 identification of the first datagram sent; each datagram takes the next value.
    pub first_ident: u16,
    /// Compute IPv4 header checksums (see [`FramerConfig::ipv4_checksum`]).
    pub ipv4_checksum: bool,
    /// Compute UDP checksums (see [`FramerConfig::udp_checksum`]).
    pub udp_checksum: bool,
}

impl Config {
    /// A configuration with Linux-like defaults: /24 subnet, no gateway, no static ARP entries, 64
    /// learned ARP entries living 60 s, ARP retried every second up to 3 requests, 64 pending datagrams
    /// for up to 3 s, 256-frame transmit and event queues, MTU 1500, TTL 64, DF set, first IP id 0,
    /// IPv4 and UDP checksums computed.
    pub fn new(mac: ethernet::Address, addr: Ipv4Addr, ports: &[u16]) -> Config {
        Config {
            mac,
            addr,
            prefix_len: 24,
            gateway: None,
            ports: ports.to_vec(),
            static_arp: Vec::new(),
            arp_table_capacity: 64,
            arp_entry_lifetime: Duration::from_secs(60),
            arp_retry_interval: Duration::from_secs(1),
            arp_max_requests: 3,
            pending_capacity: 64,
            pending_timeout: Duration::from_secs(3),
            tx_queue_capacity: 256,
            event_queue_capacity: 256,
            mtu: 1500,
            ttl: 64,
            dont_frag: true,
            first_ident: 0,
            ipv4_checksum: true,
            udp_checksum: true,
        }
    }

    /// What the header writer puts in every header.
    pub fn framer(&self) -> FramerConfig {
        FramerConfig {
            mac: self.mac,
            addr: self.addr,
            ttl: self.ttl,
            dont_frag: self.dont_frag,
            ipv4_checksum: self.ipv4_checksum,
            udp_checksum: self.udp_checksum,
        }
    }

    fn neighbors(&self) -> NeighborConfig {
        NeighborConfig {
            capacity: self.arp_table_capacity,
            resolving_capacity: self.pending_capacity,
            lifetime: self.arp_entry_lifetime,
            retry_interval: self.arp_retry_interval,
            max_requests: self.arp_max_requests,
        }
    }
}

/// A received datagram, headers stripped.
#[derive(Debug)]
pub struct Datagram<B> {
    /// Who sent it.
    pub src: SocketAddrV4,
    /// Where it was sent: our address (or a broadcast address) and one of our ports.
    pub dst: SocketAddrV4,
    /// The payload: the very buffer given to [`Interface::receive`], with the Ethernet, IPv4 and UDP
    /// headers removed by [`PacketBuf::adjust`] and any padding by [`PacketBuf::trim`].
    pub payload: B,
}

/// A send was refused; the payload buffer comes back untouched.
#[derive(Debug)]
pub struct SendError<B> {
    /// Why (also counted in [`Stats::tx_drops`]).
    pub reason: TxDrop,
    /// The payload, as it was given.
    pub payload: B,
}

/// What a queued frame is, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FrameKind {
    Datagram,
    ArpRequest,
    ArpReply,
}

#[derive(Debug)]
struct Pending<B> {
    next_hop: Ipv4Addr,
    deadline: Instant,
    frame: B,
}

/// An Ethernet/IPv4/UDP interface, sans-IO. See the module documentation.
///
/// # Calling contract
/// The interface never performs I/O and never reads a clock; its owner drives it:
/// - Give every received frame to [`receive`](Self::receive), with the socket that takes the
///   datagrams. The interface takes the buffer: it becomes a delivery, an ARP reply, or is dropped
///   (returned to its pool) and counted.
/// - After any call, drain [`poll_transmit`](Self::poll_transmit) until `None`.
/// - Call [`handle_timeout`](Self::handle_timeout) once `now` reaches
///   [`poll_timeout`](Self::poll_timeout) (early or late is harmless; late only delays ARP retries and
///   pending expiry).
/// - `now` must not go backwards between calls.
///
/// # Guarantees
/// - A datagram reaches a socket only if its Ethernet destination is ours or broadcast, its IPv4 header
///   is well-formed (version 4, IHL ≥ 5, total length within the frame, not a fragment) with a verifying
///   header checksum (RFC 791), it is UDP from a unicast source to our address (or a broadcast) and a
///   bound port, and its UDP length is consistent and its checksum verifies or is zero, "none"
///   (RFC 768), as Linux accepts. Everything else is dropped and counted by reason; no input panics.
/// - Zero-copy both ways: deliveries are the received buffer with headers stripped; sent datagrams are
///   the caller's buffer with headers prepended in its headroom (or a header buffer in front of it).
/// - Memory is bounded by [`Config`]: every queue and table is allocated once in [`new`](Self::new);
///   nothing allocates per packet (ARP requests take a buffer from the pool; ARP replies reuse the
///   request's buffer when it is not shared).
#[derive(Debug)]
pub struct Interface<P: BufPool> {
    config: Config,
    pool: P,
    stats: Stats,
    framer: Framer,
    neighbors: NeighborCache,
    pending: VecDeque<Pending<P::Buf>>,
    /// Set when an ARP resolution completed while the transmit queue had no room for all its pending
    /// datagrams, so [`Self::poll_transmit`] knows to look again.
    pending_ready: bool,
    tx: VecDeque<(FrameKind, P::Buf)>,
}

impl<P: BufPool> Interface<P> {
    /// An interface with `config`, taking buffers for ARP requests (and for ARP replies when a
    /// request's buffer is shared) from `pool`.
    pub fn new(config: Config, pool: P) -> Self {
        Interface {
            framer: Framer::new(config.framer(), config.first_ident),
            neighbors: NeighborCache::new(config.neighbors(), &config.static_arp),
            pending: VecDeque::with_capacity(config.pending_capacity),
            pending_ready: false,
            tx: VecDeque::with_capacity(config.tx_queue_capacity),
            stats: Stats::default(),
            config,
            pool,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The buffer pool.
    pub fn pool_mut(&mut self) -> &mut P {
        &mut self.pool
    }

    /// The neighbor (ARP) cache.
    pub fn neighbors(&self) -> &NeighborCache {
        &self.neighbors
    }

    /// Adds a static ARP entry at run time (see [`NeighborCache::add_static`]); false when the static
    /// table is full.
    pub fn add_static_neighbor(&mut self, addr: Ipv4Addr, mac: ethernet::Address) -> bool {
        self.neighbors.add_static(addr, mac)
    }

    /// Datagrams waiting for ARP resolution.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Frames waiting in the transmit queue.
    pub fn tx_queue_len(&self) -> usize {
        self.tx.len()
    }

    /// The MAC address we would use for `addr` now (static entry, or unexpired learned entry).
    pub fn arp_lookup(&self, now: Instant, addr: Ipv4Addr) -> Option<ethernet::Address> {
        self.neighbors.lookup(now, addr)
    }

    /// The Ethernet destination of a datagram to `dst` now: broadcast and multicast need no ARP;
    /// otherwise the next hop's entry in the neighbor cache, if any (no resolution is started).
    pub fn next_hop_mac(&self, now: Instant, dst: Ipv4Addr) -> Option<ethernet::Address> {
        match self.next_hop(dst) {
            Ok(mac) => Some(mac),
            Err(addr) => self.neighbors.lookup(now, addr),
        }
    }

    /// True when sockets may use UDP port `port` (it is in [`Config::ports`]).
    pub fn is_bound(&self, port: u16) -> bool {
        self.config.ports.contains(&port)
    }

    fn drop_rx(&mut self, reason: RxDrop) -> Result<(), RxDrop> {
        *self.stats.rx_drops.slot(reason) += 1;
        Err(reason)
    }

    fn drop_tx(&mut self, reason: TxDrop) {
        *self.stats.tx_drops.slot(reason) += 1;
    }

    fn subnet_mask(&self) -> u32 {
        match self.config.prefix_len {
            0 => 0,
            n => u32::MAX << (32 - u32::from(n.min(32))),
        }
    }

    fn is_directed_broadcast(&self, addr: Ipv4Addr) -> bool {
        let mask = self.subnet_mask();
        // A /31 or /32 has no broadcast address.
        mask < 0xffff_fffe && u32::from(addr) == (u32::from(self.config.addr) & mask) | !mask
    }

    /// Hands one received frame to the interface. The buffer is consumed: an ARP frame is acted on
    /// (answered in the same buffer when possible), a valid UDP datagram to a bound port is given to
    /// `socket`, anything else is dropped and counted. `socket` refuses a datagram by handing it back
    /// (its queue is full): it is then dropped and counted as [`RxDrop::EventQueueFull`].
    ///
    /// Returns why the frame was dropped, if it was.
    pub fn receive(
        &mut self,
        now: Instant,
        frame: P::Buf,
        socket: impl FnOnce(Datagram<P::Buf>) -> Result<(), Datagram<P::Buf>>,
    ) -> Result<(), RxDrop> {
        self.stats.received += 1;
        let (dst_mac, ethertype) = match ethernet::Packet::new_checked(frame.data()) {
            Ok(eth) => (eth.dst_addr(), eth.ethertype()),
            Err(_) => return self.drop_rx(RxDrop::BadEthernet),
        };
        if dst_mac != self.config.mac && !dst_mac.is_broadcast() {
            return self.drop_rx(RxDrop::NotOurMac);
        }
        match ethertype {
            ethernet::EtherType::Arp => self.receive_arp(now, frame),
            ethernet::EtherType::Ipv4 => match self.receive_ipv4(frame) {
                Ok(datagram) => match socket(datagram) {
                    Ok(()) => {
                        self.stats.delivered += 1;
                        Ok(())
                    }
                    Err(_refused) => self.drop_rx(RxDrop::EventQueueFull),
                },
                Err(reason) => self.drop_rx(reason),
            },
            _ => self.drop_rx(RxDrop::UnknownEtherType),
        }
    }

    fn receive_arp(&mut self, now: Instant, mut frame: P::Buf) -> Result<(), RxDrop> {
        let repr = match arp::Packet::new_checked(&frame.data()[ethernet::HEADER_LEN..]) {
            Ok(packet) => match arp::Repr::parse(&packet) {
                Ok(repr) => repr,
                Err(_) => return self.drop_rx(RxDrop::BadArp),
            },
            Err(_) => return self.drop_rx(RxDrop::BadArp),
        };
        if !matches!(repr.operation, arp::Operation::Request | arp::Operation::Reply) {
            return self.drop_rx(RxDrop::BadArp);
        }
        let for_us = repr.target_protocol_addr == self.config.addr;
        let sender = repr.source_protocol_addr;
        let plausible_sender = !sender.is_unspecified()
            && !sender.is_broadcast()
            && !sender.is_multicast()
            && sender != self.config.addr
            && repr.source_hardware_addr.is_unicast();
        // RFC 826 ("merge"): update an entry we already have whoever the target is; add one only when
        // we are the target (so broadcast chatter cannot fill the table).
        let known = self.neighbors.has_learned(sender);
        let learnt =
            plausible_sender && (for_us || known) && self.neighbors.learn(now, sender, repr.source_hardware_addr);
        if learnt {
            self.flush_pending(now);
        }
        if !for_us && !learnt {
            return self.drop_rx(RxDrop::ArpNotForUs);
        }
        self.stats.arp_handled += 1;
        if !(for_us && repr.operation == arp::Operation::Request) {
            return Ok(());
        }
        // RFC 826: swap the sender and target fields, put in our addresses, set the opcode to reply.
        let reply = arp::Repr {
            operation: arp::Operation::Reply,
            source_hardware_addr: self.config.mac,
            source_protocol_addr: self.config.addr,
            target_hardware_addr: repr.source_hardware_addr,
            target_protocol_addr: repr.source_protocol_addr,
        };
        if self.tx.len() >= self.config.tx_queue_capacity {
            self.drop_tx(TxDrop::ArpReplyDropped);
            return Ok(());
        }
        // Reuse the request's buffer: it already holds at least ARP_FRAME_LEN bytes.
        let out = if frame.is_shared() || !frame.is_contiguous() {
            self.alloc_arp_frame()
        } else {
            let excess = frame.len().saturating_sub(ARP_FRAME_LEN);
            frame.trim(excess).ok().map(|()| frame)
        };
        let Some(mut out) = out else {
            self.drop_tx(TxDrop::ArpReplyDropped);
            return Ok(());
        };
        self.write_arp(&mut out, repr.source_hardware_addr, &reply);
        self.tx.push_back((FrameKind::ArpReply, out));
        Ok(())
    }

    /// Moves pending datagrams whose next hop is now resolved to the transmit queue, as room allows.
    fn flush_pending(&mut self, now: Instant) {
        self.pending_ready = false;
        // One full rotation keeps the remaining entries in their order (so the front stays the oldest).
        for _ in 0..self.pending.len() {
            let Some(mut p) = self.pending.pop_front() else {
                break;
            };
            match self.neighbors.lookup(now, p.next_hop) {
                Some(mac) if self.tx.len() < self.config.tx_queue_capacity => {
                    Framer::set_dst_mac(p.frame.data_mut(), mac);
                    self.tx.push_back((FrameKind::Datagram, p.frame));
                }
                Some(_) => {
                    self.pending_ready = true;
                    self.pending.push_back(p);
                }
                None => self.pending.push_back(p),
            }
        }
    }

    /// Validates an IPv4/UDP frame for us and strips its headers.
    fn receive_ipv4(&self, mut frame: P::Buf) -> Result<Datagram<P::Buf>, RxDrop> {
        let data = &frame.data()[ethernet::HEADER_LEN..];
        let ip = match ipv4::Packet::new_checked(data) {
            Ok(ip) => ip,
            Err(WireError::Truncated) => return Err(RxDrop::Ipv4Truncated),
            Err(WireError::BadHeaderLen) => return Err(RxDrop::Ipv4BadHeaderLen),
            Err(_) => return Err(RxDrop::Ipv4BadLength),
        };
        let ip_repr = match ipv4::Repr::parse(&ip) {
            Ok(repr) => repr,
            Err(WireError::BadVersion) => return Err(RxDrop::Ipv4BadVersion),
            Err(WireError::Fragmented) => return Err(RxDrop::Ipv4Fragment),
            Err(_) => return Err(RxDrop::Ipv4BadChecksum),
        };
        let dst = ip_repr.dst_addr;
        if dst != self.config.addr && !dst.is_broadcast() && !self.is_directed_broadcast(dst) {
            return Err(RxDrop::NotOurIp);
        }
        let src = ip_repr.src_addr;
        // RFC 1122 3.2.1.3: a broadcast or multicast source is a martian; nobody could answer it.
        if src.is_broadcast() || src.is_multicast() || self.is_directed_broadcast(src) {
            return Err(RxDrop::BadSource);
        }
        if ip_repr.protocol != ipv4::Protocol::Udp {
            return Err(RxDrop::NotUdp);
        }
        let udp = match udp::Packet::new_checked(ip.payload()) {
            Ok(udp) => udp,
            Err(_) => return Err(RxDrop::UdpBadLength),
        };
        // The port test is cheaper than the checksum, so traffic to other ports costs little.
        if !self.is_bound(udp.dst_port()) {
            return Err(RxDrop::WrongPort);
        }
        let udp_repr = match udp::Repr::parse(&udp, src, dst) {
            Ok(repr) => repr,
            Err(_) => return Err(RxDrop::UdpBadChecksum),
        };
        let headers = ethernet::HEADER_LEN + usize::from(ip.header_len()) + udp::HEADER_LEN;
        let src = SocketAddrV4::new(src, udp_repr.src_port);
        let dst = SocketAddrV4::new(dst, udp_repr.dst_port);
        // Both cannot fail (the lengths were checked above); if they ever did, drop rather than deliver
        // a wrong payload.
        frame.adjust(headers).map_err(|_| RxDrop::UdpBadLength)?;
        let excess = frame.len().saturating_sub(udp_repr.payload_len);
        frame.trim(excess).map_err(|_| RxDrop::UdpBadLength)?;
        Ok(Datagram { src, dst, payload: frame })
    }

    /// Where a datagram to `dst` goes on the link: a MAC known without ARP (broadcast, multicast) or an
    /// IPv4 next hop to resolve.
    fn next_hop(&self, dst: Ipv4Addr) -> Result<ethernet::Address, Ipv4Addr> {
        if dst.is_broadcast() || self.is_directed_broadcast(dst) {
            return Ok(ethernet::Address::BROADCAST);
        }
        if dst.is_multicast() {
            // RFC 1112: 01:00:5e followed by the low 23 bits of the group address.
            let o = dst.octets();
            return Ok(ethernet::Address([0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]]));
        }
        let mask = self.subnet_mask();
        let on_link = u32::from(dst) & mask == u32::from(self.config.addr) & mask;
        match self.config.gateway {
            Some(gateway) if !on_link => Err(gateway),
            _ => Err(dst),
        }
    }

    /// Refuses what no header may carry: an unbound source port, an unspecified destination or port 0,
    /// a payload beyond the MTU.
    fn check_send(&self, src_port: u16, dst: SocketAddrV4, payload_len: usize) -> Result<(), TxDrop> {
        if !self.is_bound(src_port) {
            return Err(TxDrop::UnboundPort);
        }
        if dst.ip().is_unspecified() || dst.port() == 0 {
            return Err(TxDrop::BadDestination);
        }
        if payload_len > self.config.mtu.saturating_sub(ipv4::HEADER_LEN + udp::HEADER_LEN) || payload_len > MAX_PAYLOAD
        {
            return Err(TxDrop::TooLarge);
        }
        Ok(())
    }

    /// Sends `payload` from our address and `src_port` to `dst`.
    ///
    /// The payload buffer needs [`HEADERS_LEN`] bytes of headroom: the UDP, IPv4 and Ethernet headers
    /// are written there, in place. If the next hop's MAC address is known the frame is queued for
    /// [`poll_transmit`](Self::poll_transmit); otherwise it is held (at most
    /// [`Config::pending_capacity`] datagrams, for at most [`Config::pending_timeout`]) while ARP
    /// resolves the next hop, and an ARP request is queued.
    ///
    /// On refusal the payload comes back unchanged in the error, and the reason is counted.
    pub fn send(
        &mut self,
        now: Instant,
        src_port: u16,
        dst: SocketAddrV4,
        payload: P::Buf,
    ) -> Result<(), SendError<P::Buf>> {
        let refuse = |this: &mut Self, reason: TxDrop, payload: P::Buf| {
            this.drop_tx(reason);
            Err(SendError { reason, payload })
        };
        if let Err(reason) = self.check_send(src_port, dst, payload.len()) {
            return refuse(self, reason, payload);
        }
        if payload.is_shared() {
            return refuse(self, TxDrop::SharedBuffer, payload);
        }
        if payload.headroom() < HEADERS_LEN {
            return refuse(self, TxDrop::NoHeadroom, payload);
        }
        let hop = self.next_hop(*dst.ip());
        let dst_mac = match hop {
            Ok(mac) => Some(mac),
            Err(addr) => self.neighbors.lookup(now, addr),
        };
        let needs_resolution = match (dst_mac, hop) {
            (Some(_), _) | (_, Ok(_)) => None,
            (None, Err(addr)) => Some((addr, !self.neighbors.is_resolving(addr))),
        };
        match needs_resolution {
            None if self.tx.len() >= self.config.tx_queue_capacity => {
                return refuse(self, TxDrop::QueueFull, payload);
            }
            Some((_, new))
                if self.pending.len() >= self.config.pending_capacity || (new && !self.neighbors.can_resolve()) =>
            {
                return refuse(self, TxDrop::PendingFull, payload);
            }
            _ => {}
        }

        let mut frame = payload;
        // The Ethernet destination of a datagram waiting for ARP is filled in when its next hop resolves.
        if let Err(reason) = self.framer.prepend(&mut frame, dst_mac.unwrap_or_default(), src_port, dst) {
            return refuse(self, reason, frame);
        }
        self.stats.accepted += 1;

        match needs_resolution {
            None => self.tx.push_back((FrameKind::Datagram, frame)),
            Some((next_hop, new)) => {
                self.pending.push_back(Pending { next_hop, deadline: now + self.config.pending_timeout, frame });
                if new {
                    self.neighbors.start_resolving(now, next_hop);
                    self.send_arp_requests(now);
                }
            }
        }
        Ok(())
    }

    /// Frames a datagram from `src_port` to `dst` in `payload`'s own headroom, for a caller that
    /// transmits it itself, when the next hop's MAC is known now; returns the bytes prepended, 0 when it
    /// could not (unresolved, shared, chained, no headroom, or refused as [`send`](Self::send) would —
    /// counted only in that last case). Never queues and never starts ARP.
    pub fn frame_in_place(&mut self, now: Instant, payload: &mut P::Buf, src_port: u16, dst: SocketAddrV4) -> usize {
        if payload.is_shared() || !payload.is_contiguous() || payload.headroom() < HEADERS_LEN {
            return 0;
        }
        let Some(dst_mac) = self.next_hop_mac(now, *dst.ip()) else { return 0 };
        if let Err(reason) = self.check_send(src_port, dst, payload.len()) {
            self.drop_tx(reason);
            return 0;
        }
        match self.framer.prepend(payload, dst_mac, src_port, dst) {
            Ok(()) => {
                self.stats.framed += 1;
                HEADERS_LEN
            }
            Err(reason) => {
                self.drop_tx(reason);
                0
            }
        }
    }

    /// Writes the headers of a datagram from `src_port` to `dst` carrying `payload` into `hdr` (exactly
    /// [`HEADERS_LEN`] bytes of a separate buffer the payload will be chained behind), when the next
    /// hop's MAC is known now. On refusal (`Unresolved` when it is not; otherwise as
    /// [`send`](Self::send) would) the reason is counted and `hdr` is untouched.
    pub fn write_header(
        &mut self,
        now: Instant,
        hdr: &mut [u8],
        src_port: u16,
        dst: SocketAddrV4,
        payload: &[u8],
    ) -> Result<(), TxDrop> {
        let res = match self.next_hop_mac(now, *dst.ip()) {
            None => Err(TxDrop::Unresolved),
            Some(dst_mac) => self
                .check_send(src_port, dst, payload.len())
                .and_then(|()| self.framer.write_header(hdr, dst_mac, src_port, dst, payload)),
        };
        match res {
            Ok(()) => self.stats.framed += 1,
            Err(reason) => self.drop_tx(reason),
        }
        res
    }

    fn alloc_arp_frame(&mut self) -> Option<P::Buf> {
        let mut buf = self.pool.alloc()?;
        buf.append(ARP_FRAME_LEN).ok()?;
        Some(buf)
    }

    fn write_arp(&self, frame: &mut P::Buf, dst_mac: ethernet::Address, repr: &arp::Repr) {
        let data = frame.data_mut();
        let eth = ethernet::Repr { src_addr: self.config.mac, dst_addr: dst_mac, ethertype: ethernet::EtherType::Arp };
        eth.emit(&mut ethernet::Packet::new_unchecked(&mut data[..]));
        repr.emit(&mut arp::Packet::new_unchecked(&mut data[ethernet::HEADER_LEN..]));
    }

    /// Sends the ARP requests that are due, and gives up on addresses that had all their requests.
    fn send_arp_requests(&mut self, now: Instant) {
        while let Some(due) = self.neighbors.next_due(now) {
            let addr = match due {
                Due::GiveUp(addr) => {
                    self.drop_pending_for(addr);
                    continue;
                }
                Due::Request(addr) => addr,
            };
            if self.tx.len() >= self.config.tx_queue_capacity {
                // Counted as sent by the cache: tried again at the next interval rather than spinning
                // on a full queue.
                self.drop_tx(TxDrop::QueueFull);
            } else if let Some(mut frame) = self.alloc_arp_frame() {
                // RFC 826: a broadcast request with our addresses as sender and the target hardware
                // address unknown (zero, as Linux sends it).
                let request = arp::Repr {
                    operation: arp::Operation::Request,
                    source_hardware_addr: self.config.mac,
                    source_protocol_addr: self.config.addr,
                    target_hardware_addr: ethernet::Address::default(),
                    target_protocol_addr: addr,
                };
                self.write_arp(&mut frame, ethernet::Address::BROADCAST, &request);
                self.tx.push_back((FrameKind::ArpRequest, frame));
            } else {
                self.drop_tx(TxDrop::ArpAllocFailed);
            }
        }
    }

    fn drop_pending_for(&mut self, addr: Ipv4Addr) {
        let before = self.pending.len();
        self.pending.retain(|p| p.next_hop != addr);
        self.stats.tx_drops.unresolved += (before - self.pending.len()) as u64;
    }

    /// The next frame to put on the wire: ARP replies and requests, and datagrams whose next hop is
    /// resolved, in the order they became ready.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<P::Buf> {
        if self.tx.is_empty() && self.pending_ready {
            self.flush_pending(now);
        }
        let (kind, frame) = self.tx.pop_front()?;
        match kind {
            FrameKind::Datagram => self.stats.sent += 1,
            FrameKind::ArpRequest => self.stats.arp_requests_sent += 1,
            FrameKind::ArpReply => self.stats.arp_replies_sent += 1,
        }
        Some(frame)
    }

    /// When [`handle_timeout`](Self::handle_timeout) next has work: an ARP retry or a pending datagram's
    /// expiry. `None` when nothing waits.
    pub fn poll_timeout(&self) -> Option<Instant> {
        // Every pending datagram got the same timeout and the queue keeps arrival order, so the front
        // expires first.
        let expiry = self.pending.front().map(|p| p.deadline);
        let retry = self.neighbors.poll_timeout();
        match (expiry, retry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Does the timer work due at `now`: retries ARP, gives up on addresses that never answered, and
    /// drops datagrams that waited too long (counting each).
    pub fn handle_timeout(&mut self, now: Instant) {
        while self.pending.front().is_some_and(|p| p.deadline <= now) {
            self.pending.pop_front();
            self.drop_tx(TxDrop::PendingTimeout);
        }
        self.send_arp_requests(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::{BufError, VecBuf, VecPool};
    use crate::wire::captures::{hex, KERNEL_ARP_REPLY, KERNEL_ARP_REQUEST, KERNEL_UDP_HELLO, KERNEL_UDP_ODD};

    // The two ends of the kernel captures (see `wire::captures`).
    const MAC_A: ethernet::Address = ethernet::Address([2, 0, 0, 0, 0, 0x0a]);
    const MAC_B: ethernet::Address = ethernet::Address([2, 0, 0, 0, 0, 0x0b]);
    const IP_A: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
    const IP_B: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
    const PORT_A: u16 = 9000;
    const PORT_B: u16 = 40000;
    const T0: Instant = Instant::from_secs(100);
    const TO_A: SocketAddrV4 = SocketAddrV4::new(IP_A, PORT_A);

    /// The interface playing 10.99.0.2:40000, the sending end of the captures.
    fn iface_b(config: impl FnOnce(&mut Config)) -> Interface<VecPool> {
        let mut c = Config::new(MAC_B, IP_B, &[PORT_B]);
        config(&mut c);
        Interface::new(c, VecPool::default())
    }

    fn accept(d: Datagram<VecBuf>) -> Result<(), Datagram<VecBuf>> {
        drop(d);
        Ok(())
    }

    /// RFC 826: a request for our address is answered with our MAC (byte for byte what Linux sends),
    /// and the requester is learnt, since we are its target.
    #[test]
    fn arp_request_is_answered_and_its_sender_learnt() {
        let mut a = Interface::new(Config::new(MAC_A, IP_A, &[PORT_A]), VecPool::default());
        assert_eq!(a.receive(T0, VecBuf::from_slice(&hex(KERNEL_ARP_REQUEST)), accept), Ok(()));
        assert_eq!(a.poll_transmit(T0).unwrap().data(), &hex(KERNEL_ARP_REPLY)[..]);
        assert_eq!(a.arp_lookup(T0, IP_B), Some(MAC_B));
        assert_eq!((a.stats().arp_handled, a.stats().arp_replies_sent), (1, 1));
    }

    /// RFC 826 resolution: request broadcast, retried every `arp_retry_interval`; the reply releases
    /// the held datagram with the resolved MAC filled in.
    #[test]
    fn resolution_retries_then_releases_pending_datagrams() {
        let mut b = iface_b(|c| c.first_ident = 0x8229);
        b.send(T0, PORT_B, TO_A, VecBuf::from_slice(b"hello rosette")).unwrap();
        assert_eq!(b.poll_transmit(T0).unwrap().data(), &hex(KERNEL_ARP_REQUEST)[..]);
        let retry = T0 + Duration::from_secs(1);
        assert_eq!(b.poll_timeout(), Some(retry));
        b.handle_timeout(retry);
        assert_eq!(b.poll_transmit(retry).unwrap().data(), &hex(KERNEL_ARP_REQUEST)[..], "retried");
        assert_eq!(b.receive(retry, VecBuf::from_slice(&hex(KERNEL_ARP_REPLY)), accept), Ok(()));
        assert_eq!(b.poll_transmit(retry).unwrap().data(), &hex(KERNEL_UDP_HELLO)[..]);
        assert_eq!(b.stats().arp_requests_sent, 2);
        assert_eq!(b.poll_timeout(), None);
    }

    /// A static entry is used without any ARP traffic, and the network cannot override it.
    #[test]
    fn static_entry_needs_no_arp() {
        let mut b = iface_b(|c| c.static_arp.push((IP_A, ethernet::Address([2, 0, 0, 0, 0, 0x77]))));
        let mut forged = hex(KERNEL_ARP_REPLY);
        forged[6..12].copy_from_slice(&MAC_A.0);
        b.receive(T0, VecBuf::from_slice(&forged), accept).unwrap();
        b.send(T0, PORT_B, TO_A, VecBuf::from_slice(b"x")).unwrap();
        let f = b.poll_transmit(T0).unwrap();
        assert_eq!(
            ethernet::Packet::new_checked(f.data()).unwrap().dst_addr(),
            ethernet::Address([2, 0, 0, 0, 0, 0x77])
        );
        assert_eq!(b.stats().arp_requests_sent, 0);
    }

    /// One IPv4 identification counter for every way of sending (RFC 791: unique per source,
    /// destination and protocol while a datagram may live), starting at `first_ident`.
    #[test]
    fn one_ident_counter_for_queued_in_place_and_separate_headers() {
        let mut b = iface_b(|c| {
            c.static_arp.push((IP_A, MAC_A));
            c.first_ident = 0x8229;
        });
        b.send(T0, PORT_B, TO_A, VecBuf::from_slice(b"hello rosette")).unwrap();
        let mut odd = VecBuf::from_slice(b"odd");
        assert_eq!(b.frame_in_place(T0, &mut odd, PORT_B, TO_A), HEADERS_LEN);
        let mut hdr = [0u8; HEADERS_LEN];
        b.write_header(T0, &mut hdr, PORT_B, TO_A, b"").unwrap();
        assert_eq!(b.poll_transmit(T0).unwrap().data(), &hex(KERNEL_UDP_HELLO)[..]);
        assert_eq!(odd.data(), &hex(KERNEL_UDP_ODD)[..]);
        let ip = ipv4::Packet::new_unchecked(&hdr[14..]);
        assert_eq!(ip.ident(), 0x822b);
        assert_eq!((b.stats().sent, b.stats().framed), (1, 2));
    }

    /// Direct framing never starts ARP and never queues: unresolved is 0 / `Unresolved`, counted.
    #[test]
    fn direct_framing_needs_a_resolved_next_hop() {
        let mut b = iface_b(|_| {});
        let mut p = VecBuf::from_slice(b"x");
        assert_eq!(b.frame_in_place(T0, &mut p, PORT_B, TO_A), 0);
        assert_eq!(p.data(), b"x");
        let mut hdr = [0u8; HEADERS_LEN];
        assert_eq!(b.write_header(T0, &mut hdr, PORT_B, TO_A, b"x"), Err(TxDrop::Unresolved));
        assert_eq!(
            b.write_header(T0, &mut hdr, PORT_B + 1, SocketAddrV4::new(Ipv4Addr::BROADCAST, 1), b"x"),
            Err(TxDrop::UnboundPort)
        );
        assert_eq!((b.stats().tx_drops.unresolved, b.stats().tx_drops.unbound_port), (1, 1));
        assert!(b.poll_transmit(T0).is_none());
        // Broadcast needs no resolution (RFC 919).
        assert_eq!(b.frame_in_place(T0, &mut p, PORT_B, SocketAddrV4::new(Ipv4Addr::BROADCAST, 7)), HEADERS_LEN);
        assert_eq!(&p.data()[..6], &[0xff; 6]);
    }

    /// A socket that refuses a datagram (its queue is full) makes it a counted drop.
    #[test]
    fn refused_delivery_is_counted_as_event_queue_full() {
        let mut a = Interface::new(Config::new(MAC_A, IP_A, &[PORT_A]), VecPool::default());
        let res = a.receive(T0, VecBuf::from_slice(&hex(KERNEL_UDP_HELLO)), Err);
        assert_eq!(res, Err(RxDrop::EventQueueFull));
        let s = a.stats();
        assert_eq!((s.received, s.delivered, s.rx_drops.event_queue_full), (1, 0, 1));
    }

    /// A two-segment buffer, as a chained mbuf: `data` is its first segment only.
    struct Chained(VecBuf);

    impl PacketBuf for Chained {
        fn data(&self) -> &[u8] {
            self.0.data()
        }
        fn data_mut(&mut self) -> &mut [u8] {
            self.0.data_mut()
        }
        fn headroom(&self) -> usize {
            self.0.headroom()
        }
        fn tailroom(&self) -> usize {
            0
        }
        fn prepend(&mut self, n: usize) -> Result<&mut [u8], BufError> {
            self.0.prepend(n)
        }
        fn append(&mut self, _: usize) -> Result<&mut [u8], BufError> {
            Err(BufError::NoTailroom)
        }
        fn adjust(&mut self, n: usize) -> Result<(), BufError> {
            self.0.adjust(n)
        }
        fn trim(&mut self, n: usize) -> Result<(), BufError> {
            self.0.trim(n)
        }
        fn share(&self) -> Option<Self> {
            None
        }
        fn is_shared(&self) -> bool {
            false
        }
        fn is_contiguous(&self) -> bool {
            false
        }
    }

    struct ChainedPool;

    impl BufPool for ChainedPool {
        type Buf = Chained;
        fn alloc(&mut self) -> Option<Chained> {
            None
        }
    }

    /// A UDP checksum must cover the whole payload (RFC 768), which a chain does not show in one slice:
    /// such a payload is refused, counted, untouched.
    #[test]
    fn chained_payload_is_refused_as_not_contiguous() {
        let mut c = Config::new(MAC_B, IP_B, &[PORT_B]);
        c.static_arp.push((IP_A, MAC_A));
        let mut b = Interface::new(c, ChainedPool);
        let err = b.send(T0, PORT_B, TO_A, Chained(VecBuf::from_slice(b"seg"))).unwrap_err();
        assert_eq!(err.reason, TxDrop::NotContiguous);
        assert_eq!(err.payload.data(), b"seg");
        assert_eq!(b.stats().tx_drops.not_contiguous, 1);
        let mut p = Chained(VecBuf::from_slice(b"seg"));
        assert_eq!(b.frame_in_place(T0, &mut p, PORT_B, TO_A), 0);
        assert_eq!(p.data(), b"seg");
    }

    /// `receive` reports exactly the reason it counted, for every reason a frame can be dropped for.
    #[test]
    fn receive_returns_the_counted_reason() {
        let good = hex(KERNEL_UDP_HELLO);
        let mut cases: Vec<(RxDrop, Vec<u8>)> = vec![(RxDrop::BadEthernet, good[..13].to_vec())];
        let mut f = good.clone();
        f[5] = 0x99;
        cases.push((RxDrop::NotOurMac, f));
        let mut f = good.clone();
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        cases.push((RxDrop::UnknownEtherType, f));
        cases.push((RxDrop::BadArp, hex(KERNEL_ARP_REQUEST)[..40].to_vec()));
        let mut f = hex(KERNEL_ARP_REQUEST);
        f[14 + 27] = 77;
        cases.push((RxDrop::ArpNotForUs, f));
        cases.push((RxDrop::Ipv4Truncated, good[..33].to_vec()));
        let mut f = good.clone();
        f[24] ^= 0xff;
        cases.push((RxDrop::Ipv4BadChecksum, f));
        let mut f = good.clone();
        *f.last_mut().unwrap() ^= 1;
        cases.push((RxDrop::UdpBadChecksum, f));
        let mut f = good.clone();
        f[36..38].copy_from_slice(&1u16.to_be_bytes());
        cases.push((RxDrop::WrongPort, f));
        for (reason, bytes) in cases {
            let mut a = Interface::new(Config::new(MAC_A, IP_A, &[PORT_A]), VecPool::default());
            assert_eq!(a.receive(T0, VecBuf::from_slice(&bytes), accept), Err(reason));
            assert_eq!((a.stats().rx_drops.get(reason), a.stats().rx_drops.total()), (1, 1), "{reason:?}");
        }
    }
}
