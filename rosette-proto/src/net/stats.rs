//! Counters of the network interface: what came in, what went out, and every drop by reason.
//!
//! Every frame given to [`Interface::receive`](super::Interface::receive) is counted once in
//! [`Stats::received`] and exactly once more in [`Stats::delivered`], [`Stats::arp_handled`] or one
//! [`RxDrop`] reason, so `received == delivered + arp_handled + rx_drops.total()` always holds.
#![forbid(unsafe_code)]

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
    /// A good datagram found its socket's receive queue full (for the unordered channel, the event
    /// queue of [`Config::event_queue_capacity`](super::Config::event_queue_capacity)).
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
    /// [`Interface::send`](super::Interface::send) from a port we are not bound to.
    UnboundPort,
    /// Destination address unspecified or destination port zero.
    BadDestination,
    /// Payload plus headers larger than the MTU.
    TooLarge,
    /// Less than [`HEADERS_LEN`](super::HEADERS_LEN) bytes of headroom in the payload buffer.
    NoHeadroom,
    /// The payload buffer is shared ([`PacketBuf::is_shared`](crate::buf::PacketBuf::is_shared)), so its headroom cannot be written.
    SharedBuffer,
    /// The next hop is unresolved and the pending queue (or the table of addresses being resolved) is
    /// full.
    PendingFull,
    /// The transmit queue is full.
    QueueFull,
    /// A datagram waited longer than [`Config::pending_timeout`](super::Config::pending_timeout) for ARP.
    PendingTimeout,
    /// ARP gave up on the next hop after [`Config::arp_max_requests`](super::Config::arp_max_requests) requests.
    Unresolved,
    /// No buffer could be had from the pool for an ARP request (it is retried at the next timeout).
    ArpAllocFailed,
    /// An ARP reply could not be sent (transmit queue full, or no buffer).
    ArpReplyDropped,
    /// The payload buffer is a chain of segments, so headers written in front of it would not be
    /// followed by its whole payload in one slice (the UDP checksum could not be computed in place).
    NotContiguous,
}

impl TxDrop {
    /// Every reason, in declaration order.
    pub const ALL: [TxDrop; 12] = [
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
        TxDrop::NotContiguous,
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
    pub(crate) fn slot(&mut self, reason: RxDrop) -> &mut u64 {
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
        let mut copy = self.clone();
        *copy.slot(reason)
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
    /// Datagrams or frames refused or dropped: [`TxDrop::NotContiguous`].
    pub not_contiguous: u64,
}

impl TxDrops {
    pub(crate) fn slot(&mut self, reason: TxDrop) -> &mut u64 {
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
            TxDrop::NotContiguous => &mut self.not_contiguous,
        }
    }

    /// The counter for `reason`.
    pub fn get(&self, reason: TxDrop) -> u64 {
        let mut copy = self.clone();
        *copy.slot(reason)
    }

    /// All transmit drops and refusals.
    pub fn total(&self) -> u64 {
        TxDrop::ALL.iter().map(|&r| self.get(r)).sum()
    }
}

/// Counters of an [`Interface`](super::Interface) (and of the unordered channel, which is a socket on
/// one). See the module documentation for the balance that always holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames given to [`Interface::receive`](super::Interface::receive).
    pub received: u64,
    /// Datagrams handed to a socket (for the unordered channel: delivered as an event).
    pub delivered: u64,
    /// ARP frames for us that were acted on (request answered, or reply/request learnt from).
    pub arp_handled: u64,
    /// Datagrams accepted by [`Interface::send`](super::Interface::send).
    pub accepted: u64,
    /// UDP datagrams handed out by [`Interface::poll_transmit`](super::Interface::poll_transmit).
    pub sent: u64,
    /// UDP datagrams framed for a caller that transmits them itself
    /// ([`Interface::frame_in_place`](super::Interface::frame_in_place),
    /// [`Interface::write_header`](super::Interface::write_header)).
    pub framed: u64,
    /// ARP requests handed out by [`Interface::poll_transmit`](super::Interface::poll_transmit).
    pub arp_requests_sent: u64,
    /// ARP replies handed out by [`Interface::poll_transmit`](super::Interface::poll_transmit).
    pub arp_replies_sent: u64,
    /// Receive drops by reason.
    pub rx_drops: RxDrops,
    /// Transmit refusals and drops by reason.
    pub tx_drops: TxDrops,
}
