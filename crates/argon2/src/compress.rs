//! G, Argon2's compression function (RFC 9106 §3.5), and the choice of
//! its implementation: the portable one here, or AVX2 (`avx2.rs`).

#[cfg(target_arch = "x86_64")]
use crate::avx2;
use crate::{Block, WORDS};

/// RFC 9106 §3.5, G: the BLAKE2b round with 32-bit multiplications, on rows,
/// then on columns of the 8×8 matrix of 16-byte registers.
pub(crate) fn compress(x: &Block, y: &Block) -> Block {
    let mut out = Block::ZERO;
    compress_into(&mut out, x, y, false);
    out
}

/// Which implementation of G a derivation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Engine {
    /// 64-bit integer arithmetic, on every machine.
    Portable,
    /// AVX2 (`avx2.rs`), where the CPU has it.
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Engine {
    /// The engine derivations run: the fastest here, timed once.
    pub(crate) fn choose() -> Engine {
        static CHOSEN: std::sync::OnceLock<Engine> = std::sync::OnceLock::new();
        *CHOSEN.get_or_init(|| Engine::fastest(&Engine::available()))
    }

    /// The engine that computes G fastest on this machine, timed on a few hundred
    /// blocks (well under a millisecond natively, a few under emulation).
    /// The CPU's flags do not tell: where QEMU's TCG emulates AVX2 instruction
    /// by instruction, the AVX2 G is about 1.4 times slower than the portable
    /// one; on hardware it is about 1.6 times faster (README, "Encrypted roots
    /// and media (LUKS)"). Linux chooses its RAID-6 and XOR routines by timing
    /// them at boot for the same reason.
    pub(crate) fn fastest(engines: &[Engine]) -> Engine {
        // Five rounds of 64 blocks: with three of 32 (0.2 ms an engine under TCG)
        // the AVX2 form was taken in one of 33 boots of the TCG VM, whose
        // derivation was then 0.4 s slower (README, "Encrypted roots and media").
        const BLOCKS: usize = 64;
        const ROUNDS: usize = 5;
        let mut x = Block::ZERO;
        let mut y = Block::ZERO;
        for (i, (a, b)) in x.0.iter_mut().zip(y.0.iter_mut()).enumerate() {
            *a = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            *b = !*a;
        }
        let mut out = Block::ZERO;
        let mut best = vec![std::time::Duration::MAX; engines.len()];
        // Rounds alternating, the best of each: an interrupt or another thread
        // taking the CPU inflates one sample, not every one.
        for _ in 0..ROUNDS {
            for (engine, best) in engines.iter().zip(best.iter_mut()) {
                let started = std::time::Instant::now();
                for _ in 0..BLOCKS {
                    engine.compress_into(&mut out, &x, &y, true);
                }
                *best = (*best).min(started.elapsed());
            }
        }
        std::hint::black_box(&out);
        engines
            .iter()
            .zip(&best)
            .min_by_key(|(_, time)| **time)
            .map_or(Engine::Portable, |(engine, _)| *engine)
    }

    /// Every engine this CPU can run, the portable one first.
    pub(crate) fn available() -> Vec<Engine> {
        // Only x86_64 has a second engine to add.
        #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
        let mut engines = vec![Engine::Portable];
        #[cfg(target_arch = "x86_64")]
        if avx2::usable() {
            engines.push(Engine::Avx2);
        }
        engines
    }

    #[inline(always)]
    pub(crate) fn compress_into(self, out: &mut Block, x: &Block, y: &Block, xor: bool) {
        match self {
            Engine::Portable => compress_into(out, x, y, xor),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Avx2` is only ever one of `available()`, which checked the CPU.
            Engine::Avx2 => unsafe { avx2::compress_into(out, x, y, xor) },
        }
    }
}

/// `out = G(x, y)`, or `out ^= G(x, y)` with `xor` (passes after the first).
/// One copy in the binary (not inlined): the address blocks use it too.
#[inline(never)]
fn compress_into(out: &mut Block, x: &Block, y: &Block, xor: bool) {
    if xor {
        compress_with::<true>(out, x, y);
    } else {
        compress_with::<false>(out, x, y);
    }
}

/// [`compress_into`] for one value of `XOR`, so that the 128 stores of the
/// result are straight-line code. Where every memory access and every branch
/// is emulated (QEMU's TCG) those are the cost, hence:
/// - `R = x ⊕ y` is stored whole first, and each row of `P` then reads its
///   16 words back: the row's permutation has the registers to itself, where
///   keeping the row of `R` live beside it spilled to the stack (a row took
///   425 instructions with 165 memory accesses, now 327 with 60; the first
///   derivation of the bench root's key slot in the TCG VM went from 1.655 s
///   to 1.560 s, medians of 6 boots, README "Encrypted roots and media");
/// - the rows of `R` and of `P(R)` are built in place by `array::from_fn`: a
///   zeroed scratch block would cost two 1 KiB `memset`s per block, which
///   TCG runs one emulated `rep stos` step per word (64 MiB, 4 passes in the
///   TCG VM: 1.530 s with them, 1.442 s without, `cargo xtask bench argon2`);
/// - the final `⊕ R` (and `⊕ out`) is folded into the column sweep's stores,
///   with no branch per word.
#[inline(always)]
fn compress_with<const XOR: bool>(out: &mut Block, x: &Block, y: &Block) {
    let r: [u64; WORDS] = core::array::from_fn(|i| x.0[i] ^ y.0[i]);
    // Row k of P(R): words 16k .. 16k + 15.
    let rows: [[u64; 16]; 8] = core::array::from_fn(|row| {
        let mut z: [u64; 16] = core::array::from_fn(|k| r[row * 16 + k]);
        permute(&mut z);
        z
    });
    for column in 0..8 {
        // Word k of this column: row k / 2, the column's two words in that row.
        let at = |k: usize| (k / 2) * 16 + column * 2 + k % 2;
        let mut w: [u64; 16] = core::array::from_fn(|k| rows[k / 2][column * 2 + k % 2]);
        permute(&mut w);
        // Unrolled, and volatile: as plain stores in a loop (or unrolled),
        // LLVM pairs them into SSE shuffles across columns, which TCG
        // emulates slower than the 64-bit code (2.3 times, `qemu-x86_64`).
        macro_rules! put {
            ($($k:literal)*) => {$(
                let i = at($k);
                let g = w[$k] ^ r[i];
                let word = &mut out.0[i];
                let value = if XOR { *word ^ g } else { g };
                // SAFETY: `word` is a valid, aligned, exclusive reference to a u64.
                unsafe { core::ptr::write_volatile(word, value) };
            )*};
        }
        put!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
    }
}

/// BLAKE2b's round without the message, on 16 words.
#[inline(always)]
fn permute(w: &mut [u64; 16]) {
    mix(w, 0, 4, 8, 12);
    mix(w, 1, 5, 9, 13);
    mix(w, 2, 6, 10, 14);
    mix(w, 3, 7, 11, 15);
    mix(w, 0, 5, 10, 15);
    mix(w, 1, 6, 11, 12);
    mix(w, 2, 7, 8, 13);
    mix(w, 3, 4, 9, 14);
}

#[inline(always)]
fn mix(v: &mut [u64; 16], a: usize, b: usize, c: usize, d: usize) {
    v[a] = blamka(v[a], v[b]);
    v[d] = (v[d] ^ v[a]).rotate_right(32);
    v[c] = blamka(v[c], v[d]);
    v[b] = (v[b] ^ v[c]).rotate_right(24);
    v[a] = blamka(v[a], v[b]);
    v[d] = (v[d] ^ v[a]).rotate_right(16);
    v[c] = blamka(v[c], v[d]);
    v[b] = (v[b] ^ v[c]).rotate_right(63);
}

/// a + b + 2 · lo32(a) · lo32(b), modulo 2^64.
#[inline(always)]
fn blamka(a: u64, b: u64) -> u64 {
    let product = (a & 0xffff_ffff).wrapping_mul(b & 0xffff_ffff);
    a.wrapping_add(b).wrapping_add(product.wrapping_mul(2))
}
