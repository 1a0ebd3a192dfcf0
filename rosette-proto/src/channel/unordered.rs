//! The unordered channel: UDP datagrams over IPv4 over Ethernet, wire-compatible with the Linux
//! kernel's UDP, as a sans-IO state machine.
//!
//! A kernel UDP socket on the other end of the link can send to and receive from an
//! [`UnorderedChannel`]: it answers ARP for its address, resolves its peers with ARP, validates every
//! header and checksum the kernel validates, and emits headers the kernel accepts. Delivery is what UDP
//! promises: each datagram at most once, intact, in no particular order, or not at all.
//!
//! The channel is a socket on a [`net::Interface`](crate::net::Interface), which does all of the above
//! (ARP, validation, the header writer, counters); the socket adds the event queue of deliveries. Its
//! configuration, counters and drop reasons are the interface's, re-exported here.

use core::net::{Ipv4Addr, SocketAddrV4};
use std::collections::VecDeque;

use crate::buf::BufPool;
use crate::channel::time::Instant;
use crate::net::Interface;
use crate::wire::ethernet;

pub use crate::net::{
    Config, Datagram, RxDrop, RxDrops, SendError, Stats, TxDrop, TxDrops, ARP_FRAME_LEN, HEADERS_LEN,
};

/// What the channel tells the application.
#[derive(Debug)]
pub enum Event<B> {
    /// A datagram arrived.
    Datagram(Datagram<B>),
}

/// UDP/IPv4 datagrams over Ethernet, sans-IO: a socket bound to every port of [`Config::ports`] on
/// its own [`Interface`].
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
/// Those of [`Interface`] (what is delivered, zero-copy both ways, bounded memory, kernel-compatible
/// headers), plus: at most [`Config::event_queue_capacity`] deliveries wait in the event queue, which
/// is allocated once; a datagram beyond it is dropped and counted as [`RxDrop::EventQueueFull`].
#[derive(Debug)]
pub struct UnorderedChannel<P: BufPool> {
    iface: Interface<P>,
    events: VecDeque<Event<P::Buf>>,
}

impl<P: BufPool> UnorderedChannel<P> {
    /// A channel with `config`, taking buffers for ARP requests (and for ARP replies when a request's
    /// buffer is shared) from `pool`.
    pub fn new(config: Config, pool: P) -> Self {
        UnorderedChannel {
            events: VecDeque::with_capacity(config.event_queue_capacity),
            iface: Interface::new(config, pool),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        self.iface.config()
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        self.iface.stats()
    }

    /// The interface the channel is a socket on (ARP cache, queues).
    pub fn interface(&self) -> &Interface<P> {
        &self.iface
    }

    /// The buffer pool.
    pub fn pool_mut(&mut self) -> &mut P {
        self.iface.pool_mut()
    }

    /// Datagrams waiting for ARP resolution.
    pub fn pending_len(&self) -> usize {
        self.iface.pending_len()
    }

    /// The MAC address we would use for `addr` now (static entry, or unexpired learned entry).
    pub fn arp_lookup(&self, now: Instant, addr: Ipv4Addr) -> Option<ethernet::Address> {
        self.iface.arp_lookup(now, addr)
    }

    /// Adds a static ARP entry at run time; false when the static table is full.
    pub fn add_static_neighbor(&mut self, addr: Ipv4Addr, mac: ethernet::Address) -> bool {
        self.iface.add_static_neighbor(addr, mac)
    }

    /// Hands one received frame to the channel. The buffer is consumed: delivered, turned into an ARP
    /// reply, or dropped and counted.
    pub fn handle_packet(&mut self, now: Instant, frame: P::Buf) {
        let _ = self.receive(now, frame);
    }

    /// [`handle_packet`](Self::handle_packet), saying why the frame was dropped, if it was.
    pub fn receive(&mut self, now: Instant, frame: P::Buf) -> Result<(), RxDrop> {
        let (events, capacity) = (&mut self.events, self.iface.config().event_queue_capacity);
        self.iface.receive(now, frame, |d| {
            if events.len() >= capacity {
                return Err(d);
            }
            events.push_back(Event::Datagram(d));
            Ok(())
        })
    }

    /// Sends `payload` from our address and `src_port` to `dst` (see [`Interface::send`]).
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
        self.iface.send(now, src_port, dst, payload)
    }

    /// The next frame to put on the wire: ARP replies and requests, and datagrams whose next hop is
    /// resolved, in the order they became ready.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<P::Buf> {
        self.iface.poll_transmit(now)
    }

    /// The next delivery, if any.
    pub fn poll_event(&mut self) -> Option<Event<P::Buf>> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) next has work: an ARP retry or a pending datagram's
    /// expiry. `None` when nothing waits.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.iface.poll_timeout()
    }

    /// Does the timer work due at `now`: retries ARP, gives up on addresses that never answered, and
    /// drops datagrams that waited too long (counting each).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.iface.handle_timeout(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::time::Duration;

    use crate::buf::{BufPool, PacketBuf, VecBuf, VecPool, DEFAULT_HEADROOM};
    use crate::wire::captures::{
        hex, KERNEL_ARP_REPLY, KERNEL_ARP_REQUEST, KERNEL_UDP_EMPTY, KERNEL_UDP_HELLO, KERNEL_UDP_ODD, KERNEL_UDP_REPLY,
    };
    use crate::wire::{arp, ipv4};

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

    /// A UDP/IPv4/Ethernet frame from B, written by the network layer's one header writer; tests forge
    /// bad frames by changing its bytes afterwards.
    fn udp_frame(src: SocketAddrV4, dst: SocketAddrV4, dst_mac: ethernet::Address, body: &[u8]) -> Vec<u8> {
        let mut out = vec![0; HEADERS_LEN + body.len()];
        let (hdr, rest) = out.split_at_mut(HEADERS_LEN);
        rest.copy_from_slice(body);
        let mut framer = crate::net::Framer::new(crate::net::FramerConfig::new(MAC_B, *src.ip()), 7);
        framer.write_header(hdr, dst_mac, src.port(), dst, body).expect("a test frame fits");
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
        assert_eq!(ch.interface().neighbors().learned_len(), 2);
        let now = T0 + Duration::from_secs(3);
        // The oldest (10.99.0.2) was replaced.
        assert_eq!(ch.arp_lookup(now, IP_B), None);
        assert_eq!(ch.arp_lookup(now, Ipv4Addr::new(10, 99, 0, 4)), Some(ethernet::Address([2, 0, 0, 0, 0, 4])));
        assert_eq!(ch.arp_lookup(now + Duration::from_secs(60), Ipv4Addr::new(10, 99, 0, 4)), None);
        assert_eq!(ch.stats().arp_replies_sent + ch.interface().tx_queue_len() as u64, 3);
    }

    #[test]
    fn static_entries_are_not_overridden_and_strangers_are_not_learnt() {
        let mut ch = channel_a();
        assert!(ch.add_static_neighbor(IP_B, MAC_B));
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
