//! Hardware CRC-32C for the transport checksum.
//!
//! [`crate::wire::transport`] forbids `unsafe`, so its [`Crc32c`](crate::wire::transport::Crc32c) is a
//! software (slicing-by-8) implementation with a hook for a faster one. On x86_64 CPUs with SSE4.2 the
//! `crc32` instruction computes exactly the same reflected CRC-32C register update, eight bytes per
//! instruction; [`install_crc32c_accelerator`] checks the CPU at run time and installs it through
//! [`set_crc32c_accelerator`]. [`EalBuilder::start`](super::EalBuilder::start) calls it, so every
//! process that runs the substrate checksums in hardware when it can.

use crate::wire::transport::{crc32c_accelerated, set_crc32c_accelerator};

/// Installs the hardware CRC-32C for [`Crc32c`](crate::wire::transport::Crc32c) if this CPU has it
/// (SSE4.2 on x86_64, detected at run time).
///
/// Returns `true` if an accelerator is in use after the call: the hardware one installed now or by an
/// earlier call (an accelerator, once installed, stays for the life of the process). Returns `false`
/// when the CPU lacks the instruction or on other architectures; checksums then stay in software.
/// Cheap and idempotent, so it may be called any number of times.
pub fn install_crc32c_accelerator() -> bool {
    if let Some(update) = hardware_update() {
        set_crc32c_accelerator(update);
    }
    crc32c_accelerated()
}

