//! G (RFC 9106 §3.5) with AVX2: a row or a column of the 8×8 matrix of 16-byte
//! registers is four 256-bit vectors `a b c d`, and BLAKE2b's round is one
//! vector mix on them, then one more with `b c d` rotated by one, two and three
//! lanes (the diagonals), rotated back after.

use core::arch::x86_64::{
    __m256i, _mm256_add_epi64, _mm256_loadu_si256, _mm256_mul_epu32, _mm256_permute2x128_si256,
    _mm256_permute4x64_epi64, _mm256_shuffle_epi32, _mm256_shuffle_epi8, _mm256_srli_epi64,
    _mm256_storeu_si256, _mm256_xor_si256,
};

use super::Block;

/// Whether the CPU has AVX2 and the kernel saves the YMM registers (Intel SDM
/// vol. 1 §14.3). Asked of CPUID here rather than with std's
/// `is_x86_feature_detected!`, whose table of every feature costs the init
/// 4 KiB it does not have (README, "Measured": the init's 2 MiB budget).
// CPUID is a safe intrinsic since Rust 1.87, an unsafe one before (the
// workspace's rust-version is older).
#[allow(unused_unsafe)]
pub(crate) fn usable() -> bool {
    use core::arch::x86_64::{__cpuid, __cpuid_count, _xgetbv};
    const OSXSAVE: u32 = 1 << 27;
    const AVX: u32 = 1 << 28;
    const XMM_YMM: u64 = 0b110;
    const AVX2: u32 = 1 << 5;
    // SAFETY: every x86_64 CPU has CPUID.
    let (leaf1, max) = unsafe { (__cpuid(1), __cpuid(0).eax) };
    if leaf1.ecx & (OSXSAVE | AVX) != OSXSAVE | AVX || max < 7 {
        return false;
    }
    // SAFETY: OSXSAVE (above) means the OS enabled XGETBV; leaf 7 exists (max).
    let (xcr0, leaf7) = unsafe { (_xgetbv(0), __cpuid_count(7, 0)) };
    xcr0 & XMM_YMM == XMM_YMM && leaf7.ebx & AVX2 != 0
}

/// Vectors in a block.
const VECTORS: usize = 32;

/// `out = G(x, y)`, or `out ^= G(x, y)` with `xor`.
///
/// # Safety
/// The CPU has AVX2.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn compress_into(out: &mut Block, x: &Block, y: &Block, xor: bool) {
    let load = |b: &Block, i: usize| {
        // SAFETY: `i < VECTORS`, so the 32 bytes at word 4i lie inside the block;
        // the load is unaligned.
        unsafe { _mm256_loadu_si256(b.0.as_ptr().add(4 * i).cast()) }
    };
    let r: [__m256i; VECTORS] = core::array::from_fn(|i| _mm256_xor_si256(load(x, i), load(y, i)));
    // Row k: words 16k .. 16k + 15, vectors 4k .. 4k + 3 (z[k]): built in place,
    // where a copy of `r` to work on would be a 1 KiB `memcpy` per block.
    let mut z: [[__m256i; 4]; 8] =
        core::array::from_fn(|k| round([r[4 * k], r[4 * k + 1], r[4 * k + 2], r[4 * k + 3]]));
    // Column j: words 2j, 2j + 1 of each row; columns 2m and 2m + 1 share their
    // vectors (m, 4 + m for a; 8 + m, 12 + m for b; ...), low and high halves.
    // `m` picks a column in every row, which no iterator over `z` gives.
    #[allow(clippy::needless_range_loop)]
    for m in 0..4 {
        let pair = |v: usize| {
            let (p, q) = (z[v / 4][m], z[v / 4 + 1][m]);
            (
                _mm256_permute2x128_si256::<0x20>(p, q),
                _mm256_permute2x128_si256::<0x31>(p, q),
            )
        };
        let (a, b, c, d) = (pair(0), pair(8), pair(16), pair(24));
        let even = round([a.0, b.0, c.0, d.0]);
        let odd = round([a.1, b.1, c.1, d.1]);
        for (g, v) in [0, 8, 16, 24].into_iter().enumerate() {
            z[v / 4][m] = _mm256_permute2x128_si256::<0x20>(even[g], odd[g]);
            z[v / 4 + 1][m] = _mm256_permute2x128_si256::<0x31>(even[g], odd[g]);
        }
    }
    for i in 0..VECTORS {
        let mut g = _mm256_xor_si256(z[i / 4][i % 4], r[i]);
        if xor {
            g = _mm256_xor_si256(g, load(out, i));
        }
        // SAFETY: as `load`, into `out`, which nothing else borrows.
        unsafe { _mm256_storeu_si256(out.0.as_mut_ptr().add(4 * i).cast(), g) };
    }
}

