//! Packed-record parser of the reliable channel. Input: any bytes, taken as a packed payload.
//! Checking never panics; an accepted payload iterates to exactly the counted records, which tile it
//! exactly; re-emitting those records reproduces the input byte for byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rosette_proto::wire::packed::{count_records, emit_record, record_len, Error, Records};

fuzz_target!(|data: &[u8]| {
    let records = match Records::new_checked(data) {
        Ok(r) => r,
        Err(e) => {
            assert_eq!(count_records(data), Err(e));
            return assert!(e == Error::Truncated || (e == Error::Empty && data.is_empty()));
        }
    };
    let count = records.len();
    assert!(count >= 1);
    let mut out = Vec::with_capacity(data.len());
    let mut seen = 0;
    for record in records {
        let at = out.len();
        out.resize(at + record_len(record.len()), 0);
        emit_record(&mut out[at..], record.len()).expect("room was made").copy_from_slice(record);
        seen += 1;
    }
    assert_eq!(seen, count);
    assert_eq!(out, data);
    // A count that disagrees with the payload never makes iteration panic or overrun.
    let _ = Records::new_unchecked(data, count + 3).count();
    assert!(Records::new_unchecked(data, count.saturating_sub(1)).count() < count);
});
