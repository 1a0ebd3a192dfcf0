//! The connection driver: a reliable or streaming connection carried in UDP over a
//! [`net::Interface`](crate::net::Interface), sans-IO and generic over the buffer type.
//!
//! [`UdpLink`] is the one driver used by the reliable and streaming pipeline stages on DPDK mbufs and
//! by simulation on [`VecBuf`](crate::buf::VecBuf) frames: receive goes through the interface
//! (Ethernet/ARP/IPv4/UDP validation; datagrams from the peer go to an inbox for the connection, others
//! are counted as foreign), and transmit frames every packet with the interface's one header writer:
//! - a data packet gets its headers in its own headroom *before* the connection keeps it for
//!   retransmission ([`Endpoint::poll_transmit_with`]), once the peer's MAC is known: one buffer per
//!   frame, nothing copied, nothing chained;
//! - a packet that is not shared (acks, control) is sent through the interface, which frames it in
//!   place and holds it while ARP resolves the peer;
//! - a shared packet (kept for retransmission), or one without headroom, goes out behind a fresh
//!   header buffer ([`PacketBuf::chain`]): zero-copy;
//! - such a packet while the peer is unresolved is copied once, so the interface can hold the copy.
#![forbid(unsafe_code)]

use core::net::SocketAddrV4;
use std::collections::VecDeque;

use crate::buf::{BufPool, PacketBuf};
use crate::channel::sim::Endpoint;
use crate::channel::time::Instant;
use crate::net::{Config, Interface, RxDrop, HEADERS_LEN};

/// Where [`UdpLink::transmit`] puts frames: a transmit burst, a queue, a simulated wire.
pub trait FrameSink<B> {
    /// True while another frame fits.
    fn has_room(&self) -> bool;
    /// Takes a frame, or gives it back when full.
    fn push(&mut self, frame: B) -> Result<(), B>;
}

/// An unbounded sink (simulation, tests).
impl<B> FrameSink<B> for Vec<B> {
    fn has_room(&self) -> bool {
        true
    }
    fn push(&mut self, frame: B) -> Result<(), B> {
        Vec::push(self, frame);
        Ok(())
    }
}

/// Counters of a [`UdpLink`], beyond its interface's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Datagrams from addresses other than the peer (dropped).
    pub foreign: u64,
    /// Packets framed in their own headroom before the connection kept them (one buffer per frame).
    pub framed: u64,
    /// Shared packets sent behind a header buffer (zero-copy).
    pub chained: u64,
    /// Shared packets copied because the peer's MAC was not resolved yet.
    pub copied: u64,
}

/// A connection's UDP link to one peer over an interface of its own. See the module documentation.
///
/// Drive it like its connection: [`receive`](Self::receive) (or
/// [`receive_into`](Self::receive_into), which hands the datagram to the connection at once) every
/// frame, then
/// [`advance`](Self::advance) (deliveries to the connection, timers) and
/// [`transmit`](Self::transmit) on every iteration.
#[derive(Debug)]
pub struct UdpLink<P: BufPool> {
    iface: Interface<P>,
    port: u16,
    peer: SocketAddrV4,
    /// Datagrams from the peer, waiting for [`Self::advance`] (bounded by
    /// [`Config::event_queue_capacity`], allocated once).
    inbox: VecDeque<P::Buf>,
    stats: LinkStats,
}

impl<P: BufPool> UdpLink<P> {
    /// A link from the first port of `config.ports` to `peer`.
    ///
    /// # Panics
    /// When `config.ports` is empty.
    pub fn new(config: Config, pool: P, peer: SocketAddrV4) -> UdpLink<P> {
        let port = *config.ports.first().expect("a UDP link needs a bound port");
        UdpLink {
            inbox: VecDeque::with_capacity(config.event_queue_capacity),
            iface: Interface::new(config, pool),
            port,
            peer,
            stats: LinkStats::default(),
        }
    }

    /// The interface (UDP/ARP counters, neighbor cache).
    pub fn interface(&self) -> &Interface<P> {
        &self.iface
    }

    /// The link's own counters.
    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// Takes one received frame; says why it was dropped, if it was (a datagram from another address
    /// than the peer is taken and counted as [`LinkStats::foreign`]).
    pub fn receive(&mut self, now: Instant, frame: P::Buf) -> Result<(), RxDrop> {
        let capacity = self.iface.config().event_queue_capacity;
        let (inbox, peer, stats) = (&mut self.inbox, self.peer, &mut self.stats);
        self.iface.receive(now, frame, |d| {
            if d.src != peer {
                stats.foreign += 1;
                return Ok(());
            }
            if inbox.len() >= capacity {
                return Err(d);
            }
            inbox.push_back(d.payload);
            Ok(())
        })
    }