/// BLAKE2b's round without the message on the 16 words `a b c d`.
#[inline]
#[target_feature(enable = "avx2")]
fn round([a, b, c, d]: [__m256i; 4]) -> [__m256i; 4] {
    let (a, b, c, d) = mix(a, b, c, d);
    // Lane i of (a, b <<< 1, c <<< 2, d <<< 3) is the diagonal (i, 4 + (i + 1) % 4, ...).
    let b = _mm256_permute4x64_epi64::<0b00_11_10_01>(b);
    let c = _mm256_permute4x64_epi64::<0b01_00_11_10>(c);
    let d = _mm256_permute4x64_epi64::<0b10_01_00_11>(d);
    let (a, b, c, d) = mix(a, b, c, d);
    let b = _mm256_permute4x64_epi64::<0b10_01_00_11>(b);
    let c = _mm256_permute4x64_epi64::<0b01_00_11_10>(c);
    let d = _mm256_permute4x64_epi64::<0b00_11_10_01>(d);
    [a, b, c, d]
}

#[inline]
#[target_feature(enable = "avx2")]
fn mix(a: __m256i, b: __m256i, c: __m256i, d: __m256i) -> (__m256i, __m256i, __m256i, __m256i) {
    let a = blamka(a, b);
    let d = rotr32(_mm256_xor_si256(d, a));
    let c = blamka(c, d);
    let b = rotr_bytes(_mm256_xor_si256(b, c), &ROTR24);
    let a = blamka(a, b);
    let d = rotr_bytes(_mm256_xor_si256(d, a), &ROTR16);
    let c = blamka(c, d);
    let b = rotr63(_mm256_xor_si256(b, c));
    (a, b, c, d)
}

/// a + b + 2 · lo32(a) · lo32(b) in each 64-bit lane.
#[inline]
#[target_feature(enable = "avx2")]
fn blamka(a: __m256i, b: __m256i) -> __m256i {
    let product = _mm256_mul_epu32(a, b);
    _mm256_add_epi64(_mm256_add_epi64(a, b), _mm256_add_epi64(product, product))
}

#[inline]
#[target_feature(enable = "avx2")]
fn rotr32(x: __m256i) -> __m256i {
    // The two 32-bit halves of each lane swapped.
    _mm256_shuffle_epi32::<0b10_11_00_01>(x)
}

/// `_mm256_shuffle_epi8` masks rotating each 64-bit lane right by 3 and by 2
/// whole bytes: byte i of a lane takes byte (i + n) mod 8.
const ROTR24: [i8; 32] = rotation(3);
const ROTR16: [i8; 32] = rotation(2);

const fn rotation(bytes: i8) -> [i8; 32] {
    let mut mask = [0i8; 32];
    let mut i = 0;
    while i < 32 {
        let at = (i % 16) as i8;
        mask[i] = (at % 8 + bytes) % 8 + (at / 8) * 8;
        i += 1;
    }
    mask
}

/// Each 64-bit lane rotated by `mask` (`ROTR24`, `ROTR16`).
#[inline]
#[target_feature(enable = "avx2")]
fn rotr_bytes(x: __m256i, mask: &[i8; 32]) -> __m256i {
    // SAFETY: `mask` is 32 readable bytes; the load is unaligned.
    let mask = unsafe { _mm256_loadu_si256(mask.as_ptr().cast()) };
    _mm256_shuffle_epi8(x, mask)
}

/// Rotated right by 63: left by one.
#[inline]
#[target_feature(enable = "avx2")]
fn rotr63(x: __m256i) -> __m256i {
    _mm256_xor_si256(_mm256_srli_epi64::<63>(x), _mm256_add_epi64(x, x))
}
