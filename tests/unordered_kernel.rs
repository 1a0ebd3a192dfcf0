//! The unordered channel against the Linux kernel's UDP, live.
//!
//! Two network namespaces joined by a veth pair: in one, the kernel has 10.98.0.1/24 and a python3
//! UDP socket on port 7000 that echoes each datagram upper-cased; in the other, the interface has no
//! address (so that kernel stays silent) and a python3 AF_PACKET socket relays raw frames, as hex lines,
//! between the veth and this test, which runs an [`UnorderedChannel`] as 10.98.0.2:9000. Checksum
//! offloads are off on the kernel's side, so it computes its checksums in software and verifies ours
//! (veth would otherwise mark our frames as already verified).
//!
//! The test checks both directions and both ARP roles: the channel resolves the kernel with ARP and
//! sends; the kernel echoes; then, with the kernel's neighbour cache flushed, the kernel resolves the
//! channel with ARP and sends first.
//!
//! It needs root, `ip`, `ethtool`, python3 and a kernel that lets it create namespaces and veth pairs
//! (resource `netns`; `scripts/setup` installs the tools): without them it fails saying what is
//! missing, unless `ROSETTE_ALLOW_SKIP` names `netns` (never in CI; see `rosette::testing`).

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant as WallClock};

use rosette::buf::{PacketBuf, VecBuf, VecPool};
use rosette::channel::time::Instant;
use rosette::channel::unordered::{Config, Event, UnorderedChannel};
use rosette::wire::ethernet;

const KERNEL_ADDR: Ipv4Addr = Ipv4Addr::new(10, 98, 0, 1);
const KERNEL_PORT: u16 = 7000;
const OUR_ADDR: Ipv4Addr = Ipv4Addr::new(10, 98, 0, 2);
const OUR_PORT: u16 = 9000;
const OUR_MAC: ethernet::Address = ethernet::Address([0x02, 0x52, 0x4f, 0x53, 0x00, 0x02]);

/// Relays frames: hex lines on stdin go out on the interface; frames received are printed as hex lines.
const BRIDGE: &str = r#"
import socket, sys, threading
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((sys.argv[1], 0))
def rx():
    while True:
        data, addr = s.recvfrom(65535)
        if addr[2] != socket.PACKET_OUTGOING:
            sys.stdout.write(data.hex() + "\n")
            sys.stdout.flush()
threading.Thread(target=rx, daemon=True).start()
print("ready", flush=True)
for line in sys.stdin:
    line = line.strip()
    if line:
        s.send(bytes.fromhex(line))
"#;

/// Echoes three datagrams upper-cased, then on "go" sends one first.
const KERNEL_PEER: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.98.0.1", 7000))
s.settimeout(20)
print("ready", flush=True)
for _ in range(3):
    data, peer = s.recvfrom(4096)
    s.sendto(data.upper(), peer)
    print("echoed %d bytes to %s:%d" % (len(data), peer[0], peer[1]), flush=True)
sys.stdin.readline()
s.sendto(b"kernel speaks first", ("10.98.0.2", 9000))
print("sent first", flush=True)
"#;

