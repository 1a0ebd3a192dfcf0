//! `net_memif` control sockets, checked by rosette so that their two common failures say what happened.
//!
//! - A memif **server** creates its listening socket while EAL probes the device; if a file is already at
//!   that path the bind fails and DPDK only says the device did not probe. A server that was killed
//!   leaves exactly that behind. Before EAL starts, [`prepare_servers`] looks at every server's socket
//!   (file sockets only: abstract ones vanish with their owner): a socket file nobody listens on is
//!   removed, with a warning; one a live process listens on (named by pid when `/proc` tells, as
//!   `fuser` would), or a path that is not a socket, is an error naming it
//!   ([`Error::MemifSocketInUse`], [`Error::MemifSocketNotSocket`]).
//! - A memif **client** connects when its port starts; with no server DPDK returns `-1`, which reads
//!   as "Operation not permitted (errno 1)". [`client_start_error`] looks at the socket and turns that
//!   into [`Error::MemifNoServer`].
//!
//! Whether someone listens is told by connecting, as a client would: accepted (or refused for the wrong
//! socket type — memif listens with `SOCK_SEQPACKET`, this probe connects with `SOCK_STREAM`) means a
//! live listener; "connection refused" on an existing socket file means nobody holds it any more. No
//! `unsafe` here: std's Unix sockets do all of it.

use std::io::ErrorKind;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::Path;

use super::error::{Error, Result};

/// DPDK 22.11's default memif socket (`ETH_MEMIF_DEFAULT_SOCKET_FILENAME`).
const DEFAULT_SOCKET: &str = "/run/memif.sock";

/// The bytes of an abstract socket name DPDK's memif fills: `sun_path` (108 bytes) minus its leading
/// NUL, the file name then zeros (the PMD passes the whole `sockaddr_un` length to `connect`/`bind`).
const ABSTRACT_NAME_LEN: usize = 107;

/// What a memif vdev spec says about its control socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemifSocket {
    /// The device name (`net_memif0`).
    pub(crate) device: String,
    /// `role=server` (or the deprecated `master`); DPDK's default role is client.
    pub(crate) server: bool,
    /// The `socket=` path, or DPDK's default.
    pub(crate) path: String,
    /// `socket-abstract` (DPDK's default: yes).
    pub(crate) abstract_name: bool,
}

impl MemifSocket {
    /// The socket as the messages name it.
    pub(crate) fn describe(&self) -> String {
        if self.abstract_name {
            format!("{} (abstract)", self.path)
        } else {
            self.path.clone()
        }
    }
}

/// Parses a `--vdev` spec; `None` when it is not a memif device. Values are read the way the PMD reads
/// them (`role` by substring, as DPDK's `strstr` does).
pub(crate) fn parse(spec: &str) -> Option<MemifSocket> {
    let mut parts = spec.split(',');
    let device = parts.next()?.trim();
    if !device.starts_with("net_memif") {
        return None;
    }
    let mut socket =
        MemifSocket { device: device.to_owned(), server: false, path: DEFAULT_SOCKET.to_owned(), abstract_name: true };
    for part in parts {
        let Some((key, value)) = part.split_once('=') else { continue };
        match key.trim() {
            "role" => {
                if value.contains("server") || value.contains("master") {
                    socket.server = true;
                } else if value.contains("client") || value.contains("slave") {
                    socket.server = false;
                }
            }
            "socket" => socket.path = value.to_owned(),
            "socket-abstract" => {
                if value.contains("yes") {
                    socket.abstract_name = true;
                } else if value.contains("no") {
                    socket.abstract_name = false;
                }
            }
            _ => {}
        }
    }
    Some(socket)
}

/// What is at a memif socket address.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Listener {
    /// A process accepts connections there.
    Live,
    /// A socket file is there, but nobody listens on it (its owner exited without removing it).
    Stale,
    /// Nothing is there.
    Missing,
    /// Something that is not a socket is at the path.
    NotASocket,
    /// The probe could not tell (e.g. permission denied); DPDK will report what it finds.
    Unknown(String),
}

