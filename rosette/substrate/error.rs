//! The substrate's error type: one readable message per failure, carrying DPDK's errno where there is one.

use core::fmt;
use std::ffi::CStr;

use super::ffi;

/// Everything that can go wrong in the substrate. Each variant renders as one readable sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// `rte_eal_init` already succeeded in this process; DPDK allows one start per process.
    EalAlreadyStarted,
    /// An earlier `rte_eal_init` in this process failed; DPDK cannot be started again after that.
    EalStartFailedBefore,
    /// `rte_eal_init` failed.
    EalInit {
        /// The arguments EAL was started with, as a DPDK user would type them.
        args: Vec<String>,
        /// DPDK's errno after the failure.
        errno: i32,
    },
    /// Hugepages were required but none are reserved or no hugetlbfs is mounted.
    NoHugepages {
        /// What was found, for the message.
        detail: String,
    },
    /// A device given to EAL did not turn into an ethdev port (the probe failed, or the name is wrong).
    DeviceNotProbed {
        /// The device name, as given (without its arguments).
        device: String,
    },
    /// A memif server's socket path is held by a live process (a connection to it was accepted), so
    /// this server cannot listen there.
    MemifSocketInUse {
        /// The device name (`net_memif0`).
        device: String,
        /// The socket path.
        socket: String,
        /// The listening process, `pid N (name)`, when `/proc` tells.
        owner: Option<String>,
    },
    /// A memif server's socket path exists and is not a Unix socket.
    MemifSocketNotSocket {
        /// The device name.
        device: String,
        /// The socket path.
        socket: String,
    },
    /// A memif client's port could not start because no memif server listens on its socket.
    MemifNoServer {
        /// The device name.
        device: String,
        /// The socket (its path, or its name with `(abstract)`).
        socket: String,
    },
    /// An argument could not be passed to C (it holds a NUL byte) or is otherwise malformed.
    InvalidArgument {
        /// What was wrong.
        detail: String,
    },
    /// A requested lcore is not enabled in EAL, or cannot take work (it is the main lcore or busy).
    Lcore {
        /// The lcore id.
        lcore: u32,
        /// What was wrong.
        detail: String,
    },
    /// A DPDK call failed.
    Dpdk {
        /// The operation, in words (e.g. "configure port net_null0").
        op: String,
        /// DPDK's error number (positive errno or `rte_errno`).
        errno: i32,
    },
}

/// Shorthand for results of substrate calls.
pub type Result<T, E = Error> = core::result::Result<T, E>;

impl Error {
    pub(crate) fn dpdk(op: impl Into<String>, errno: i32) -> Self {
        Error::Dpdk { op: op.into(), errno: errno.abs() }
    }

    /// A DPDK call failed and reported the reason in `rte_errno`.
    pub(crate) fn from_rte_errno(op: impl Into<String>) -> Self {
        Error::dpdk(op, last_rte_errno())
    }
}

/// DPDK's `rte_errno` of the calling thread.
pub(crate) fn last_rte_errno() -> i32 {
    // SAFETY: a plain C accessor of a thread-local int (see shim.c); no arguments, no preconditions.
    unsafe { ffi::rosette_errno() }
}

/// DPDK's description of an error number (covers both libc errnos and DPDK's own).
pub fn strerror(errno: i32) -> String {
    // SAFETY: rte_strerror accepts any int and returns a pointer to a NUL-terminated string that stays
    // valid at least until the next call on this thread; it is copied out at once.
    unsafe {
        let msg = ffi::rte_strerror(errno);
        if msg.is_null() {
            return format!("error {errno}");
        }
        CStr::from_ptr(msg).to_string_lossy().into_owned()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::EalAlreadyStarted => {
                f.write_str("DPDK EAL is already running in this process; it can be started only once per process")
            }
            Error::EalStartFailedBefore => f.write_str(
                "an earlier DPDK EAL start failed in this process; DPDK cannot be started again (start a new process)",
            ),
            Error::EalInit { args, errno } => {
                write!(f, "DPDK EAL failed to start ({}): arguments were `{}`", strerror(*errno), args.join(" "))
            }
            Error::NoHugepages { detail } => write!(
                f,
                "hugepages are required but not usable ({detail}); reserve them with \
                 `echo 512 > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages` and mount hugetlbfs on \
                 /dev/hugepages, or use memory mode `no-huge`"
            ),
            Error::DeviceNotProbed { device } => write!(
                f,
                "device `{device}` was given to DPDK but no port came up for it: the driver failed to probe it \
                 or the name is wrong (see the EAL log above)"
            ),
            Error::MemifSocketInUse { device, socket, owner } => write!(
                f,
                "memif server `{device}` cannot listen on {socket}: {} is listening there; stop that process \
                 first, or give this port another `socket=` path",
                match owner {
                    Some(owner) => format!("another process, {owner},"),
                    None => "another process (it accepted a connection)".to_owned(),
                }
            ),
            Error::MemifSocketNotSocket { device, socket } => write!(
                f,
                "memif server `{device}` cannot listen on {socket}: that path exists and is not a unix socket; \
                 remove it, or give this port another `socket=` path"
            ),
            Error::MemifNoServer { device, socket } => write!(
                f,
                "memif client `{device}` could not connect: no memif server listens on {socket}; start the \
                 server process first, or check the roles (one side of a link is `role=server`, the other \
                 `role=client`, both with the same `socket=`)"
            ),
            Error::InvalidArgument { detail } => write!(f, "invalid argument: {detail}"),
            Error::Lcore { lcore, detail } => write!(f, "lcore {lcore}: {detail}"),
            Error::Dpdk { op, errno } => write!(f, "{op} failed: {} (errno {errno})", strerror(*errno)),
        }
    }
}

impl std::error::Error for Error {}
