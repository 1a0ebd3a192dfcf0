//! Wire formats: checked views over byte buffers and plain representations that parse and emit them.
//!
//! Nothing here uses `unsafe` or the DPDK substrate; a checked view never panics on any input.
//!
//! Every format follows one pattern:
//! - `Packet<T: AsRef<[u8]>>` is a view over a buffer. `Packet::new_unchecked` wraps any buffer;
//!   `Packet::new_checked` first validates every length the accessors rely on, so that **every accessor
//!   of a packet built by `new_checked` is panic-free whatever the bytes are**. Setters need
//!   `T: AsMut<[u8]>`.
//! - `Repr` is the meaning of a header as plain values: `Repr::parse` validates semantics (version,
//!   checksum, supported kinds) on a checked packet, `Repr::emit` writes a header into a packet whose
//!   buffer holds at least `Repr::buffer_len` bytes, and `Repr::buffer_len` says how many that is.
//! - Parse failures are an [`Error`], never a panic.
#![forbid(unsafe_code)]

use core::fmt;

pub mod arp;
#[cfg(test)]
pub(crate) mod captures;
pub mod checksum;
pub mod ethernet;
pub mod ipv4;
pub mod packed;
pub mod transport;
pub mod udp;

/// Why a packet was refused by a parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer is shorter than the fixed header.
    Truncated,
    /// A header-length field is smaller than the fixed header or larger than the buffer.
    BadHeaderLen,
    /// A total-length field is smaller than the header or larger than the buffer.
    BadLength,
    /// An unexpected version number.
    BadVersion,
    /// The checksum does not verify.
    BadChecksum,
    /// An IPv4 fragment: rosette does not reassemble.
    Fragmented,
    /// A well-formed packet of a kind this parser does not handle (for example ARP over a hardware
    /// other than Ethernet).
    Unsupported,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Truncated => "buffer shorter than the header",
            Error::BadHeaderLen => "header length field out of range",
            Error::BadLength => "total length field out of range",
            Error::BadVersion => "unexpected version",
            Error::BadChecksum => "checksum mismatch",
            Error::Fragmented => "fragmented packet",
            Error::Unsupported => "unsupported packet kind",
        })
    }
}

impl std::error::Error for Error {}

/// The result of a parse.
pub type Result<T> = core::result::Result<T, Error>;
