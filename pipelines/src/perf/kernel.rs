//! Kernel baselines on loopback with the same messages and the same application work per message as
//! rosette's runs: the sender writes each `size`-byte message with its number and a clock stamp, the
//! TCP receivers cut the stream into messages and check each one's pattern and fold it into a digest
//! (`Checker`); the sender folds what it sent into its own digest, and the two must agree. Two
//! threads of this process, `std::net` sockets:
//! - [`tcp`]: one `write` per message (what a socket application does), Nagle on, then a ping-pong
//!   with `TCP_NODELAY`;
//! - [`tcp_batched`]: messages framed back to back into 64 KiB writes — the best the kernel can do;
//! - [`udp`]: one datagram per message (an extra line: the kernel drops what does not fit).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::app::stamp_for;
use super::stats::{fill_message, message_header, pattern_ok, Digest, Histogram};

/// What a baseline measured.
#[derive(Debug, Default)]
pub struct Baseline {
    /// Messages received per second.
    pub msgs_per_s: f64,
    /// Messages sent.
    pub sent: u64,
    /// Messages received.
    pub received: u64,
    /// Ping-pong round trips, ns.
    pub rtt: Histogram,
}

/// Cuts a byte stream into `size`-byte messages and does per message what rosette-perf's receiver
/// does: check the pattern, fold it into the digest.
struct Checker {
    size: usize,
    carry: Vec<u8>,
    digest: Digest,
    messages: u64,
    bad: u64,
}

impl Checker {
    fn new(size: usize) -> Checker {
        Checker { size, carry: Vec::with_capacity(size), digest: Digest::new(), messages: 0, bad: 0 }
    }

    fn one(&mut self, m: &[u8]) {
        let (seq, _stamp) = message_header(m);
        if pattern_ok(m, seq) {
            self.digest.update(m);
        } else {
            self.bad += 1;
        }
        self.messages += 1;
    }

    fn feed(&mut self, mut bytes: &[u8]) {
        if !self.carry.is_empty() {
            let need = (self.size - self.carry.len()).min(bytes.len());
            self.carry.extend_from_slice(&bytes[..need]);
            bytes = &bytes[need..];
            if self.carry.len() < self.size {
                return;
            }
            let carry = std::mem::take(&mut self.carry);
            self.one(&carry);
            self.carry = carry;
            self.carry.clear();
        }
        let mut chunks = bytes.chunks_exact(self.size);
        for m in &mut chunks {
            self.one(m);
        }
        self.carry.extend_from_slice(chunks.remainder());
    }
}

/// Messages per write of [`tcp_batched`].
pub fn messages_per_write(size: usize) -> usize {
    (64 * 1024 / size).max(1)
}

/// Receives a TCP stream until its end, checking every message; returns (messages, their digest, time
/// from the first byte to the end).
fn receive_checked(s: &mut TcpStream, size: usize) -> std::io::Result<(u64, u64, Duration)> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut check = Checker::new(size);
    let mut start = None;
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        start.get_or_insert_with(Instant::now);
        check.feed(&buf[..n]);
    }
    if check.bad > 0 {
        return Err(std::io::Error::other(format!("{} messages arrived damaged", check.bad)));
    }
    Ok((check.messages, check.digest.value(), start.map(|s| s.elapsed()).unwrap_or_default()))
}

/// The receiver's digest must be the sender's: the same end-to-end check rosette-perf makes.
fn same_digest(sent: u64, received: u64) -> std::io::Result<()> {
    if sent == received {
        Ok(())
    } else {
        Err(std::io::Error::other("the receiver's digest differs from the sender's"))
    }
}

/// TCP with the messages framed back to back into 64 KiB writes (at least one message per write).
pub fn tcp_batched(size: usize, seconds: f64) -> std::io::Result<Baseline> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let receiver = thread::spawn(move || -> std::io::Result<(u64, u64, Duration)> {
        let (mut s, _) = listener.accept()?;
        receive_checked(&mut s, size)
    });
    let mut s = TcpStream::connect(addr)?;
    let per_write = messages_per_write(size);
    let mut buf = vec![0u8; per_write * size];
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let mut sent = 0u64;
    let mut digest = Digest::new();
    while Instant::now() < end {
        for m in buf.chunks_exact_mut(size) {
            fill_message(m, sent, stamp_for(sent));
            digest.update(m);
            sent += 1;
        }
        s.write_all(&buf)?;
    }
    s.shutdown(Shutdown::Write)?;
    let (received, their, elapsed) = receiver.join().map_err(|_| std::io::Error::other("tcp receiver panicked"))??;
    same_digest(digest.value(), their)?;
    Ok(Baseline {
        msgs_per_s: received as f64 / elapsed.as_secs_f64().max(1e-9),
        sent,
        received,
        ..Baseline::default()
    })
}

