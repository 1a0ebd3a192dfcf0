//! Packed payloads: several whole messages of the reliable channel in one data packet.
//!
//! A data packet with [`FLAG_PACKED`] set carries a sequence of records, each a complete message:
//!
//! ```text
//! +-------------------------------+----------------------------------+
//! |  record length (big-endian)   |  record length bytes of message  |  … repeated to the end
//! +-------------------------------+----------------------------------+
//! ```
//!
//! The records must fill the payload exactly: a length that runs past the end, or bytes left that
//! cannot hold a record header, make the whole payload malformed. The receiver checks a packed
//! payload once with [`Records::new_checked`]; after that, iterating it never fails and never
//! panics, whatever the bytes were.
//!
//! Packing is how the reliable channel reaches message rates above the packet rate of the link:
//! small messages queued while the connection waits to transmit share one packet, one header and
//! one checksum (the coalescing that TCP does to a byte stream, kept message-aligned).
#![forbid(unsafe_code)]

use core::fmt;

/// Flag of the transport header: the payload is packed records (see the module documentation).
pub const FLAG_PACKED: u8 = 0x04;
/// Bytes in front of each record: its length.
pub const RECORD_HEADER_LEN: usize = 2;
/// The longest record a length field can describe.
pub const MAX_RECORD_LEN: usize = u16::MAX as usize;

/// Why a packed payload was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// A record length runs past the end, or fewer bytes than a record header are left over.
    Truncated,
    /// No record at all.
    Empty,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Truncated => "packed record runs past the end of the payload",
            Error::Empty => "packed payload holds no record",
        })
    }
}

impl std::error::Error for Error {}

/// A checked packed payload: an iterator over its records, in order.
#[derive(Debug, Clone)]
pub struct Records<'a> {
    rest: &'a [u8],
    left: usize,
}

impl<'a> Records<'a> {
    /// Checks that `payload` is one or more records filling it exactly, and counts them.
    pub fn new_checked(payload: &'a [u8]) -> Result<Records<'a>, Error> {
        let count = count_records(payload)?;
        Ok(Records { rest: payload, left: count })
    }

    /// A payload already checked to hold `count` records (iteration stays panic-free, and simply
    /// ends early, if it does not).
    pub fn new_unchecked(payload: &'a [u8], count: usize) -> Records<'a> {
        Records { rest: payload, left: count }
    }

    /// Records not yet returned.
    pub fn remaining(&self) -> usize {
        self.left
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        // Checked at construction; `get` keeps this panic-free even so.
        let (len, body) = split_record(self.rest)?;
        let record = body.get(..len)?;
        self.rest = body.get(len..)?;
        self.left = self.left.saturating_sub(1);
        Some(record)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Records<'_> {}

/// The length field of the record at the start of `bytes`, and the bytes after the field.
fn split_record(bytes: &[u8]) -> Option<(usize, &[u8])> {
    let (head, body) = bytes.split_first_chunk::<RECORD_HEADER_LEN>()?;
    Some((usize::from(u16::from_be_bytes(*head)), body))
}

/// How many records `payload` holds, if it is well formed.
pub fn count_records(payload: &[u8]) -> Result<usize, Error> {
    let mut rest = payload;
    let mut count = 0;
    while !rest.is_empty() {
        let (len, body) = split_record(rest).ok_or(Error::Truncated)?;
        rest = body.get(len..).ok_or(Error::Truncated)?;
        count += 1;
    }
    if count == 0 {
        return Err(Error::Empty);
    }
    Ok(count)
}

/// Bytes a record of `len` message bytes takes in a packed payload.
pub const fn record_len(len: usize) -> usize {
    RECORD_HEADER_LEN + len
}

/// Writes the header of a `len`-byte record into the first bytes of `out` and returns the bytes for
/// the message itself (`out` must hold [`record_len`]`(len)` bytes).
///
/// # Errors
/// [`Error::Truncated`] when `out` is too short or `len` exceeds [`MAX_RECORD_LEN`].
pub fn emit_record(out: &mut [u8], len: usize) -> Result<&mut [u8], Error> {
    let field = u16::try_from(len).map_err(|_| Error::Truncated)?;
    let (head, body) = out.split_first_chunk_mut::<RECORD_HEADER_LEN>().ok_or(Error::Truncated)?;
    *head = field.to_be_bytes();
    body.get_mut(..len).ok_or(Error::Truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack(messages: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for m in messages {
            let start = out.len();
            out.resize(start + record_len(m.len()), 0);
            emit_record(&mut out[start..], m.len()).unwrap().copy_from_slice(m);
        }
        out
    }

    #[test]
    fn records_round_trip_in_order() {
        let msgs: [&[u8]; 4] = [b"alpha", b"", b"gamma gamma", &[7; 300]];
        let payload = pack(&msgs);
        assert_eq!(payload.len(), msgs.iter().map(|m| record_len(m.len())).sum::<usize>());
        let records = Records::new_checked(&payload).unwrap();
        assert_eq!(records.len(), 4);
        assert_eq!(records.collect::<Vec<_>>(), msgs.to_vec());
    }

    #[test]
    fn malformed_payloads_are_refused() {
        assert_eq!(count_records(&[]), Err(Error::Empty));
        assert_eq!(count_records(&[0]), Err(Error::Truncated));
        assert_eq!(count_records(&[0, 3, 1, 2]), Err(Error::Truncated));
        let mut ok = pack(&[b"abc"]);
        ok.push(0); // a stray byte that cannot hold a record header
        assert_eq!(count_records(&ok), Err(Error::Truncated));
        assert_eq!(count_records(&[0, 0, 0, 0]), Ok(2), "two empty records are well formed");
    }

    #[test]
    fn emit_checks_room_and_length() {
        let mut small = [0u8; 4];
        assert_eq!(emit_record(&mut small, 3).unwrap_err(), Error::Truncated);
        assert_eq!(emit_record(&mut small, 2).unwrap().len(), 2);
        let mut big = vec![0u8; MAX_RECORD_LEN + 10];
        assert_eq!(emit_record(&mut big, MAX_RECORD_LEN + 1).unwrap_err(), Error::Truncated);
    }

    #[test]
    fn any_bytes_either_parse_or_are_refused_without_panic() {
        // A small exhaustive sweep; the fuzz target `packed_records` goes further.
        for len in 0..6usize {
            for seed in 0..4096u32 {
                let bytes: Vec<u8> = (0..len).map(|i| (seed >> (i * 2)) as u8 & 0x03).collect();
                if let Ok(r) = Records::new_checked(&bytes) {
                    let n = r.len();
                    let total: usize = r.map(|rec| record_len(rec.len())).sum();
                    assert_eq!(total, bytes.len());
                    assert!(n >= 1);
                }
            }
        }
    }
}