/// Deletes the namespaces (and with them the veth pair) however the test ends.
struct Namespaces([String; 2]);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn run(args: &[&str]) -> Result<(), String> {
    let status = Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{}` failed: {status}", args.join(" ")))
    }
}

fn lines_of(child: &mut Child) -> Receiver<String> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn spawn_in(ns: &str, script: &str, arg: &str) -> Child {
    Command::new("ip")
        .args(["netns", "exec", ns, "python3", "-c", script, arg])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn python3 in the namespace")
}

fn wait_ready(lines: &Receiver<String>, who: &str) {
    let line = lines.recv_timeout(Duration::from_secs(10)).unwrap_or_else(|_| panic!("{who} never got ready"));
    assert_eq!(line, "ready", "{who}");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    (0..s.len()).step_by(2).map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok())).collect()
}

/// Drives the channel until `done` says so or 10 s pass: frames from the bridge go in, frames out go
/// to the bridge, timers fire, deliveries are collected.
fn drive(
    ch: &mut UnorderedChannel<VecPool>,
    clock: WallClock,
    bridge_in: &mut ChildStdin,
    bridge_out: &Receiver<String>,
    delivered: &mut Vec<(SocketAddrV4, Vec<u8>)>,
    done: impl Fn(&[(SocketAddrV4, Vec<u8>)]) -> bool,
) {
    let now = || Instant::from_nanos(clock.elapsed().as_nanos() as u64);
    let deadline = clock.elapsed() + Duration::from_secs(10);
    while !done(delivered) {
        assert!(clock.elapsed() < deadline, "timed out; delivered so far {delivered:?}; stats {:?}", ch.stats());
        while let Some(frame) = ch.poll_transmit(now()) {
            writeln!(bridge_in, "{}", hex(frame.data())).expect("write to the bridge");
        }
        bridge_in.flush().expect("flush the bridge");
        if let Ok(line) = bridge_out.recv_timeout(Duration::from_millis(20)) {
            if let Some(bytes) = unhex(&line) {
                ch.handle_packet(now(), VecBuf::from_slice(&bytes));
            }
        }
        if ch.poll_timeout().is_some_and(|t| t <= now()) {
            ch.handle_timeout(now());
        }
        while let Some(Event::Datagram(d)) = ch.poll_event() {
            assert_eq!(*d.dst.ip(), OUR_ADDR);
            delivered.push((d.src, d.payload.data().to_vec()));
        }
    }
}

/// The `Udp: InCsumErrors` counter of the namespace's kernel.
fn kernel_udp_csum_errors(ns: &str) -> u64 {
    let out = Command::new("ip").args(["netns", "exec", ns, "cat", "/proc/net/snmp"]).output().expect("read snmp");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut udp = text.lines().filter(|l| l.starts_with("Udp:"));
    let (names, values) = (udp.next().expect("Udp header"), udp.next().expect("Udp values"));
    let at = names.split_whitespace().position(|n| n == "InCsumErrors").expect("InCsumErrors column");
    values.split_whitespace().nth(at).and_then(|v| v.parse().ok()).expect("InCsumErrors value")
}

/// `None` when this process can build the test's network: root, the tools, and a namespace with a veth
/// pair (created and deleted here); else what is missing.
fn missing_netns() -> Option<String> {
    let is_root = Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false);
    if !is_root {
        return Some("not running as root (namespaces and veth pairs need CAP_NET_ADMIN)".to_owned());
    }
    let tools = ["ip", "ethtool", "python3"];
    let absent: Vec<&str> = tools
        .into_iter()
        .filter(|tool| Command::new(tool).arg("-V").stdout(Stdio::null()).stderr(Stdio::null()).status().is_err())
        .collect();
    if !absent.is_empty() {
        return Some(format!("not installed: {}", absent.join(", ")));
    }
    let probe = format!("rosette-probe{}", std::process::id());
    let veth = format!("rp{}", std::process::id());
    let made = run(&["ip", "netns", "add", &probe]).and_then(|()| {
        run(&["ip", "-n", &probe, "link", "add", &veth, "type", "veth", "peer", "name", &format!("{veth}b")])
    });
    let _ = run(&["ip", "netns", "del", &probe]);
    made.err().map(|e| format!("cannot build a namespace with a veth pair here: {e}"))
}

#[test]
fn talks_udp_with_the_linux_kernel() {
    rosette::testing::with_resource(
        rosette::testing::RESOURCE_NETNS,
        missing_netns(),
        "run as root on a kernel with network namespaces and veth, with iproute2, ethtool and python3 \
         installed (scripts/setup installs them)",
        talk_udp_with_the_kernel,
    );
}

fn talk_udp_with_the_kernel() {
    let pid = std::process::id();
    let (ns_k, ns_c) = (format!("rosette-k{pid}"), format!("rosette-c{pid}"));
    let (if_k, if_c) = (format!("rk{pid}"), format!("rc{pid}"));
    let namespaces = Namespaces([ns_k.clone(), ns_c.clone()]);
    let mac = OUR_MAC.to_string();
    let setup: &[&[&str]] = &[
        &["ip", "netns", "add", &ns_k],
        &["ip", "netns", "add", &ns_c],
        &["ip", "link", "add", &if_k, "type", "veth", "peer", "name", &if_c],
        &["ip", "link", "set", &if_k, "netns", &ns_k],
        &["ip", "link", "set", &if_c, "netns", &ns_c],
        &["ip", "netns", "exec", &ns_k, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"],
        &["ip", "netns", "exec", &ns_c, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"],
        &["ip", "-n", &ns_c, "link", "set", &if_c, "address", &mac],
        &["ip", "-n", &ns_k, "addr", "add", "10.98.0.1/24", "dev", &if_k],
        &["ip", "netns", "exec", &ns_k, "ethtool", "-K", &if_k, "tx", "off", "rx", "off"],
        &["ip", "-n", &ns_k, "link", "set", &if_k, "up"],
        &["ip", "-n", &ns_c, "link", "set", &if_c, "up"],
    ];
    for args in setup {
        run(args).unwrap_or_else(|e| panic!("building the namespaces: {e}"));
    }

    let mut peer = spawn_in(&ns_k, KERNEL_PEER, "");
    let peer_out = lines_of(&mut peer);
    wait_ready(&peer_out, "kernel peer");
    let mut bridge = spawn_in(&ns_c, BRIDGE, &if_c);
    let bridge_out = lines_of(&mut bridge);
    wait_ready(&bridge_out, "bridge");
    let mut bridge_in = bridge.stdin.take().expect("piped stdin");

    let clock = WallClock::now();
    let mut ch = UnorderedChannel::new(Config::new(OUR_MAC, OUR_ADDR, &[OUR_PORT]), VecPool::default());
    let kernel = SocketAddrV4::new(KERNEL_ADDR, KERNEL_PORT);
    // Odd and even lengths, and the largest payload a 1500-byte MTU carries.
    let largest: Vec<u8> = (0..1472).map(|i| b'a' + (i % 26) as u8).collect();
    let payloads: [&[u8]; 3] = [b"hello kernel", b"odd", &largest];
    let now = Instant::from_nanos(clock.elapsed().as_nanos() as u64);
    for p in payloads {
        ch.send(now, OUR_PORT, kernel, VecBuf::from_slice(p)).expect("send accepted");
    }
    let mut delivered = Vec::new();
    drive(&mut ch, clock, &mut bridge_in, &bridge_out, &mut delivered, |d| d.len() == 3);
    for (i, p) in payloads.iter().enumerate() {
        assert_eq!(delivered[i].0, kernel);
        assert_eq!(delivered[i].1, p.to_ascii_uppercase(), "echo {i}");
    }
    for p in payloads {
        let line = peer_out.recv_timeout(Duration::from_secs(5)).expect("kernel peer report");
        assert_eq!(line, format!("echoed {} bytes to 10.98.0.2:9000", p.len()));
    }
    assert!(ch.stats().arp_requests_sent >= 1);

    // Now the kernel has to find us.
    run(&["ip", "-n", &ns_k, "neigh", "flush", "all"]).expect("flush the kernel's neighbour cache");
    let mut peer_in = peer.stdin.take().expect("piped stdin");
    writeln!(peer_in, "go").expect("tell the kernel peer to go");
    peer_in.flush().expect("flush");
    drive(&mut ch, clock, &mut bridge_in, &bridge_out, &mut delivered, |d| d.len() == 4);
    assert_eq!(delivered[3], (kernel, b"kernel speaks first".to_vec()));
    assert!(ch.stats().arp_replies_sent >= 1, "{:?}", ch.stats());

    // The kernel really verifies checksums here: a datagram we corrupt on purpose is counted in its
    // UDP InCsumErrors (so the datagrams it accepted above had checksums it checked).
    let errors_before = kernel_udp_csum_errors(&ns_k);
    ch.send(Instant::from_nanos(clock.elapsed().as_nanos() as u64), OUR_PORT, kernel, VecBuf::from_slice(b"bad"))
        .expect("send accepted");
    let mut frame = ch.poll_transmit(Instant::from_nanos(clock.elapsed().as_nanos() as u64)).expect("a frame");
    let last = frame.len() - 1;
    frame.data_mut()[last] ^= 0x20;
    writeln!(bridge_in, "{}", hex(frame.data())).expect("write to the bridge");
    bridge_in.flush().expect("flush the bridge");
    let deadline = WallClock::now() + Duration::from_secs(5);
    while kernel_udp_csum_errors(&ns_k) == errors_before {
        assert!(WallClock::now() < deadline, "the kernel did not count the corrupted datagram");
        std::thread::sleep(Duration::from_millis(20));
    }

    let drops = &ch.stats().rx_drops;
    assert_eq!((drops.ipv4_bad_checksum, drops.udp_bad_checksum), (0, 0), "{:?}", ch.stats());
    assert!(peer.wait().expect("kernel peer exits").success());
    let _ = bridge.kill();
    let _ = bridge.wait();
    drop(namespaces);
}