/// Whether anyone listens at `socket`'s address.
pub(crate) fn probe(socket: &MemifSocket) -> Listener {
    if socket.abstract_name {
        return probe_abstract(&socket.path);
    }
    let path = Path::new(&socket.path);
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == ErrorKind::NotFound => return Listener::Missing,
        Err(e) => return Listener::Unknown(e.to_string()),
        Ok(meta) if !meta.file_type().is_socket() => return Listener::NotASocket,
        Ok(_) => {}
    }
    classify(UnixStream::connect(path).map(drop))
}

fn probe_abstract(name: &str) -> Listener {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::SocketAddr;
    let mut padded = name.as_bytes().to_vec();
    if padded.len() < ABSTRACT_NAME_LEN {
        padded.resize(ABSTRACT_NAME_LEN, 0);
    }
    match SocketAddr::from_abstract_name(&padded) {
        Ok(addr) => match classify(UnixStream::connect_addr(&addr).map(drop)) {
            // No file behind an abstract name: refused means nobody has it.
            Listener::Stale => Listener::Missing,
            other => other,
        },
        Err(e) => Listener::Unknown(e.to_string()),
    }
}

fn classify(connected: std::io::Result<()>) -> Listener {
    match connected {
        Ok(()) => Listener::Live,
        Err(e) => match e.raw_os_error() {
            // Someone listens, with another socket type (memif uses SOCK_SEQPACKET).
            Some(libc::EPROTOTYPE) => Listener::Live,
            Some(libc::ECONNREFUSED) => Listener::Stale,
            Some(libc::ENOENT) => Listener::Missing,
            _ => Listener::Unknown(e.to_string()),
        },
    }
}

/// The process listening on the Unix socket file `path`, as `pid N (comm)`, found the way `fuser` finds
/// it: the listening socket's inode in `/proc/net/unix` (this network namespace), then the process
/// with a descriptor on `socket:[inode]`. `None` when it cannot be told (another namespace, no
/// permission to read other processes' descriptors).
pub(crate) fn listener_owner(path: &str) -> Option<String> {
    /// `__SO_ACCEPTCON` in `/proc/net/unix`'s flags: a listening socket.
    const ACCEPTCON: u32 = 0x0001_0000;
    let table = std::fs::read_to_string("/proc/net/unix").ok()?;
    let inodes: Vec<u64> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (flags, inode, name) = (fields.get(3)?, fields.get(6)?, fields.get(7..)?.join(" "));
            let listening = (u32::from_str_radix(flags, 16).ok()? & ACCEPTCON) != 0;
            if listening && name == path {
                inode.parse().ok()
            } else {
                None
            }
        })
        .collect();
    if inodes.is_empty() {
        return None;
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    for proc_entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = proc_entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(fds) = std::fs::read_dir(proc_entry.path().join("fd")) else { continue };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|target| wanted.iter().any(|w| target.as_os_str() == w.as_str()))
        });
        if holds {
            let comm = std::fs::read_to_string(proc_entry.path().join("comm")).unwrap_or_default();
            return Some(format!("pid {pid} ({})", comm.trim()));
        }
    }
    None
}

/// Before EAL probes the devices: for every memif server among `vdevs` with a socket file, removes a
/// stale socket (calling `warn` with what it did) and refuses a live one or a path that is not a socket.
pub(crate) fn prepare_servers<'a>(vdevs: impl IntoIterator<Item = &'a str>, warn: impl Fn(&str)) -> Result<()> {
    for socket in vdevs.into_iter().filter_map(parse) {
        if !socket.server || socket.abstract_name {
            continue;
        }
        match probe(&socket) {
            Listener::Missing => {}
            Listener::Stale => {
                std::fs::remove_file(&socket.path).map_err(|e| Error::InvalidArgument {
                    detail: format!(
                        "memif server `{}`: the socket file {} is stale (nobody listens on it) but could not be \
                         removed: {e}; remove it by hand",
                        socket.device, socket.path
                    ),
                })?;
                warn(&format!(
                    "memif server `{}`: removed the stale socket file {} (left by a server that exited; nobody \
                     listened on it)",
                    socket.device, socket.path
                ));
            }
            Listener::Live => {
                let owner = listener_owner(&socket.path);
                return Err(Error::MemifSocketInUse { device: socket.device, socket: socket.path, owner });
            }
            Listener::NotASocket => {
                return Err(Error::MemifSocketNotSocket { device: socket.device, socket: socket.path });
            }
            Listener::Unknown(why) => {
                log::debug!("memif server `{}`: could not check {}: {why}", socket.device, socket.path);
            }
        }
    }
    Ok(())
}

