//! The unordered channel: UDP datagrams over IPv4 over Ethernet, wire-compatible with the Linux
//! kernel's UDP, as a sans-IO state machine.
//!
//! A kernel UDP socket on the other end of the link can send to and receive from an
//! [`UnorderedChannel`]: it answers ARP for its address, resolves its peers with ARP, validates every
//! header and checksum the kernel validates, and emits headers the kernel accepts. Delivery is what UDP
//! promises: each datagram at most once, intact, in no particular order, or not at all.

use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;
use std::collections::VecDeque;

use crate::buf::{BufPool, PacketBuf};
use crate::channel::time::Instant;
use crate::wire::{arp, ethernet, ipv4, udp, Error as WireError};

/// Bytes of headers the channel puts in front of a payload (Ethernet + IPv4 + UDP): the headroom a
/// payload buffer given to [`UnorderedChannel::send`] needs.
pub const HEADERS_LEN: usize = ethernet::HEADER_LEN + ipv4::HEADER_LEN + udp::HEADER_LEN;

/// Length of the ARP frames the channel emits (Ethernet header + ARP packet, unpadded: NICs pad to the
/// 60-byte minimum themselves).
pub const ARP_FRAME_LEN: usize = ethernet::HEADER_LEN + arp::PACKET_LEN;

/// Configuration of an [`UnorderedChannel`]: addresses, bounds and timers. Every queue and table is
/// allocated once, at these sizes, in [`UnorderedChannel::new`].
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
    /// Frames queued for [`UnorderedChannel::poll_transmit`].
    pub tx_queue_capacity: usize,
    /// Deliveries queued for [`UnorderedChannel::poll_event`]; datagrams beyond it are dropped.
    pub event_queue_capacity: usize,
    /// IP MTU: the largest IPv4 packet (header included) we send.
    pub mtu: usize,
    /// TTL of the packets we send.
    pub ttl: u8,
    /// Whether to set the "don't fragment" flag (Linux does for UDP by default).
    pub dont_frag: bool,
    /// IPv4 identification of the first datagram sent; each datagram takes the next value.
    pub first_ident: u16,
}

impl Config {
    /// A configuration with Linux-like defaults: /24 subnet, no gateway, no static ARP entries, 64
    /// learned ARP entries living 60 s, ARP retried every second up to 3 requests, 64 pending datagrams
    /// for up to 3 s, 256-frame transmit and event queues, MTU 1500, TTL 64, DF set, first IP id 0.
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
        }
    }
}

/// Why a received frame was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RxDrop {
    /// Shorter than an Ethernet header.
    BadEthernet,
    /// Addressed to another unicast MAC or a multicast MAC.
    NotOurMac,
    /// Neither ARP nor IPv4.
    UnknownEtherType,
    /// ARP that is truncated or not Ethernet/IPv4, or an unknown operation.
    BadArp,
    /// Well-formed ARP about addresses that are not ours (and not in our table).
    ArpNotForUs,
    /// Shorter than an IPv4 header.
    Ipv4Truncated,
    /// IPv4 version other than 4.
    Ipv4BadVersion,
    /// IPv4 header length below 20 or beyond the frame.
    Ipv4BadHeaderLen,
    /// IPv4 total length below the header length or beyond the frame.
    Ipv4BadLength,
    /// IPv4 header checksum mismatch.
    Ipv4BadChecksum,
    /// An IPv4 fragment (not reassembled).
    Ipv4Fragment,
    /// IPv4 destination is not our address nor a broadcast.
    NotOurIp,
    /// IPv4 source is a broadcast or multicast address (a martian: nobody can answer it).
    BadSource,
    /// IPv4 payload is not UDP.
    NotUdp,
    /// UDP header truncated or its length field out of range.
    UdpBadLength,
    /// UDP checksum mismatch.
    UdpBadChecksum,
    /// UDP destination port we are not bound to.
    WrongPort,
    /// A good datagram found the event queue full.
    EventQueueFull,
}

impl RxDrop {
    /// Every reason, in declaration order.
    pub const ALL: [RxDrop; 18] = [
        RxDrop::BadEthernet,
        RxDrop::NotOurMac,
        RxDrop::UnknownEtherType,
        RxDrop::BadArp,
        RxDrop::ArpNotForUs,
        RxDrop::Ipv4Truncated,
        RxDrop::Ipv4BadVersion,
        RxDrop::Ipv4BadHeaderLen,
        RxDrop::Ipv4BadLength,
        RxDrop::Ipv4BadChecksum,
        RxDrop::Ipv4Fragment,
        RxDrop::NotOurIp,
        RxDrop::BadSource,
        RxDrop::NotUdp,
        RxDrop::UdpBadLength,
        RxDrop::UdpBadChecksum,
        RxDrop::WrongPort,
        RxDrop::EventQueueFull,
    ];
}

/// Why an outgoing datagram or frame was refused or dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxDrop {
    /// [`UnorderedChannel::send`] from a port we are not bound to.
    UnboundPort,
    /// Destination address unspecified or destination port zero.
    BadDestination,
    /// Payload plus headers larger than the MTU.
    TooLarge,
    /// Less than [`HEADERS_LEN`] bytes of headroom in the payload buffer.
    NoHeadroom,
    /// The payload buffer is shared ([`PacketBuf::is_shared`]), so its headroom cannot be written.
    SharedBuffer,
    /// The next hop is unresolved and the pending queue (or the table of addresses being resolved) is
    /// full.
    PendingFull,
    /// The transmit queue is full.
    QueueFull,
    /// A datagram waited longer than [`Config::pending_timeout`] for ARP.
    PendingTimeout,
    /// ARP gave up on the next hop after [`Config::arp_max_requests`] requests.
    Unresolved,
    /// No buffer could be had from the pool for an ARP request (it is retried at the next timeout).
    ArpAllocFailed,
    /// An ARP reply could not be sent (transmit queue full, or no buffer).
    ArpReplyDropped,
}

impl TxDrop {
    /// Every reason, in declaration order.
    pub const ALL: [TxDrop; 11] = [
        TxDrop::UnboundPort,
        TxDrop::BadDestination,
        TxDrop::TooLarge,
        TxDrop::NoHeadroom,
        TxDrop::SharedBuffer,
        TxDrop::PendingFull,
        TxDrop::QueueFull,
        TxDrop::PendingTimeout,
        TxDrop::Unresolved,
        TxDrop::ArpAllocFailed,
        TxDrop::ArpReplyDropped,
    ];
}

/// Receive drop counters, one per [`RxDrop`] reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RxDrops {
    /// Frames dropped: [`RxDrop::BadEthernet`].
    pub bad_ethernet: u64,
    /// Frames dropped: [`RxDrop::NotOurMac`].
    pub not_our_mac: u64,
    /// Frames dropped: [`RxDrop::UnknownEtherType`].
    pub unknown_ethertype: u64,
    /// Frames dropped: [`RxDrop::BadArp`].
    pub bad_arp: u64,
    /// Frames dropped: [`RxDrop::ArpNotForUs`].
    pub arp_not_for_us: u64,
    /// Frames dropped: [`RxDrop::Ipv4Truncated`].
    pub ipv4_truncated: u64,
    /// Frames dropped: [`RxDrop::Ipv4BadVersion`].
    pub ipv4_bad_version: u64,
    /// Frames dropped: [`RxDrop::Ipv4BadHeaderLen`].
    pub ipv4_bad_header_len: u64,
    /// Frames dropped: [`RxDrop::Ipv4BadLength`].
    pub ipv4_bad_length: u64,
    /// Frames dropped: [`RxDrop::Ipv4BadChecksum`].
    pub ipv4_bad_checksum: u64,
    /// Frames dropped: [`RxDrop::Ipv4Fragment`].
    pub ipv4_fragment: u64,
    /// Frames dropped: [`RxDrop::NotOurIp`].
    pub not_our_ip: u64,
    /// Frames dropped: [`RxDrop::BadSource`].
    pub bad_source: u64,
    /// Frames dropped: [`RxDrop::NotUdp`].
    pub not_udp: u64,
    /// Frames dropped: [`RxDrop::UdpBadLength`].
    pub udp_bad_length: u64,
    /// Frames dropped: [`RxDrop::UdpBadChecksum`].
    pub udp_bad_checksum: u64,
    /// Frames dropped: [`RxDrop::WrongPort`].
    pub wrong_port: u64,
    /// Frames dropped: [`RxDrop::EventQueueFull`].
    pub event_queue_full: u64,
}