/// The hardware register update, if this CPU can run it.
///
/// This is the only place that hands out [`x86::update`]: it does so only after run-time detection of
/// SSE4.2, which is what makes that safe wrapper sound.
fn hardware_update() -> Option<fn(u32, &[u8]) -> u32> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("sse4.2") {
            return Some(x86::update);
        }
        None
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use core::arch::x86_64::{_mm_crc32_u64, _mm_crc32_u8};

    /// Bytes per lane of the three-lane update.
    const LANE: usize = 128;

    /// The reflected CRC-32C polynomial.
    const POLY: u32 = 0x82F6_3B78;

    /// `SHIFT[k][b]`: the register `b << 8k` advanced over [`LANE`] zero bytes. Advancing over zeros is
    /// linear in the register, so four lookups advance any register (computed at compile time, bit by
    /// bit, from the polynomial alone).
    const SHIFT: [[u32; 256]; 4] = {
        // Each basis register (one bit set) advanced over LANE zero bytes.
        let mut basis = [0u32; 32];
        let mut bit = 0;
        while bit < 32 {
            let mut r = 1u32 << bit;
            let mut step = 0;
            while step < LANE * 8 {
                r = if r & 1 != 0 { (r >> 1) ^ POLY } else { r >> 1 };
                step += 1;
            }
            basis[bit] = r;
            bit += 1;
        }
        let mut table = [[0u32; 256]; 4];
        let mut k = 0;
        while k < 4 {
            let mut b = 0;
            while b < 256 {
                let mut v = 0u32;
                let mut i = 0;
                while i < 8 {
                    if b & (1 << i) != 0 {
                        v ^= basis[8 * k + i];
                    }
                    i += 1;
                }
                table[k][b] = v;
                b += 1;
            }
            k += 1;
        }
        table
    };

    /// `reg` advanced over [`LANE`] zero bytes.
    #[inline(always)]
    fn shift_lane(reg: u32) -> u32 {
        SHIFT[0][(reg & 0xff) as usize]
            ^ SHIFT[1][((reg >> 8) & 0xff) as usize]
            ^ SHIFT[2][((reg >> 16) & 0xff) as usize]
            ^ SHIFT[3][(reg >> 24) as usize]
    }

    /// The raw CRC-32C register advanced over `bytes` by the SSE4.2 `crc32` instruction. One `crc32`
    /// depends on the one before (3 cycles each), so blocks of three [`LANE`]s run as three independent
    /// chains (the first from `reg`, the others from zero) joined by advancing over the lanes after
    /// them ([`shift_lane`]: the register update is affine, so `update(r, A‖B) = advance(update(r, A),
    /// |B|) ^ update(0, B)`); the rest goes eight bytes per step, then byte by byte. Same register in,
    /// same register out as the software update; no inversion here.
    #[target_feature(enable = "sse4.2")]
    fn update_sse42(reg: u32, bytes: &[u8]) -> u32 {
        let (blocks, rest) = bytes.as_chunks::<{ 3 * LANE }>();
        let mut crc = reg;
        for block in blocks {
            let (a, bc) = block.split_at(LANE);
            let (b, c) = bc.split_at(LANE);
            let (a, _) = a.as_chunks::<8>();
            let (b, _) = b.as_chunks::<8>();
            let (c, _) = c.as_chunks::<8>();
            let (mut ca, mut cb, mut cc) = (u64::from(crc), 0u64, 0u64);
            for i in 0..LANE / 8 {
                ca = _mm_crc32_u64(ca, u64::from_le_bytes(a[i]));
                cb = _mm_crc32_u64(cb, u64::from_le_bytes(b[i]));
                cc = _mm_crc32_u64(cc, u64::from_le_bytes(c[i]));
            }
            // The 64-bit form zero-extends its 32-bit result, so the truncations lose nothing.
            crc = shift_lane(shift_lane(ca as u32) ^ cb as u32) ^ cc as u32;
        }
        let (words, tail) = rest.as_chunks::<8>();
        let mut crc = u64::from(crc);
        for word in words {
            crc = _mm_crc32_u64(crc, u64::from_le_bytes(*word));
        }
        let mut crc = crc as u32;
        for &b in tail {
            crc = _mm_crc32_u8(crc, b);
        }
        crc
    }

    /// Safe entry point for [`update_sse42`], with the signature the accelerator hook takes.
    ///
    /// Must only be called on a CPU with SSE4.2: [`super::hardware_update`] hands it out (to the hook
    /// and to the tests) only after detecting that.
    pub(super) fn update(reg: u32, bytes: &[u8]) -> u32 {
        // SAFETY: `update_sse42` only requires the CPU to support SSE4.2. This function is private to the
        // substrate and reachable only through `hardware_update`, which returns it only after
        // `is_x86_feature_detected!("sse4.2")` returned true on this machine, so the instructions exist.
        unsafe { update_sse42(reg, bytes) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::transport::{crc32c_update_software, Crc32c};

    /// Deterministic pseudo-random bytes (xorshift64), so a failure reproduces.
    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    /// Runs `body` with the hardware update; on a CPU without SSE4.2 the test fails (resource
    /// `crc-hardware`), unless `ROSETTE_ALLOW_SKIP` names it (see `crate::testing`).
    #[track_caller]
    fn with_hardware(body: impl FnOnce(fn(u32, &[u8]) -> u32)) {
        let hw = hardware_update();
        let missing = hw.is_none().then(|| "this CPU has no SSE4.2 crc32 instruction".to_owned());
        let provide = "run on an x86_64 CPU with SSE4.2 (every x86_64 CPU since 2008)";
        crate::testing::with_resource(crate::testing::RESOURCE_CRC_HARDWARE, missing, provide, || {
            body(hw.expect("checked present"))
        });
    }

    #[test]
    fn hardware_known_vector() {
        with_hardware(|hw| {
            assert_eq!(!hw(!0, b"123456789"), 0xE306_9283);
            assert_eq!(!hw(!0, b""), 0);
            assert_eq!(!hw(hw(!0, b"12345"), b"6789"), 0xE306_9283);
        });
    }

    #[test]
    fn hardware_matches_software() {
        with_hardware(hardware_matches_software_with);
    }

    fn hardware_matches_software_with(hw: fn(u32, &[u8]) -> u32) {
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let data: Vec<u8> = (0..10_000).map(|_| xorshift(&mut x) as u8).collect();
        // Every length up to 300, and around the three-lane blocks (384 bytes) up to jumbo frames.
        let lens = (0..=300).chain([383, 384, 385, 767, 768, 769, 1151, 1400, 1464, 1500, 4000, 9000]);
        for offset in 0..8 {
            for len in lens.clone() {
                let bytes = &data[offset..offset + len];
                for reg in [!0, 0, xorshift(&mut x) as u32, xorshift(&mut x) as u32] {
                    assert_eq!(
                        hw(reg, bytes),
                        crc32c_update_software(reg, bytes),
                        "offset {offset} len {len} register {reg:#010x}"
                    );
                }
            }
        }
    }

    #[test]
    fn install_uses_hardware() {
        let hw = hardware_update().is_some();
        assert_eq!(install_crc32c_accelerator(), hw);
        assert_eq!(install_crc32c_accelerator(), hw, "a second install changes nothing");
        assert_eq!(crc32c_accelerated(), hw);
        assert_eq!(Crc32c::checksum(b"123456789"), 0xE306_9283);
    }

    /// Software against hardware on 1400-byte buffers (a typical payload); run with
    /// `cargo test --release --lib -p rosette crc32c_throughput -- --ignored --nocapture`.
    #[test]
    #[ignore = "timing measurement, not a check"]
    fn crc32c_throughput() {
        use std::hint::black_box;
        use std::time::Instant;

        const LEN: usize = 1400;
        const ROUNDS: u32 = 200_000;
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let data: Vec<u8> = (0..LEN).map(|_| xorshift(&mut x) as u8).collect();
        let time = |name: &str, f: fn(u32, &[u8]) -> u32| {
            let mut reg = !0u32;
            for _ in 0..ROUNDS / 10 {
                reg = f(black_box(reg), black_box(&data));
            }
            let start = Instant::now();
            for _ in 0..ROUNDS {
                reg = f(black_box(reg), black_box(&data));
            }
            let ns = start.elapsed().as_nanos() as f64 / f64::from(ROUNDS);
            black_box(reg);
            println!("{name}: {ns:.1} ns per {LEN} bytes ({:.2} GB/s)", LEN as f64 / ns);
        };
        time("software (slicing-by-8)", crc32c_update_software);
        if let Some(hw) = hardware_update() {
            time("hardware (SSE4.2 crc32)", hw);
        }
        // What the transport pays: `Crc32c` through the hook (the hardware one when installed).
        install_crc32c_accelerator();
        time("Crc32c::checksum (hook)", |reg, bytes| reg ^ Crc32c::checksum(bytes));
    }
}