/// After a memif client's port failed to start: [`Error::MemifNoServer`] when nobody listens on its
/// socket, `None` when the socket is not the reason (or it cannot be told).
pub(crate) fn client_start_error(socket: &MemifSocket) -> Option<Error> {
    if socket.server {
        return None;
    }
    match probe(socket) {
        Listener::Missing | Listener::Stale => {
            Some(Error::MemifNoServer { device: socket.device.clone(), socket: socket.describe() })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_memif_specs_as_the_pmd_does() {
        let s = parse("net_memif0,role=server,socket=/tmp/a.sock,socket-abstract=no").unwrap();
        assert_eq!(
            s,
            MemifSocket { device: "net_memif0".into(), server: true, path: "/tmp/a.sock".into(), abstract_name: false }
        );
        let d = parse("net_memif1").unwrap();
        assert!(!d.server && d.abstract_name && d.path == DEFAULT_SOCKET);
        assert!(parse("net_memif2,role=master").unwrap().server);
        assert_eq!(parse("net_null0,role=server"), None);
        assert_eq!(d.describe(), "/run/memif.sock (abstract)");
    }

    fn file_socket(path: &Path) -> MemifSocket {
        MemifSocket {
            device: "net_memif0".into(),
            server: true,
            path: path.display().to_string(),
            abstract_name: false,
        }
    }

    #[test]
    fn tells_live_stale_missing_and_foreign_paths_apart() {
        let dir = std::env::temp_dir().join(format!("rosette-memif-probe-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.sock");
        assert_eq!(probe(&file_socket(&path)), Listener::Missing);
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert_eq!(probe(&file_socket(&path)), Listener::Live);
        // Dropping a listener closes it but leaves its file: what a killed server leaves.
        drop(listener);
        assert_eq!(probe(&file_socket(&path)), Listener::Stale);
        let plain = dir.join("plain");
        std::fs::write(&plain, b"x").unwrap();
        assert_eq!(probe(&file_socket(&plain)), Listener::NotASocket);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn stale_server_sockets_are_removed_and_live_ones_refused() {
        let dir = std::env::temp_dir().join(format!("rosette-memif-prepare-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.sock");
        let spec = format!("net_memif0,role=server,socket={},socket-abstract=no", path.display());
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let warned = std::cell::RefCell::new(Vec::new());
        prepare_servers([spec.as_str()], |w| warned.borrow_mut().push(w.to_owned())).unwrap();
        assert!(!path.exists());
        assert_eq!(warned.borrow().len(), 1);
        assert!(warned.borrow()[0].contains("removed the stale socket file"), "{:?}", warned.borrow());

        let _live = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let err = prepare_servers([spec.as_str()], |_| {}).unwrap_err();
        // The listener is this test process.
        let Error::MemifSocketInUse { device, socket, owner } = &err else { panic!("{err:?}") };
        assert_eq!((device.as_str(), socket.as_str()), ("net_memif0", path.to_str().unwrap()));
        let owner = owner.as_deref().expect("the owner is found in /proc");
        assert!(owner.starts_with(&format!("pid {} (", std::process::id())), "{owner}");
        assert!(path.exists(), "a live socket is never removed");
        // A client's socket is not the server's business, nor is an abstract one.
        let client = format!("net_memif0,role=client,socket={},socket-abstract=no", path.display());
        prepare_servers([client.as_str(), "net_memif1,role=server"], |_| {}).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_client_without_server_is_named() {
        let path = std::env::temp_dir().join(format!("rosette-memif-none-{}.sock", std::process::id()));
        let client = parse(&format!("net_memif0,role=client,socket={},socket-abstract=no", path.display())).unwrap();
        assert_eq!(
            client_start_error(&client),
            Some(Error::MemifNoServer { device: "net_memif0".into(), socket: path.display().to_string() })
        );
        let abstract_client = parse("net_memif0,socket=/rosette/none/such").unwrap();
        assert!(matches!(client_start_error(&abstract_client), Some(Error::MemifNoServer { .. })));
    }
}