impl RxDrops {
    fn slot(&mut self, reason: RxDrop) -> &mut u64 {
        match reason {
            RxDrop::BadEthernet => &mut self.bad_ethernet,
            RxDrop::NotOurMac => &mut self.not_our_mac,
            RxDrop::UnknownEtherType => &mut self.unknown_ethertype,
            RxDrop::BadArp => &mut self.bad_arp,
            RxDrop::ArpNotForUs => &mut self.arp_not_for_us,
            RxDrop::Ipv4Truncated => &mut self.ipv4_truncated,
            RxDrop::Ipv4BadVersion => &mut self.ipv4_bad_version,
            RxDrop::Ipv4BadHeaderLen => &mut self.ipv4_bad_header_len,
            RxDrop::Ipv4BadLength => &mut self.ipv4_bad_length,
            RxDrop::Ipv4BadChecksum => &mut self.ipv4_bad_checksum,
            RxDrop::Ipv4Fragment => &mut self.ipv4_fragment,
            RxDrop::NotOurIp => &mut self.not_our_ip,
            RxDrop::BadSource => &mut self.bad_source,
            RxDrop::NotUdp => &mut self.not_udp,
            RxDrop::UdpBadLength => &mut self.udp_bad_length,
            RxDrop::UdpBadChecksum => &mut self.udp_bad_checksum,
            RxDrop::WrongPort => &mut self.wrong_port,
            RxDrop::EventQueueFull => &mut self.event_queue_full,
        }
    }

    /// The counter for `reason`.
    pub fn get(&self, reason: RxDrop) -> u64 {
        *self.clone().slot(reason)
    }

    /// All receive drops.
    pub fn total(&self) -> u64 {
        RxDrop::ALL.iter().map(|&r| self.get(r)).sum()
    }
}

/// Transmit drop counters, one per [`TxDrop`] reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TxDrops {
    /// Datagrams or frames refused or dropped: [`TxDrop::UnboundPort`].
    pub unbound_port: u64,
    /// Datagrams or frames refused or dropped: [`TxDrop::BadDestination`].
    pub bad_destination: u64,
    /// Datagrams or frames refused or dropped: [`TxDrop::TooLarge`].
    pub too_large: u64,
    /// Datagrams or frames refused or dropped: [`TxDrop::NoHeadroom`].
    pub no_headroom: u64,
    /// Datagrams or frames refused or dropped: [`TxDrop::SharedBuffer`].
    pub shared_buffer: u64,
    /// Datagrams or frames refused or dropped: [`TxDrop::PendingFull`].
    pub pending_full: u64,
    /// Datagrams or frames refused or dropped: [`TxDrop::QueueFull`].
    pub queue_full: u64,
    /// Datagrams or frames refused or dropped: [`TxDrop::PendingTimeout`].
    pub pending_timeout: u64,
    /// Datagrams or frames refused or dropped: [`TxDrop::Unresolved`].
    pub unresolved: u64,
    /// Datagrams or frames refused or dropped: [`TxDrop::ArpAllocFailed`].
    pub arp_alloc_failed: u64,
    /// Datagrams or frames refused or dropped: [`TxDrop::ArpReplyDropped`].
    pub arp_reply_dropped: u64,
}

impl TxDrops {
    fn slot(&mut self, reason: TxDrop) -> &mut u64 {
        match reason {
            TxDrop::UnboundPort => &mut self.unbound_port,
            TxDrop::BadDestination => &mut self.bad_destination,
            TxDrop::TooLarge => &mut self.too_large,
            TxDrop::NoHeadroom => &mut self.no_headroom,
            TxDrop::SharedBuffer => &mut self.shared_buffer,
            TxDrop::PendingFull => &mut self.pending_full,
            TxDrop::QueueFull => &mut self.queue_full,
            TxDrop::PendingTimeout => &mut self.pending_timeout,
            TxDrop::Unresolved => &mut self.unresolved,
            TxDrop::ArpAllocFailed => &mut self.arp_alloc_failed,
            TxDrop::ArpReplyDropped => &mut self.arp_reply_dropped,
        }
    }

    /// The counter for `reason`.
    pub fn get(&self, reason: TxDrop) -> u64 {
        *self.clone().slot(reason)
    }

    /// All transmit drops and refusals.
    pub fn total(&self) -> u64 {
        TxDrop::ALL.iter().map(|&r| self.get(r)).sum()
    }
}

/// Counters of an [`UnorderedChannel`].
///
/// Every frame given to [`UnorderedChannel::handle_packet`] is counted once in `received` and exactly
/// once more in `delivered`, `arp_handled` or one `rx_drops` reason, so
/// `received == delivered + arp_handled + rx_drops.total()` always holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames given to [`UnorderedChannel::handle_packet`].
    pub received: u64,
    /// Datagrams delivered as [`Event::Datagram`].
    pub delivered: u64,
    /// ARP frames for us that were acted on (request answered, or reply/request learnt from).
    pub arp_handled: u64,
    /// Datagrams accepted by [`UnorderedChannel::send`].
    pub accepted: u64,
    /// UDP datagrams handed out by [`UnorderedChannel::poll_transmit`].
    pub sent: u64,
    /// ARP requests handed out by [`UnorderedChannel::poll_transmit`].
    pub arp_requests_sent: u64,
    /// ARP replies handed out by [`UnorderedChannel::poll_transmit`].
    pub arp_replies_sent: u64,
    /// Receive drops by reason.
    pub rx_drops: RxDrops,
    /// Transmit refusals and drops by reason.
    pub tx_drops: TxDrops,
}

/// A received datagram, headers stripped.
#[derive(Debug)]
pub struct Datagram<B> {
    /// Who sent it.
    pub src: SocketAddrV4,
    /// Where it was sent: our address (or a broadcast address) and one of our ports.
    pub dst: SocketAddrV4,
    /// The payload: the very buffer given to [`UnorderedChannel::handle_packet`], with the Ethernet, IPv4
    /// and UDP headers removed by [`PacketBuf::adjust`] and any padding by [`PacketBuf::trim`].
    pub payload: B,
}

/// What the channel tells the application.
#[derive(Debug)]
pub enum Event<B> {
    /// A datagram arrived.
    Datagram(Datagram<B>),
}

/// [`UnorderedChannel::send`] refused a datagram; the payload buffer comes back untouched.
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

