//! `rosette-perf --connections N --forge-rate R`: a flood of forged connection attempts at the
//! listener while the client's genuine connections transfer.
//!
//! [`ForgeStage`] is declared in the client's poll of `perf_reliable_mux.yaml`, after the dialer: it
//! adds, at `R` per second (from `$ROSETTE_PERF_FORGE`, unset: none), transport packets from a host
//! that does not exist (10.20.0.66, from 64 source ports) to the listener's address. Two in three are
//! well-formed Syns, each with a new connection id and epoch and the sequence number they imply, so
//! every one passes the listener's checks and costs it a cookie SynAck (which goes unanswered, as a
//! spoofed source's would); the third is data naming a guessed cookie. All carry a valid CRC. The
//! frames are written by rosette's own interface (the one header writer) and leave through the same
//! tx queue as the genuine traffic. The flood runs only while the client's application is sending
//! ([`FORGING`]).
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rosette::buf::BufPool;
use rosette::channel::time::Instant;
use rosette::net::{self, Interface};
use rosette::pipeline::{BuildError, Context, DeclaredStage, Stage, StageEnv, Verdict};
use rosette::substrate::{Batch, Mbuf, Mempool};
use rosette::wire::ethernet;
use rosette::wire::transport::{PacketType, Repr};

/// The environment variable with the flood's rate (attempts per second).
pub const FORGE_ENV: &str = "ROSETTE_PERF_FORGE";

/// On while the client sends (set by the client application).
pub static FORGING: AtomicBool = AtomicBool::new(false);

/// Forged packets sent so far (read by the client for its report).
pub static FORGED: AtomicU64 = AtomicU64::new(0);

const FORGER_MAC: ethernet::Address = ethernet::Address([2, 0, 0, 0, 0x20, 0x66]);
const FORGER_IP: core::net::Ipv4Addr = core::net::Ipv4Addr::new(10, 20, 0, 66);
const FIRST_PORT: u16 = 40000;
const PORTS: u16 = 64;

/// The flood's stage. See the module documentation.
#[derive(rosette::pipeline::StageParams)]
pub struct ForgeStage {
    /// The listener's address, `ip:port`.
    pub target: core::net::SocketAddrV4,
    /// The listener's MAC.
    pub target_mac: ethernet::Address,
    #[param(skip)]
    run: Option<Forger>,
}

struct Forger {
    iface: Interface<Mempool>,
    /// Attempts per second (0: none).
    rate: u64,
    /// When the flood started and how many it sent since.
    started: Option<(u64, u64)>,
    rng: u64,
}

impl DeclaredStage for ForgeStage {
    type Params = Self;
    fn build(mut params: Self, env: &StageEnv) -> Result<Self, BuildError> {
        let rate = match std::env::var(FORGE_ENV) {
            Ok(v) => {
                v.parse::<u64>().map_err(|_| BuildError::new(format!("${FORGE_ENV} must be a rate per second")))?
            }
            Err(_) => 0,
        };
        if rate > 0 {
            let pool = env.pool.clone().ok_or_else(|| BuildError::new("the forge stage needs the lcore's mempool"))?;
            let ports: Vec<u16> = (FIRST_PORT..FIRST_PORT + PORTS).collect();
            let mut cfg = net::Config::new(FORGER_MAC, FORGER_IP, &ports);
            cfg.static_arp.push((*params.target.ip(), ethernet::Address(params.target_mac.0)));
            cfg.udp_checksum = false;
            params.run =
                Some(Forger { iface: Interface::new(cfg, pool), rate, started: None, rng: 0x9e37_79b9_7f4a_7c15 });
        }
        Ok(params)
    }
}

impl Forger {
    fn next(&mut self) -> u32 {
        // xorshift64*: cheap, and nothing here needs to be unpredictable to the listener.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
    }

    /// One forged packet: a Syn (two in three) or data with a guessed cookie.
    fn forge(&mut self, now: Instant, target: core::net::SocketAddrV4, k: u64) {
        let (id, epoch) = (self.next() | 1, self.next());
        let r = if k % 3 == 2 {
            let mut r = Repr::new(PacketType::Data, id, self.next() | 1, epoch);
            r.seq = self.next();
            r.ack = self.next();
            r
        } else {
            let mut r = Repr::new(PacketType::Syn, id, 0, epoch);
            // The sequence number the protocol derives from the id and epoch (a well-formed Syn).
            r.seq = (epoch ^ id.rotate_left(16)).wrapping_mul(0x9E37_79B9);
            r
        };
        let Some(mut buf) = self.iface.pool_mut().alloc() else { return };
        let Ok(room) = buf.append(r.header_len()) else { return };
        if r.emit(room).is_err() {
            return;
        }
        let port = FIRST_PORT + (k % u64::from(PORTS)) as u16;
        if self.iface.send(now, port, target, buf).is_ok() {
            FORGED.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Stage for ForgeStage {
    fn on_packet(&mut self, packet: Mbuf, _cx: &Context) -> Verdict {
        Verdict::Pass(packet)
    }

    fn emit(&mut self, out: &mut Batch<'_>, cx: &Context) {
        let Some(f) = &mut self.run else { return };
        if !FORGING.load(Ordering::Relaxed) {
            f.started = None;
            return;
        }
        let now_ns = cx.now_nanos();
        let (t0, sent) = *f.started.get_or_insert((now_ns, 0));
        let due = (now_ns.saturating_sub(t0) as u128 * u128::from(f.rate) / 1_000_000_000) as u64;
        let now = Instant::from_nanos(now_ns);
        let room = (out.capacity() - out.len()) as u64;
        let n = due.saturating_sub(sent).min(room);
        for k in 0..n {
            f.forge(now, self.target, sent + k);
        }
        f.started = Some((t0, sent + n));
        while out.len() < out.capacity() {
            let Some(frame) = f.iface.poll_transmit(now) else { break };
            if out.push(frame).is_err() {
                break;
            }
        }
    }

    fn finish(&mut self, _cx: &Context) {
        self.run = None;
    }
}