/// TCP: a stream of messages (Nagle on, as a bulk sender would have it), then a ping-pong with
/// `TCP_NODELAY`.
pub fn tcp(size: usize, seconds: f64, pings: u32) -> std::io::Result<Baseline> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let receiver = thread::spawn(move || -> std::io::Result<(u64, u64, Duration)> {
        let (mut s, _) = listener.accept()?;
        let (received, digest, elapsed) = receive_checked(&mut s, size)?;
        // Ping-pong: echo each message back.
        let (mut p, _) = listener.accept()?;
        p.set_nodelay(true)?;
        let mut msg = vec![0u8; size];
        while p.read_exact(&mut msg).is_ok() {
            p.write_all(&msg)?;
        }
        Ok((received, digest, elapsed))
    });
    let mut s = TcpStream::connect(addr)?;
    let mut msg = vec![0u8; size];
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let mut sent = 0u64;
    let mut digest = Digest::new();
    while Instant::now() < end {
        for _ in 0..64 {
            fill_message(&mut msg, sent, stamp_for(sent));
            digest.update(&msg);
            s.write_all(&msg)?;
            sent += 1;
        }
    }
    s.shutdown(Shutdown::Write)?;
    let mut out = Baseline { sent, ..Baseline::default() };
    let mut p = TcpStream::connect(addr)?;
    p.set_nodelay(true)?;
    let mut back = vec![0u8; size];
    for i in 0..pings {
        fill_message(&mut msg, u64::from(i), 0);
        let t0 = Instant::now();
        p.write_all(&msg)?;
        p.read_exact(&mut back)?;
        if i >= pings / 20 {
            out.rtt.record(t0.elapsed().as_nanos() as u64);
        }
    }
    drop(p);
    let (received, their, elapsed) = receiver.join().map_err(|_| std::io::Error::other("tcp receiver panicked"))??;
    same_digest(digest.value(), their)?;
    out.received = received;
    out.msgs_per_s = received as f64 / elapsed.as_secs_f64();
    Ok(out)
}

/// UDP: one datagram per message as fast as `send_to` goes (the receiver counts what arrives; the
/// kernel drops when its buffer is full), then a ping-pong.
pub fn udp(size: usize, seconds: f64, pings: u32) -> std::io::Result<Baseline> {
    let rsock = UdpSocket::bind("127.0.0.1:0")?;
    let raddr = rsock.local_addr()?;
    rsock.set_read_timeout(Some(Duration::from_millis(200)))?;
    let done = Arc::new(AtomicBool::new(false));
    let done2 = done.clone();
    let receiver = thread::spawn(move || -> (u64, Duration) {
        let mut buf = vec![0u8; 65536];
        let mut received = 0u64;
        let mut start = None;
        let mut last = Instant::now();
        loop {
            match rsock.recv_from(&mut buf) {
                Ok((n, from)) => {
                    if n == size && buf[7] == 0xff {
                        let _ = rsock.send_to(&buf[..n], from);
                        continue;
                    }
                    start.get_or_insert_with(Instant::now);
                    last = Instant::now();
                    received += 1;
                }
                Err(_) if done2.load(Ordering::Relaxed) => break,
                Err(_) => {}
            }
        }
        (received, start.map(|s| last - s).unwrap_or_default())
    });
    let s = UdpSocket::bind("127.0.0.1:0")?;
    let mut msg = vec![0u8; size];
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let mut sent = 0u64;
    while Instant::now() < end {
        for _ in 0..64 {
            // Data sequence numbers never reach 2^56, so byte 7 is free for the ping tag.
            fill_message(&mut msg, sent, 0);
            if s.send_to(&msg, raddr).is_ok() {
                sent += 1;
            }
        }
    }
    let mut out = Baseline { sent, ..Baseline::default() };
    thread::sleep(Duration::from_millis(50));
    s.set_read_timeout(Some(Duration::from_millis(100)))?;
    let mut back = vec![0u8; size];
    for i in 0..pings {
        fill_message(&mut msg, u64::from(i), 0);
        msg[7] = 0xff;
        let t0 = Instant::now();
        s.send_to(&msg, raddr)?;
        if s.recv_from(&mut back).is_ok() && i >= pings / 20 {
            out.rtt.record(t0.elapsed().as_nanos() as u64);
        }
    }
    done.store(true, Ordering::Relaxed);
    let (received, elapsed) = receiver.join().map_err(|_| std::io::Error::other("udp receiver panicked"))?;
    out.received = received;
    out.msgs_per_s = received as f64 / elapsed.as_secs_f64().max(1e-9);
    Ok(out)
}