#[derive(Debug, Clone, Copy)]
struct Resolving {
    addr: Ipv4Addr,
    requests_sent: u32,
    next_request: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Learned {
    addr: Ipv4Addr,
    mac: ethernet::Address,
    expires: Instant,
}

/// UDP/IPv4 datagrams over Ethernet, sans-IO.
///
/// # Calling contract
/// The channel never performs I/O and never reads a clock; the caller drives it:
/// - Give every received frame to [`handle_packet`](Self::handle_packet). The channel takes the buffer:
///   it becomes a delivery, an ARP reply, or is dropped (returned to its pool) and counted.
/// - After any call, drain [`poll_transmit`](Self::poll_transmit) until `None` and put the frames on
///   the wire, and drain [`poll_event`](Self::poll_event) until `None` for deliveries.
/// - Call [`handle_timeout`](Self::handle_timeout) once `now` reaches
///   [`poll_timeout`](Self::poll_timeout) (calling it early or late is harmless; late only delays ARP
///   retries and pending expiry).
/// - `now` must not go backwards between calls.
///
/// # Guarantees
/// - A datagram is delivered only if its Ethernet destination is ours or broadcast, its IPv4 header is
///   well-formed (version 4, IHL ≥ 5, total length within the frame, not a fragment) with a verifying
///   header checksum, it is UDP from a unicast source to our address (or a broadcast) and a bound
///   port, and its UDP length is consistent and its checksum verifies (or is zero, "none", as Linux
///   accepts). Everything else is dropped and counted by reason in [`Stats::rx_drops`]; no input makes
///   the channel panic.
/// - Receive and send are zero-copy: deliveries are the received buffer with headers stripped, and sent
///   datagrams are the application's buffer with headers prepended in its headroom.
/// - Memory is bounded by [`Config`]: the transmit queue, event queue, pending queue and ARP tables are
///   allocated once in [`new`](Self::new) and never grow; nothing allocates per packet (ARP requests take a
///   buffer from the pool; ARP replies reuse the request's buffer when it is not shared).
/// - Sent datagrams carry a full UDP checksum and an IPv4 header without options, accepted by the
///   Linux kernel.
#[derive(Debug)]
pub struct UnorderedChannel<P: BufPool> {
    config: Config,
    pool: P,
    stats: Stats,
    /// Next IPv4 identification value.
    ident: u16,
    learned: Vec<Learned>,
    resolving: Vec<Resolving>,
    pending: VecDeque<Pending<P::Buf>>,
    /// Set when an ARP resolution completed while the transmit queue had no room for all its pending
    /// datagrams, so [`Self::poll_transmit`] knows to look again.
    pending_ready: bool,
    tx: VecDeque<(FrameKind, P::Buf)>,
    events: VecDeque<Event<P::Buf>>,
}

impl<P: BufPool> UnorderedChannel<P> {
    /// A channel with `config`, taking buffers for ARP requests (and for ARP replies when a request's
    /// buffer is shared) from `pool`.
    pub fn new(config: Config, pool: P) -> Self {
        UnorderedChannel {
            learned: Vec::with_capacity(config.arp_table_capacity),
            resolving: Vec::with_capacity(config.pending_capacity),
            pending: VecDeque::with_capacity(config.pending_capacity),
            pending_ready: false,
            tx: VecDeque::with_capacity(config.tx_queue_capacity),
            events: VecDeque::with_capacity(config.event_queue_capacity),
            ident: config.first_ident,
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

    /// Datagrams waiting for ARP resolution.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// The MAC address we would use for `addr` now (static entry, or unexpired learned entry).
    pub fn arp_lookup(&self, now: Instant, addr: Ipv4Addr) -> Option<ethernet::Address> {
        if let Some(&(_, mac)) = self.config.static_arp.iter().find(|(a, _)| *a == addr) {
            return Some(mac);
        }
        self.learned.iter().find(|e| e.addr == addr && e.expires > now).map(|e| e.mac)
    }

    fn drop_rx(&mut self, reason: RxDrop) {
        *self.stats.rx_drops.slot(reason) += 1;
    }

    fn drop_tx(&mut self, reason: TxDrop) {
        *self.stats.tx_drops.slot(reason) += 1;
    }

    fn is_bound(&self, port: u16) -> bool {
        self.config.ports.contains(&port)
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

    /// Hands one received frame to the channel. The buffer is consumed: delivered, turned into an ARP
    /// reply, or dropped and counted.
    pub fn handle_packet(&mut self, now: Instant, frame: P::Buf) {
        self.stats.received += 1;
        let (dst_mac, ethertype) = match ethernet::Packet::new_checked(frame.data()) {
            Ok(eth) => (eth.dst_addr(), eth.ethertype()),
            Err(_) => return self.drop_rx(RxDrop::BadEthernet),
        };
        if dst_mac != self.config.mac && !dst_mac.is_broadcast() {
            return self.drop_rx(RxDrop::NotOurMac);
        }
        match ethertype {
            ethernet::EtherType::Arp => self.handle_arp(now, frame),
            ethernet::EtherType::Ipv4 => self.handle_ipv4(frame),
            _ => self.drop_rx(RxDrop::UnknownEtherType),
        }
    }

    fn handle_arp(&mut self, now: Instant, mut frame: P::Buf) {
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
        // RFC 826: update an entry we already have whoever the target is; add one only when we are the
        // target (so broadcast chatter cannot fill the table).
        let known = self.learned.iter().any(|e| e.addr == sender);
        let learnt = plausible_sender && (for_us || known) && self.learn(now, sender, repr.source_hardware_addr);
        if !for_us && !learnt {
            return self.drop_rx(RxDrop::ArpNotForUs);
        }
        self.stats.arp_handled += 1;
        if !(for_us && repr.operation == arp::Operation::Request) {
            return;
        }
        let reply = arp::Repr {
            operation: arp::Operation::Reply,
            source_hardware_addr: self.config.mac,
            source_protocol_addr: self.config.addr,
            target_hardware_addr: repr.source_hardware_addr,
            target_protocol_addr: repr.source_protocol_addr,
        };
        if self.tx.len() >= self.config.tx_queue_capacity {
            return self.drop_tx(TxDrop::ArpReplyDropped);
        }
        // Reuse the request's buffer: it already holds at least ARP_FRAME_LEN bytes.
        let out = if frame.is_shared() {
            self.alloc_arp_frame()
        } else {
            let excess = frame.len().saturating_sub(ARP_FRAME_LEN);
            frame.trim(excess).ok().map(|()| frame)
        };
        let Some(mut out) = out else {
            return self.drop_tx(TxDrop::ArpReplyDropped);
        };
        self.write_arp(&mut out, repr.source_hardware_addr, &reply);
        self.tx.push_back((FrameKind::ArpReply, out));
    }

    /// Records `addr` → `mac`. Returns false when `addr` has a static entry (which the network cannot
    /// override) or the table has no room at all.
    fn learn(&mut self, now: Instant, addr: Ipv4Addr, mac: ethernet::Address) -> bool {
        if self.config.static_arp.iter().any(|(a, _)| *a == addr) {
            return false;
        }
        let entry = Learned { addr, mac, expires: now + self.config.arp_entry_lifetime };
        if let Some(e) = self.learned.iter_mut().find(|e| e.addr == addr) {
            *e = entry;
        } else if self.learned.len() < self.config.arp_table_capacity {
            self.learned.push(entry);
        } else if let Some(oldest) = self.learned.iter_mut().min_by_key(|e| e.expires) {
            *oldest = entry;
        } else {
            return false;
        }
        if let Some(i) = self.resolving.iter().position(|r| r.addr == addr) {
            self.resolving.swap_remove(i);
        }
        self.flush_pending(now);
        true
    }

    /// Moves pending datagrams whose next hop is now resolved to the transmit queue, as room allows.
    fn flush_pending(&mut self, now: Instant) {
        self.pending_ready = false;
        // One full rotation keeps the remaining entries in their order (so the front stays the oldest).
        for _ in 0..self.pending.len() {
            let Some(mut p) = self.pending.pop_front() else {
                break;
            };
            match self.arp_lookup(now, p.next_hop) {
                Some(mac) if self.tx.len() < self.config.tx_queue_capacity => {
                    ethernet::Packet::new_unchecked(p.frame.data_mut()).set_dst_addr(mac);
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

    fn handle_ipv4(&mut self, mut frame: P::Buf) {
        let data = &frame.data()[ethernet::HEADER_LEN..];
        let ip = match ipv4::Packet::new_checked(data) {
            Ok(ip) => ip,
            Err(WireError::Truncated) => return self.drop_rx(RxDrop::Ipv4Truncated),
            Err(WireError::BadHeaderLen) => return self.drop_rx(RxDrop::Ipv4BadHeaderLen),
            Err(_) => return self.drop_rx(RxDrop::Ipv4BadLength),
        };
        let ip_repr = match ipv4::Repr::parse(&ip) {
            Ok(repr) => repr,
            Err(WireError::BadVersion) => return self.drop_rx(RxDrop::Ipv4BadVersion),
            Err(WireError::Fragmented) => return self.drop_rx(RxDrop::Ipv4Fragment),
            Err(_) => return self.drop_rx(RxDrop::Ipv4BadChecksum),
        };
        let dst = ip_repr.dst_addr;
        if dst != self.config.addr && !dst.is_broadcast() && !self.is_directed_broadcast(dst) {
            return self.drop_rx(RxDrop::NotOurIp);
        }
        let src = ip_repr.src_addr;
        if src.is_broadcast() || src.is_multicast() || self.is_directed_broadcast(src) {
            return self.drop_rx(RxDrop::BadSource);
        }
        if ip_repr.protocol != ipv4::Protocol::Udp {
            return self.drop_rx(RxDrop::NotUdp);
        }
        let udp = match udp::Packet::new_checked(ip.payload()) {
            Ok(udp) => udp,
            Err(_) => return self.drop_rx(RxDrop::UdpBadLength),
        };
        // The port test is cheaper than the checksum, so traffic to other ports costs little.
        if !self.is_bound(udp.dst_port()) {
            return self.drop_rx(RxDrop::WrongPort);
        }
        let udp_repr = match udp::Repr::parse(&udp, ip_repr.src_addr, dst) {
            Ok(repr) => repr,
            Err(_) => return self.drop_rx(RxDrop::UdpBadChecksum),
        };
        if self.events.len() >= self.config.event_queue_capacity {
            return self.drop_rx(RxDrop::EventQueueFull);
        }
        let headers = ethernet::HEADER_LEN + usize::from(ip.header_len()) + udp::HEADER_LEN;
        let src = SocketAddrV4::new(ip_repr.src_addr, udp_repr.src_port);
        let dst = SocketAddrV4::new(dst, udp_repr.dst_port);
        // Both cannot fail (the lengths were checked above); if they ever did, drop rather than deliver
        // a wrong payload.
        if frame.adjust(headers).is_err() {
            return self.drop_rx(RxDrop::UdpBadLength);
        }
        let excess = frame.len().saturating_sub(udp_repr.payload_len);
        if frame.trim(excess).is_err() {
            return self.drop_rx(RxDrop::UdpBadLength);
        }
        self.stats.delivered += 1;
        self.events.push_back(Event::Datagram(Datagram { src, dst, payload: frame }));
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
        if !self.is_bound(src_port) {
            return refuse(self, TxDrop::UnboundPort, payload);
        }
        if dst.ip().is_unspecified() || dst.port() == 0 {
            return refuse(self, TxDrop::BadDestination, payload);
        }
        if payload.len() > self.config.mtu.saturating_sub(ipv4::HEADER_LEN + udp::HEADER_LEN)
            || payload.len() > usize::from(u16::MAX) - ipv4::HEADER_LEN - udp::HEADER_LEN
        {
            return refuse(self, TxDrop::TooLarge, payload);
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
            Err(addr) => self.arp_lookup(now, addr),
        };
        let needs_resolution = match (dst_mac, hop) {
            (Some(_), _) | (_, Ok(_)) => None,
            (None, Err(addr)) => Some((addr, !self.resolving.iter().any(|r| r.addr == addr))),
        };
        match needs_resolution {
            None if self.tx.len() >= self.config.tx_queue_capacity => {
                return refuse(self, TxDrop::QueueFull, payload);
            }
            Some((_, new))
                if self.pending.len() >= self.config.pending_capacity
                    || (new && self.resolving.len() >= self.config.pending_capacity) =>
            {
                return refuse(self, TxDrop::PendingFull, payload);
            }
            _ => {}
        }

        let mut frame = payload;
        let payload_len = frame.len();
        if frame.prepend(HEADERS_LEN).is_err() {
            // headroom() said yes but prepend said no; a failed prepend leaves the buffer as it was.
            return refuse(self, TxDrop::NoHeadroom, frame);
        }
        let data = frame.data_mut();
        let (eth_bytes, rest) = data.split_at_mut(ethernet::HEADER_LEN);
        let (ip_bytes, udp_bytes) = rest.split_at_mut(ipv4::HEADER_LEN);
        // The UDP checksum covers the payload, which is already in place right behind the header.
        let udp_repr = udp::Repr { src_port, dst_port: dst.port(), payload_len };
        udp_repr.emit(&mut udp::Packet::new_unchecked(udp_bytes), self.config.addr, *dst.ip());
        let ip_repr = ipv4::Repr {
            src_addr: self.config.addr,
            dst_addr: *dst.ip(),
            protocol: ipv4::Protocol::Udp,
            payload_len: udp_repr.buffer_len(),
            ttl: self.config.ttl,
            ident: self.ident,
            dont_frag: self.config.dont_frag,
            dscp_ecn: 0,
        };
        ip_repr.emit(&mut ipv4::Packet::new_unchecked(ip_bytes));
        let eth = ethernet::Repr {
            src_addr: self.config.mac,
            // Filled in when the next hop resolves.
            dst_addr: dst_mac.unwrap_or_default(),
            ethertype: ethernet::EtherType::Ipv4,
        };
        eth.emit(&mut ethernet::Packet::new_unchecked(eth_bytes));
        self.ident = self.ident.wrapping_add(1);
        self.stats.accepted += 1;

        match needs_resolution {
            None => self.tx.push_back((FrameKind::Datagram, frame)),
            Some((next_hop, new)) => {
                self.pending.push_back(Pending { next_hop, deadline: now + self.config.pending_timeout, frame });
                if new {
                    self.resolving.push(Resolving { addr: next_hop, requests_sent: 0, next_request: now });
                    self.send_arp_requests(now);
                }
            }
        }
        Ok(())
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
        let mut i = 0;
        while i < self.resolving.len() {
            let r = self.resolving[i];
            if r.next_request > now {
                i += 1;
                continue;
            }
            if r.requests_sent >= self.config.arp_max_requests {
                self.resolving.swap_remove(i);
                self.drop_pending_for(r.addr);
                continue;
            }
            if self.tx.len() >= self.config.tx_queue_capacity {
                // Try again at the next interval rather than spinning on a full queue.
                self.drop_tx(TxDrop::QueueFull);
            } else if let Some(mut frame) = self.alloc_arp_frame() {
                let request = arp::Repr {
                    operation: arp::Operation::Request,
                    source_hardware_addr: self.config.mac,
                    source_protocol_addr: self.config.addr,
                    target_hardware_addr: ethernet::Address::default(),
                    target_protocol_addr: r.addr,
                };
                self.write_arp(&mut frame, ethernet::Address::BROADCAST, &request);
                self.tx.push_back((FrameKind::ArpRequest, frame));
            } else {
                self.drop_tx(TxDrop::ArpAllocFailed);
            }
            let entry = &mut self.resolving[i];
            entry.requests_sent += 1;
            entry.next_request = now + self.config.arp_retry_interval;
            i += 1;
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

    /// The next delivery, if any.
    pub fn poll_event(&mut self) -> Option<Event<P::Buf>> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) next has work: an ARP retry or a pending datagram's
    /// expiry. `None` when nothing waits.
    pub fn poll_timeout(&self) -> Option<Instant> {
        // Every pending datagram got the same timeout and the queue keeps arrival order, so the front
        // expires first.
        let expiry = self.pending.front().map(|p| p.deadline);
        let retry = self.resolving.iter().map(|r| r.next_request).min();
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
    use crate::buf::{VecBuf, VecPool, DEFAULT_HEADROOM};
    use crate::wire::captures::{
        hex, KERNEL_ARP_REPLY, KERNEL_ARP_REQUEST, KERNEL_UDP_EMPTY, KERNEL_UDP_HELLO, KERNEL_UDP_ODD, KERNEL_UDP_REPLY,
    };

    // The two ends of the kernel captures (see `wire::captures`).
    const MAC_A: ethernet::Address = ethernet::Address([2, 0, 0, 0, 0, 0x0a]);
    const MAC_B: ethernet::Address = ethernet::Address([2, 0, 0, 0, 0, 0x0b]);
    const IP_A: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
    const IP_B: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
    const PORT_A: u16 = 9000;
    const PORT_B: u16 = 40000;
    const T0: Instant = Instant::from_secs(100);

    type Channel = UnorderedChannel<VecPool>;

    /// The channel playing 10.99.0.1:9000, the receiving end of the captures.
    fn channel_a() -> Channel {
        UnorderedChannel::new(Config::new(MAC_A, IP_A, &[PORT_A]), VecPool::default())
    }

    /// The channel playing 10.99.0.2:40000, the sending end of the captures.
    fn channel_b(config: impl FnOnce(&mut Config)) -> Channel {
        let mut c = Config::new(MAC_B, IP_B, &[PORT_B]);
        config(&mut c);
        UnorderedChannel::new(c, VecPool::default())
    }

    fn frame(capture: &str) -> VecBuf {
        VecBuf::from_slice(&hex(capture))
    }

    fn payload(bytes: &[u8]) -> VecBuf {
        VecBuf::from_slice(bytes)
    }

    fn datagrams(ch: &mut Channel) -> Vec<Datagram<VecBuf>> {
        std::iter::from_fn(|| ch.poll_event()).map(|Event::Datagram(d)| d).collect()
    }

    fn transmitted(ch: &mut Channel, now: Instant) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| ch.poll_transmit(now)).map(|b| b.data().to_vec()).collect()
    }

    fn assert_balanced(ch: &Channel) {
        let s = ch.stats();
        assert_eq!(s.received, s.delivered + s.arp_handled + s.rx_drops.total(), "{s:?}");
    }

    /// A UDP/IPv4/Ethernet frame built field by field, for forging.
    fn udp_frame(src: SocketAddrV4, dst: SocketAddrV4, dst_mac: ethernet::Address, body: &[u8]) -> Vec<u8> {
        let mut out = vec![0; HEADERS_LEN + body.len()];
        out[HEADERS_LEN..].copy_from_slice(body);
        let udp_repr = udp::Repr { src_port: src.port(), dst_port: dst.port(), payload_len: body.len() };
        udp_repr.emit(&mut udp::Packet::new_unchecked(&mut out[34..]), *src.ip(), *dst.ip());
        let ip_repr = ipv4::Repr {
            src_addr: *src.ip(),
            dst_addr: *dst.ip(),
            protocol: ipv4::Protocol::Udp,
            payload_len: udp_repr.buffer_len(),
            ttl: 64,
            ident: 7,
            dont_frag: true,
            dscp_ecn: 0,
        };
        ip_repr.emit(&mut ipv4::Packet::new_unchecked(&mut out[14..]));
        let eth = ethernet::Repr { src_addr: MAC_B, dst_addr: dst_mac, ethertype: ethernet::EtherType::Ipv4 };
        eth.emit(&mut ethernet::Packet::new_unchecked(&mut out[..]));
        out
    }

    fn b_to_a(body: &[u8]) -> Vec<u8> {
        udp_frame(SocketAddrV4::new(IP_B, PORT_B), SocketAddrV4::new(IP_A, PORT_A), MAC_A, body)
    }

    fn refill_ip_checksum(f: &mut [u8]) {
        ipv4::Packet::new_unchecked(&mut f[14..]).fill_checksum();
    }

    #[test]
    fn answers_kernel_arp_request_byte_for_byte_in_the_same_buffer() {
        let mut ch = channel_a();
        ch.handle_packet(T0, frame(KERNEL_ARP_REQUEST));
        let reply = ch.poll_transmit(T0).unwrap();
        assert_eq!(reply.data(), &hex(KERNEL_ARP_REPLY)[..]);
        assert_eq!(reply.headroom(), DEFAULT_HEADROOM, "the request's own buffer, rewritten in place");
        assert!(ch.poll_transmit(T0).is_none());
        assert_eq!(ch.stats().arp_replies_sent, 1);
        // The requester was learnt (we are its target).
        assert_eq!(ch.arp_lookup(T0, IP_B), Some(MAC_B));
        assert_balanced(&ch);
    }

    #[test]
    fn answers_padded_request_with_unpadded_reply() {
        let mut ch = channel_a();
        let mut bytes = hex(KERNEL_ARP_REQUEST);
        bytes.resize(60, 0);
        ch.handle_packet(T0, VecBuf::from_slice(&bytes));
        assert_eq!(ch.poll_transmit(T0).unwrap().data(), &hex(KERNEL_ARP_REPLY)[..]);
    }

    #[test]
    fn delivers_kernel_datagrams_zero_copy() {
        let mut ch = channel_a();
        for capture in [KERNEL_UDP_HELLO, KERNEL_UDP_ODD, KERNEL_UDP_EMPTY] {
            ch.handle_packet(T0, frame(capture));
        }
        let got = datagrams(&mut ch);
        let bodies: Vec<&[u8]> = got.iter().map(|d| d.payload.data()).collect();
        assert_eq!(bodies, [&b"hello rosette"[..], b"odd", b""]);
        for d in &got {
            assert_eq!(d.src, SocketAddrV4::new(IP_B, PORT_B));
            assert_eq!(d.dst, SocketAddrV4::new(IP_A, PORT_A));
            // Same buffer, headers consumed by adjust: the payload sits where it arrived.
            assert_eq!(d.payload.headroom(), DEFAULT_HEADROOM + HEADERS_LEN);
        }
        assert_eq!(ch.stats().delivered, 3);
        assert_balanced(&ch);
    }

    #[test]
    fn ethernet_padding_is_trimmed_from_delivery() {
        let mut ch = channel_a();
        let mut bytes = hex(KERNEL_UDP_ODD);
        bytes.resize(60, 0xee);
        ch.handle_packet(T0, VecBuf::from_slice(&bytes));
        assert_eq!(datagrams(&mut ch)[0].payload.data(), b"odd");
    }

    #[test]
    fn sends_byte_identical_to_kernel_when_mac_known() {
        let mut ch = channel_b(|c| {
            c.static_arp.push((IP_A, MAC_A));
            c.first_ident = 0x8229;
        });
        let dst = SocketAddrV4::new(IP_A, PORT_A);
        for body in [&b"hello rosette"[..], b"odd", b""] {
            ch.send(T0, PORT_B, dst, payload(body)).unwrap();
        }
        let out = transmitted(&mut ch, T0);
        assert_eq!(out, [hex(KERNEL_UDP_HELLO), hex(KERNEL_UDP_ODD), hex(KERNEL_UDP_EMPTY)]);
        assert_eq!(ch.stats().sent, 3);
    }

    #[test]
    fn send_is_zero_copy() {
        let mut ch = channel_b(|c| c.static_arp.push((IP_A, MAC_A)));
        ch.send(T0, PORT_B, SocketAddrV4::new(IP_A, PORT_A), payload(b"in place")).unwrap();
        let f = ch.poll_transmit(T0).unwrap();
        assert_eq!(f.headroom(), DEFAULT_HEADROOM - HEADERS_LEN);
        assert_eq!(&f.data()[HEADERS_LEN..], b"in place");
    }

    #[test]
    fn resolves_with_arp_then_sends_like_the_kernel() {
        let mut ch = channel_b(|c| c.first_ident = 0x8229);
        let dst = SocketAddrV4::new(IP_A, PORT_A);
        ch.send(T0, PORT_B, dst, payload(b"hello rosette")).unwrap();
        // Only the ARP request goes out, identical to the kernel's.
        assert_eq!(transmitted(&mut ch, T0), [hex(KERNEL_ARP_REQUEST)]);
        assert_eq!(ch.pending_len(), 1);
        assert_eq!(ch.poll_timeout(), Some(T0 + Duration::from_secs(1)));
        // A second datagram to the same address does not ask again.
        ch.send(T0, PORT_B, dst, payload(b"odd")).unwrap();
        assert!(ch.poll_transmit(T0).is_none());
        // The kernel's reply releases both, in order.
        ch.handle_packet(T0, frame(KERNEL_ARP_REPLY));
        assert_eq!(transmitted(&mut ch, T0), [hex(KERNEL_UDP_HELLO), hex(KERNEL_UDP_ODD)]);
        assert_eq!(ch.pending_len(), 0);
        assert_eq!(ch.poll_timeout(), None);
        assert_eq!(ch.stats().arp_requests_sent, 1);
        assert_balanced(&ch);
    }

    #[test]
    fn talks_to_itself_across_a_pair() {
        // A sends to B with nothing configured: ARP both ways, then the datagram.
        let mut a = channel_a();
        let mut b = channel_b(|_| {});
        a.send(T0, PORT_A, SocketAddrV4::new(IP_B, PORT_B), payload(b"ping")).unwrap();
        for _ in 0..4 {
            for f in std::iter::from_fn(|| a.poll_transmit(T0)) {
                b.handle_packet(T0, f);
            }
            for f in std::iter::from_fn(|| b.poll_transmit(T0)) {
                a.handle_packet(T0, f);
            }
        }
        let got = datagrams(&mut b);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].payload.data(), b"ping");
        assert_eq!(got[0].src, SocketAddrV4::new(IP_A, PORT_A));
        // The reply needs no ARP: B learnt A from A's request.
        b.send(T0, PORT_B, got[0].src, payload(b"pong")).unwrap();
        a.handle_packet(T0, b.poll_transmit(T0).unwrap());
        assert_eq!(datagrams(&mut a)[0].payload.data(), b"pong");
        assert_balanced(&a);
        assert_balanced(&b);
    }

    #[test]
    fn the_kernels_reply_is_accepted_by_the_sender_side() {
        let mut ch = channel_b(|_| {});
        ch.handle_packet(T0, frame(KERNEL_UDP_REPLY));
        let got = datagrams(&mut ch);
        assert_eq!(got[0].payload.data(), b"reply from kernel");
        assert_eq!(got[0].src, SocketAddrV4::new(IP_A, PORT_A));
    }

    /// One frame per receive drop reason, each counted exactly there.
    #[test]
    fn every_rx_drop_reason_is_counted() {
        let good = b_to_a(b"x");
        let mut cases: Vec<(RxDrop, Vec<u8>)> = Vec::new();
        cases.push((RxDrop::BadEthernet, good[..13].to_vec()));
        let mut f = good.clone();
        f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 0x99]);
        cases.push((RxDrop::NotOurMac, f));
        let mut f = good.clone();
        f[0..6].copy_from_slice(&[0x01, 0, 0x5e, 0, 0, 1]);
        cases.push((RxDrop::NotOurMac, f));
        let mut f = good.clone();
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        cases.push((RxDrop::UnknownEtherType, f));
        let req = hex(KERNEL_ARP_REQUEST);
        cases.push((RxDrop::BadArp, req[..40].to_vec()));
        let mut f = req.clone();
        f[14 + 7] = 9; // operation 9
        cases.push((RxDrop::BadArp, f));
        let mut f = req.clone();
        f[14 + 27] = 77; // who has 10.99.0.77?
        cases.push((RxDrop::ArpNotForUs, f));
        cases.push((RxDrop::Ipv4Truncated, good[..14 + 19].to_vec()));
        let mut f = good.clone();
        f[14] = 0x65;
        refill_ip_checksum(&mut f);
        cases.push((RxDrop::Ipv4BadVersion, f));
        let mut f = good.clone();
        f[14] = 0x44;
        cases.push((RxDrop::Ipv4BadHeaderLen, f));
        let mut f = good.clone();
        f[16..18].copy_from_slice(&200u16.to_be_bytes());
        cases.push((RxDrop::Ipv4BadLength, f));
        let mut f = good.clone();
        f[24] ^= 0xff;
        cases.push((RxDrop::Ipv4BadChecksum, f));
        let mut f = good.clone();
        ipv4::Packet::new_unchecked(&mut f[14..]).set_flags_and_offset(false, true, 0);
        refill_ip_checksum(&mut f);
        cases.push((RxDrop::Ipv4Fragment, f));
        cases.push((
            RxDrop::NotOurIp,
            udp_frame(
                SocketAddrV4::new(IP_B, PORT_B),
                SocketAddrV4::new(Ipv4Addr::new(10, 99, 0, 3), PORT_A),
                MAC_A,
                b"x",
            ),
        ));
        let mut f = good.clone();
        f[14 + 9] = 6;
        refill_ip_checksum(&mut f);
        cases.push((RxDrop::NotUdp, f));
        let mut f = good.clone();
        f[38..40].copy_from_slice(&7u16.to_be_bytes());
        cases.push((RxDrop::UdpBadLength, f));
        let mut f = good.clone();
        *f.last_mut().unwrap() ^= 0x01;
        cases.push((RxDrop::UdpBadChecksum, f));
        cases.push((
            RxDrop::BadSource,
            udp_frame(
                SocketAddrV4::new(Ipv4Addr::new(224, 0, 0, 1), PORT_B),
                SocketAddrV4::new(IP_A, PORT_A),
                MAC_A,
                b"x",
            ),
        ));
        cases.push((
            RxDrop::WrongPort,
            udp_frame(SocketAddrV4::new(IP_B, PORT_B), SocketAddrV4::new(IP_A, PORT_A + 1), MAC_A, b"x"),
        ));

        for (reason, bytes) in cases {
            let mut ch = channel_a();
            ch.handle_packet(T0, VecBuf::from_slice(&bytes));
            assert_eq!(ch.stats().rx_drops.get(reason), 1, "{reason:?}: {:?}", ch.stats());
            assert_eq!(ch.stats().rx_drops.total(), 1, "{reason:?}");
            assert!(ch.poll_event().is_none(), "{reason:?}");
            assert!(ch.poll_transmit(T0).is_none(), "{reason:?}");
            assert_balanced(&ch);
        }

        // The event queue bound.
        let mut c = Config::new(MAC_A, IP_A, &[PORT_A]);
        c.event_queue_capacity = 1;
        let mut ch = UnorderedChannel::new(c, VecPool::default());
        ch.handle_packet(T0, VecBuf::from_slice(&good));
        ch.handle_packet(T0, VecBuf::from_slice(&good));
        assert_eq!(ch.stats().rx_drops.get(RxDrop::EventQueueFull), 1);
        assert_eq!(ch.stats().delivered, 1);
        assert_balanced(&ch);
    }

    #[test]
    fn broadcasts_and_zero_checksums_are_delivered() {
        let mut ch = channel_a();
        for dst in [Ipv4Addr::BROADCAST, Ipv4Addr::new(10, 99, 0, 255)] {
            let f = udp_frame(
                SocketAddrV4::new(IP_B, PORT_B),
                SocketAddrV4::new(dst, PORT_A),
                ethernet::Address::BROADCAST,
                b"all",
            );
            ch.handle_packet(T0, VecBuf::from_slice(&f));
        }
        let mut f = b_to_a(b"nocsum");
        f[40..42].copy_from_slice(&[0, 0]);
        ch.handle_packet(T0, VecBuf::from_slice(&f));
        assert_eq!(datagrams(&mut ch).len(), 3);
    }

    /// Every single-bit corruption of a kernel datagram is either dropped or harmless (it hit a field
    /// that does not change what is delivered); a wrong payload or source is never delivered.
    #[test]
    fn corrupted_datagrams_are_never_delivered() {
        let original = hex(KERNEL_UDP_HELLO);
        let mut delivered = 0;
        for byte in 0..original.len() {
            for bit in 0..8 {
                let mut f = original.clone();
                f[byte] ^= 1 << bit;
                let mut ch = channel_a();
                ch.handle_packet(T0, VecBuf::from_slice(&f));
                for d in datagrams(&mut ch) {
                    delivered += 1;
                    assert!(byte < 14, "byte {byte} bit {bit} was delivered");
                    assert_eq!(d.payload.data(), b"hello rosette");
                    assert_eq!(d.src, SocketAddrV4::new(IP_B, PORT_B));
                }
                assert_balanced(&ch);
            }
        }
        // Only flips of the Ethernet source address (6 bytes × 8 bits) get through.
        assert_eq!(delivered, 48);
    }

    #[test]
    fn pending_queue_is_bounded_and_expires() {
        let mut ch = channel_b(|c| c.pending_capacity = 2);
        let dst = SocketAddrV4::new(IP_A, PORT_A);
        ch.send(T0, PORT_B, dst, payload(b"1")).unwrap();
        ch.send(T0, PORT_B, dst, payload(b"2")).unwrap();
        let err = ch.send(T0, PORT_B, dst, payload(b"3")).unwrap_err();
        assert_eq!(err.reason, TxDrop::PendingFull);
        assert_eq!(err.payload.data(), b"3", "payload comes back untouched");
        assert_eq!(err.payload.headroom(), DEFAULT_HEADROOM);
        assert_eq!(ch.stats().tx_drops.pending_full, 1);
        assert_eq!(ch.pending_len(), 2);
        // The datagrams expire after pending_timeout (3 s), counted; ARP is retried meanwhile.
        let mut now = T0;
        while let Some(t) = ch.poll_timeout() {
            assert!(t > now || t == T0);
            now = t.max(now);
            ch.handle_timeout(now);
            transmitted(&mut ch, now);
        }
        assert_eq!(ch.stats().tx_drops.pending_timeout, 2);
        assert_eq!(ch.pending_len(), 0);
        assert_eq!(ch.stats().arp_requests_sent, 3);
        assert_eq!(ch.stats().sent, 0);
    }

    #[test]
    fn unanswered_arp_gives_up_after_max_requests() {
        let mut ch = channel_b(|c| {
            c.arp_max_requests = 2;
            c.pending_timeout = Duration::from_secs(3600);
        });
        ch.send(T0, PORT_B, SocketAddrV4::new(IP_A, PORT_A), payload(b"lost")).unwrap();
        assert_eq!(transmitted(&mut ch, T0).len(), 1);
        ch.handle_timeout(T0 + Duration::from_secs(1));
        assert_eq!(transmitted(&mut ch, T0).len(), 1);
        ch.handle_timeout(T0 + Duration::from_secs(2));
        assert!(ch.poll_transmit(T0).is_none());
        assert_eq!(ch.stats().tx_drops.unresolved, 1);
        assert_eq!(ch.pending_len(), 0);
        assert_eq!(ch.poll_timeout(), None);
    }

    #[test]
    fn every_send_refusal_is_counted_and_returns_the_payload() {
        let dst = SocketAddrV4::new(IP_A, PORT_A);
        let mut ch = channel_b(|c| {
            c.static_arp.push((IP_A, MAC_A));
            c.tx_queue_capacity = 1;
        });
        let cases: Vec<(TxDrop, u16, SocketAddrV4, VecBuf)> = vec![
            (TxDrop::UnboundPort, PORT_B + 1, dst, payload(b"x")),
            (TxDrop::BadDestination, PORT_B, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 1), payload(b"x")),
            (TxDrop::BadDestination, PORT_B, SocketAddrV4::new(IP_A, 0), payload(b"x")),
            (TxDrop::TooLarge, PORT_B, dst, payload(&[0; 1473])),
            (TxDrop::NoHeadroom, PORT_B, dst, {
                let mut b = VecBuf::with_capacity(64, HEADERS_LEN - 1);
                b.append(1).unwrap();
                b
            }),
        ];
        for (reason, port, to, p) in cases {
            let before = p.data().to_vec();
            let err = ch.send(T0, port, to, p).unwrap_err();
            assert_eq!(err.reason, reason);
            assert_eq!(err.payload.data(), &before[..]);
        }
        // The largest payload that fits the MTU is accepted; then the 1-frame queue is full.
        ch.send(T0, PORT_B, dst, payload(&[0; 1472])).unwrap();
        assert_eq!(ch.send(T0, PORT_B, dst, payload(b"x")).unwrap_err().reason, TxDrop::QueueFull);
        let s = &ch.stats().tx_drops;
        assert_eq!((s.unbound_port, s.bad_destination, s.too_large, s.no_headroom, s.queue_full), (1, 2, 1, 1, 1));
        assert_eq!(ch.poll_transmit(T0).unwrap().len(), 1514);
    }

    #[test]
    fn arp_request_without_pool_buffers_is_counted_and_retried() {
        let c = Config::new(MAC_B, IP_B, &[PORT_B]);
        let mut ch = UnorderedChannel::new(c, VecPool::default().with_limit(0));
        ch.send(T0, PORT_B, SocketAddrV4::new(IP_A, PORT_A), payload(b"x")).unwrap();
        assert!(ch.poll_transmit(T0).is_none());
        assert_eq!(ch.stats().tx_drops.arp_alloc_failed, 1);
        *ch.pool_mut() = VecPool::default();
        ch.handle_timeout(T0 + Duration::from_secs(1));
        assert_eq!(transmitted(&mut ch, T0).len(), 1);
    }

    #[test]
    fn arp_table_is_bounded_and_entries_expire() {
        let mut c = Config::new(MAC_A, IP_A, &[PORT_A]);
        c.arp_table_capacity = 2;
        let mut ch = UnorderedChannel::new(c, VecPool::default());
        let req = hex(KERNEL_ARP_REQUEST);
        for (i, host) in [2u8, 3, 4].into_iter().enumerate() {
            let mut f = req.clone();
            f[14 + 13] = host; // sender MAC last byte
            f[14 + 17] = host; // sender IP last byte
            ch.handle_packet(T0 + Duration::from_secs(i as u64), VecBuf::from_slice(&f));
        }
        assert_eq!(ch.learned.len(), 2);
        let now = T0 + Duration::from_secs(3);
        // The oldest (10.99.0.2) was replaced.
        assert_eq!(ch.arp_lookup(now, IP_B), None);
        assert_eq!(ch.arp_lookup(now, Ipv4Addr::new(10, 99, 0, 4)), Some(ethernet::Address([2, 0, 0, 0, 0, 4])));
        assert_eq!(ch.arp_lookup(now + Duration::from_secs(60), Ipv4Addr::new(10, 99, 0, 4)), None);
        assert_eq!(ch.stats().arp_replies_sent + ch.tx.len() as u64, 3);
    }

    #[test]
    fn static_entries_are_not_overridden_and_strangers_are_not_learnt() {
        let mut ch = channel_a();
        ch.config.static_arp.push((IP_B, MAC_B));
        let mut f = hex(KERNEL_ARP_REQUEST);
        f[14 + 13] = 0x66; // claims 10.99.0.2 is at ...:66
        ch.handle_packet(T0, VecBuf::from_slice(&f));
        assert_eq!(ch.arp_lookup(T0, IP_B), Some(MAC_B));
        // A reply between two other hosts is not learnt.
        let mut f = hex(KERNEL_ARP_REPLY);
        f[14 + 17] = 50;
        f[14 + 27] = 51;
        f[0..6].copy_from_slice(&MAC_A.0);
        ch.handle_packet(T0, VecBuf::from_slice(&f));
        assert_eq!(ch.arp_lookup(T0, Ipv4Addr::new(10, 99, 0, 50)), None);
        assert_eq!(ch.stats().rx_drops.arp_not_for_us, 1);
    }

    #[test]
    fn gateway_is_the_next_hop_off_link() {
        let gw = Ipv4Addr::new(10, 99, 0, 254);
        let mut ch = channel_b(|c| c.gateway = Some(gw));
        ch.send(T0, PORT_B, SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 53), payload(b"q")).unwrap();
        let arp_frame = ch.poll_transmit(T0).unwrap();
        let packet = arp::Packet::new_checked(&arp_frame.data()[14..]).unwrap();
        assert_eq!(packet.target_protocol_addr(), gw);
    }

    /// A buffer that can claim to be shared, as an mbuf whose reference count is above one.
    #[derive(Debug)]
    struct MaybeShared {
        inner: VecBuf,
        shared: bool,
    }

    impl PacketBuf for MaybeShared {
        fn data(&self) -> &[u8] {
            self.inner.data()
        }
        fn data_mut(&mut self) -> &mut [u8] {
            assert!(!self.shared, "wrote through a shared buffer");
            self.inner.data_mut()
        }
        fn headroom(&self) -> usize {
            self.inner.headroom()
        }
        fn tailroom(&self) -> usize {
            self.inner.tailroom()
        }
        fn prepend(&mut self, n: usize) -> Result<&mut [u8], crate::buf::BufError> {
            assert!(!self.shared, "wrote through a shared buffer");
            self.inner.prepend(n)
        }
        fn append(&mut self, n: usize) -> Result<&mut [u8], crate::buf::BufError> {
            self.inner.append(n)
        }
        fn adjust(&mut self, n: usize) -> Result<(), crate::buf::BufError> {
            self.inner.adjust(n)
        }
        fn trim(&mut self, n: usize) -> Result<(), crate::buf::BufError> {
            self.inner.trim(n)
        }
        fn share(&self) -> Option<Self> {
            None
        }
        fn is_shared(&self) -> bool {
            self.shared
        }
    }

    /// Hands out unshared buffers with a recognisable headroom of 64.
    #[derive(Debug, Default)]
    struct MaybeSharedPool;

    impl BufPool for MaybeSharedPool {
        type Buf = MaybeShared;
        fn alloc(&mut self) -> Option<MaybeShared> {
            Some(MaybeShared { inner: VecBuf::with_capacity(256, 64), shared: false })
        }
    }

    #[test]
    fn shared_buffers_are_never_written() {
        let mut ch = UnorderedChannel::new(Config::new(MAC_A, IP_A, &[PORT_A]), MaybeSharedPool);
        // An ARP request in a shared buffer is answered from a fresh pool buffer.
        ch.handle_packet(T0, MaybeShared { inner: frame(KERNEL_ARP_REQUEST), shared: true });
        let reply = ch.poll_transmit(T0).unwrap();
        assert_eq!(reply.data(), &hex(KERNEL_ARP_REPLY)[..]);
        assert_eq!(reply.headroom(), 64);
        // A shared payload is refused, untouched.
        let shared = MaybeShared { inner: payload(b"x"), shared: true };
        let err = ch.send(T0, PORT_A, SocketAddrV4::new(IP_B, PORT_B), shared).unwrap_err();
        assert_eq!(err.reason, TxDrop::SharedBuffer);
        assert_eq!(ch.stats().tx_drops.shared_buffer, 1);
        // Delivery only adjusts and trims, which a shared buffer allows.
        ch.handle_packet(T0, MaybeShared { inner: frame(KERNEL_UDP_HELLO), shared: true });
        let Some(Event::Datagram(d)) = ch.poll_event() else { panic!("not delivered") };
        assert_eq!(d.payload.data(), b"hello rosette");
    }

    #[test]
    fn arp_reply_dropped_when_transmit_queue_full() {
        let mut c = Config::new(MAC_A, IP_A, &[PORT_A]);
        c.tx_queue_capacity = 1;
        let mut ch = UnorderedChannel::new(c, VecPool::default());
        ch.handle_packet(T0, frame(KERNEL_ARP_REQUEST));
        ch.handle_packet(T0, frame(KERNEL_ARP_REQUEST));
        assert_eq!(ch.stats().tx_drops.arp_reply_dropped, 1);
        assert_eq!(ch.stats().arp_handled, 2);
        assert_eq!(transmitted(&mut ch, T0).len(), 1);
    }

    #[test]
    fn resolved_datagrams_wait_for_room_in_the_transmit_queue() {
        let mut ch = channel_b(|c| c.tx_queue_capacity = 2);
        let dst = SocketAddrV4::new(IP_A, PORT_A);
        for body in [b"1", b"2", b"3"] {
            ch.send(T0, PORT_B, dst, payload(body)).unwrap();
        }
        // The ARP request leaves; the reply resolves three datagrams but only two fit at once.
        assert_eq!(transmitted(&mut ch, T0).len(), 1);
        ch.handle_packet(T0, frame(KERNEL_ARP_REPLY));
        assert_eq!(ch.pending_len(), 1);
        let bodies: Vec<Vec<u8>> = transmitted(&mut ch, T0).iter().map(|f| f[HEADERS_LEN..].to_vec()).collect();
        assert_eq!(bodies, [b"1".to_vec(), b"2".to_vec(), b"3".to_vec()]);
        assert_eq!(ch.pending_len(), 0);
        assert_eq!(ch.stats().sent, 3);
    }
}