    /// Takes one received frame and hands a datagram from the peer to `conn` at once (after any that
    /// [`Self::receive`] left waiting, so the order holds): what it completes is then ready in the same
    /// iteration, for an application polled before the iteration ends. Says why the frame was
    /// dropped, if it was.
    pub fn receive_into<C: Endpoint<Buf = P::Buf>>(
        &mut self,
        conn: &mut C,
        now: Instant,
        frame: P::Buf,
    ) -> Result<(), RxDrop> {
        while let Some(d) = self.inbox.pop_front() {
            conn.handle_datagram(now, d);
        }
        let (peer, stats) = (self.peer, &mut self.stats);
        self.iface.receive(now, frame, |d| {
            if d.src != peer {
                stats.foreign += 1;
                return Ok(());
            }
            conn.handle_datagram(now, d.payload);
            Ok(())
        })
    }

    /// Feeds the connection what arrived from the peer and runs the link's and the connection's due
    /// timers.
    pub fn advance<C: Endpoint<Buf = P::Buf>>(&mut self, conn: &mut C, now: Instant) {
        while let Some(d) = self.inbox.pop_front() {
            conn.handle_datagram(now, d);
        }
        if self.iface.poll_timeout().is_some_and(|t| t <= now) {
            self.iface.handle_timeout(now);
        }
        if conn.poll_timeout().is_some_and(|t| t <= now) {
            conn.handle_timeout(now);
        }
    }

    /// Moves what the link and the connection have to send into `out`, as room allows.
    pub fn transmit<C: Endpoint<Buf = P::Buf>, S: FrameSink<P::Buf>>(
        &mut self,
        conn: &mut C,
        now: Instant,
        out: &mut S,
    ) {
        flush(&mut self.iface, now, out);
        while out.has_room() {
            if !transmit_one(&mut self.iface, &mut self.stats, conn, now, self.port, self.peer, out) {
                break;
            }
            flush(&mut self.iface, now, out);
        }
    }
}

/// Moves frames ready in the interface (ARP, datagrams it framed) into `out`, as room allows.
pub(crate) fn flush<P: BufPool, S: FrameSink<P::Buf>>(iface: &mut Interface<P>, now: Instant, out: &mut S) {
    while out.has_room() {
        let Some(frame) = iface.poll_transmit(now) else { return };
        if out.push(frame).is_err() {
            return;
        }
    }
}

/// Sends the next packet `conn` has for `peer`, if any (false when it has none): framed in its own
/// headroom when the peer is resolved, otherwise through [`send_payload`].
pub(crate) fn transmit_one<P: BufPool, C: Endpoint<Buf = P::Buf>, S: FrameSink<P::Buf>>(
    iface: &mut Interface<P>,
    stats: &mut LinkStats,
    conn: &mut C,
    now: Instant,
    port: u16,
    peer: SocketAddrV4,
    out: &mut S,
) -> bool {
    let mut framed = false;
    let Some(p) = conn.poll_transmit_with(now, |buf| {
        let n = iface.frame_in_place(now, buf, port, peer);
        framed = n > 0;
        n
    }) else {
        return false;
    };
    if framed {
        stats.framed += 1;
        // A full sink drops the frame, as a full NIC queue would; the connection retransmits.
        let _ = out.push(p);
    } else {
        send_payload(iface, stats, now, port, peer, p, out);
    }
    true
}

/// Sends one UDP payload to `peer`: through the interface when it can be framed in place, behind a
/// header buffer otherwise (shared, or no headroom). Failures drop the packet (counted by the
/// interface; the connection retransmits).
fn send_payload<P: BufPool, S: FrameSink<P::Buf>>(
    iface: &mut Interface<P>,
    stats: &mut LinkStats,
    now: Instant,
    port: u16,
    peer: SocketAddrV4,
    payload: P::Buf,
    out: &mut S,
) {
    if !payload.is_shared() && payload.headroom() >= HEADERS_LEN {
        let _ = iface.send(now, port, peer, payload);
        return;
    }
    if iface.next_hop_mac(now, *peer.ip()).is_none() {
        // Rare path (peer not resolved yet): a private copy, with headroom, the interface can hold
        // while it resolves the peer. A chained payload cannot be copied from one slice: dropped.
        if !payload.is_contiguous() {
            return;
        }
        let Some(mut copy) = iface.pool_mut().alloc() else { return };
        let Ok(room) = copy.append(payload.len()) else { return };
        room.copy_from_slice(payload.data());
        stats.copied += 1;
        drop(payload);
        let _ = iface.send(now, port, peer, copy);
        return;
    }
    if !payload.is_contiguous() {
        return;
    }
    let Some(mut head) = iface.pool_mut().alloc() else { return };
    let Ok(hdr) = head.append(HEADERS_LEN) else { return };
    if iface.write_header(now, hdr, port, peer, payload.data()).is_err() {
        return;
    }
    if let Ok(frame) = head.chain(payload) {
        stats.chained += 1;
        let _ = out.push(frame);
    }
}
