//! What every application endpoint of a connection channel can do, whatever its kind: [`AppEndpoint`].
//!
//! A pipeline declaration names a channel kind in one word (`reliable`, `streaming`); the generated
//! module hands out the endpoint of the matching type. Application code written against this trait
//! does not change when the word does. What differs stays on the concrete types: message boundaries
//! and packed zero-copy deliveries on [`ReliableEndpoint`], partial writes and stream events on
//! [`StreamEndpoint`].

use std::time::Duration;

use super::endpoint::{EndpointError, ReliableEndpoint, StreamEndpoint};
use crate::channel::{reliable, streaming};

/// Bytes in, bytes out, over a connection channel's application endpoint.
///
/// `send` hands the channel one unit of data: one message on a reliable channel, bytes appended to
/// the stream on a streaming one. `recv` reads what arrived, in order, as a byte sequence (message
/// boundaries are not reported here; frame your data if you need them on both kinds). `finish` ends
/// the sending direction after everything sent; the peer's `recv` then returns `Ok(0)`.
pub trait AppEndpoint {
    /// Sends `data`, waiting up to `timeout` for room.
    fn send(&mut self, data: &[u8], timeout: Duration) -> Result<(), EndpointError>;

    /// Reads received bytes into `out`, waiting up to `timeout` for some to arrive. `Ok(0)` means the
    /// peer finished and everything it sent was read (or `out` is empty).
    fn recv(&mut self, out: &mut [u8], timeout: Duration) -> Result<usize, EndpointError>;

    /// Ends the sending direction after everything sent.
    fn finish(&mut self, timeout: Duration) -> Result<(), EndpointError>;
}

/// A reliable endpoint read as a byte sequence: the messages delivered but not read yet.
#[derive(Debug, Default)]
pub(crate) struct PendingBytes {
    bytes: Vec<u8>,
    read: usize,
    ended: bool,
}

impl PendingBytes {
    fn take(&mut self, out: &mut [u8]) -> usize {
        let n = (self.bytes.len() - self.read).min(out.len());
        out[..n].copy_from_slice(&self.bytes[self.read..self.read + n]);
        self.read += n;
        if self.read == self.bytes.len() {
            self.bytes.clear();
            self.read = 0;
        }
        n
    }
}

impl AppEndpoint for ReliableEndpoint {
    fn send(&mut self, data: &[u8], timeout: Duration) -> Result<(), EndpointError> {
        ReliableEndpoint::send(self, data, timeout)
    }

    fn recv(&mut self, out: &mut [u8], timeout: Duration) -> Result<usize, EndpointError> {
        if out.is_empty() {
            return Ok(0);
        }
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let pending = &mut self.pending;
            if pending.read < pending.bytes.len() {
                return Ok(pending.take(out));
            }
            if pending.ended {
                return Ok(0);
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match ReliableEndpoint::recv_event(self, left)? {
                ev @ (reliable::Event::Message(_) | reliable::Event::Messages(_)) => {
                    for message in ev.messages() {
                        for seg in message {
                            self.pending.bytes.extend_from_slice(seg);
                        }
                    }
                }
                reliable::Event::PeerClosed => self.pending.ended = true,
                reliable::Event::Connected | reliable::Event::Closed => {}
                reliable::Event::Reset(_) => return Err(EndpointError::ConnectionReset),
                reliable::Event::Failed => return Err(EndpointError::ConnectionFailed),
            }
        }
    }

    fn finish(&mut self, timeout: Duration) -> Result<(), EndpointError> {
        self.close(timeout)
    }
}

impl AppEndpoint for StreamEndpoint {
    fn send(&mut self, data: &[u8], timeout: Duration) -> Result<(), EndpointError> {
        self.write_all(data, timeout)
    }

    fn recv(&mut self, out: &mut [u8], timeout: Duration) -> Result<usize, EndpointError> {
        if out.is_empty() {
            return Ok(0);
        }
        let n = self.read(out, timeout)?;
        while let Some(event) = self.poll_event() {
            match event {
                streaming::Event::Reset(_) => return Err(EndpointError::ConnectionReset),
                streaming::Event::Failed => return Err(EndpointError::ConnectionFailed),
                _ => {}
            }
        }
        Ok(n)
    }

    fn finish(&mut self, timeout: Duration) -> Result<(), EndpointError> {
        StreamEndpoint::finish(self, timeout)
    }
}
