//! Argon2i and Argon2id, version 0x13 (RFC 9106), with the lanes of a slice
//! computed on threads.
//!
//! Why not RustCrypto's `argon2` crate (still the oracle of this crate's tests
//! and the peer of `cargo xtask bench argon2`): it computes the lanes one after
//! the other, while cryptsetup formats LUKS2 key slots with up to four lanes
//! (`--pbkdf-parallel`, default 4) and libargon2 computes them on threads; and it
//! picks its AVX2 block function by the CPU flags alone, which under QEMU's TCG
//! (AVX2 emulated) made the unlock about 1.7 times slower than plain 64-bit
//! arithmetic (README, "Encrypted roots and media (LUKS)").
//! The hash under Argon2, BLAKE2b, is RustCrypto's `blake2`.
//!
//! Memory is lane-major: lane `l` holds blocks `l * q .. (l + 1) * q`, `q` blocks
//! a lane, four segments (slices) of `q / 4` each. Within a slice each lane
//! writes only its own segment and reads only blocks that are final for the
//! slice (RFC 9106 §3.4: a reference into another lane never falls in that lane's
//! current segment), so lanes of one slice can run at once; slices are joined.

use blake2::digest::{Update, VariableOutput};
use blake2::Blake2bVar;

/// 1 KiB, as 128 little-endian 64-bit words.
const WORDS: usize = 128;
const VERSION: u32 = 0x13;
/// RFC 9106 §3.1: the salt is at least 8 bytes, the tag at least 4.
const MIN_SALT: usize = 8;
const MIN_TAG: usize = 4;

#[derive(Clone, Copy)]
#[repr(align(64))]
struct Block([u64; WORDS]);

impl Block {
    const ZERO: Block = Block([0; WORDS]);

    fn xor_with(&mut self, other: &Block) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a ^= b;
        }
    }

    fn from_bytes(bytes: &[u8; 1024]) -> Block {
        let mut b = Block::ZERO;
        for (w, c) in b.0.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut le = [0u8; 8];
            le.copy_from_slice(c);
            *w = u64::from_le_bytes(le);
        }
        b
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    I,
    Id,
}

impl Variant {
    /// The type field of H0 (RFC 9106 §3.2): 1 for Argon2i, 2 for Argon2id.
    fn code(self) -> u32 {
        match self {
            Variant::I => 1,
            Variant::Id => 2,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    pub variant: Variant,
    pub memory_kib: u32,
    pub passes: u32,
    pub lanes: u32,
}

/// Why a derivation did not run: a cost or an input outside what RFC 9106
/// defines, or memory that could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("no lanes")]
    NoLanes,
    #[error("no passes")]
    NoPasses,
    #[error("memory {memory_kib} KiB is under 8 KiB a lane ({lanes} lanes)")]
    MemoryTooSmall { memory_kib: u32, lanes: u32 },
    #[error("salt of {0} bytes (at least {MIN_SALT})")]
    SaltTooShort(usize),
    #[error("output of {0} bytes (at least {MIN_TAG})")]
    OutputTooShort(usize),
    #[error("input of {0} bytes is over 2^32 - 1")]
    InputTooLong(usize),
    #[error("{blocks} KiB of memory could not be allocated")]
    OutOfMemory { blocks: usize },
}

/// Blocks in a segment: RFC 9106 rounds the memory to m' = 4p ⌊m / 4p⌋ blocks.
fn segment_length(cost: &Cost) -> usize {
    let lanes = cost.lanes.max(1) as usize;
    (cost.memory_kib as usize / (4 * lanes)).max(2)
}

/// Derives `out` from `password` and `salt`. The memory (1 KiB a block, the
/// cost's memory rounded as RFC 9106 says) is mapped here, a refused mapping
/// reported rather than aborting, and wiped before it is unmapped.
pub fn derive(cost: &Cost, password: &[u8], salt: &[u8], out: &mut [u8]) -> Result<(), ParamError> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let inputs = Inputs {
        password,
        salt,
        secret: &[],
        ad: &[],
    };
    derive_with(cost, &inputs, out, threads, Engine::choose())
}

/// The name of the G implementation `derive` runs on this machine (`portable`,
/// `avx2`), for benchmarks and logs.
pub fn engine_name() -> &'static str {
    match Engine::choose() {
        Engine::Portable => "portable",
        #[cfg(target_arch = "x86_64")]
        Engine::Avx2 => "avx2",
    }
}

/// What goes into H0 besides the costs: LUKS gives a password and a salt; RFC
/// 9106's secret `K` and associated data `X` are there for its test vectors.
struct Inputs<'a> {
    password: &'a [u8],
    salt: &'a [u8],
    secret: &'a [u8],
    ad: &'a [u8],
}

/// `derive` on at most `threads` threads, with `engine`'s G.
fn derive_with(
    cost: &Cost,
    inputs: &Inputs<'_>,
    out: &mut [u8],
    threads: usize,
    engine: Engine,
) -> Result<(), ParamError> {
    if cost.lanes == 0 {
        return Err(ParamError::NoLanes);
    }
    if cost.passes == 0 {
        return Err(ParamError::NoPasses);
    }
    if u64::from(cost.memory_kib) < 8 * u64::from(cost.lanes) {
        return Err(ParamError::MemoryTooSmall {
            memory_kib: cost.memory_kib,
            lanes: cost.lanes,
        });
    }
    if inputs.salt.len() < MIN_SALT {
        return Err(ParamError::SaltTooShort(inputs.salt.len()));
    }
    if out.len() < MIN_TAG {
        return Err(ParamError::OutputTooShort(out.len()));
    }
    let len32 = |b: &[u8]| u32::try_from(b.len()).map_err(|_| ParamError::InputTooLong(b.len()));
    let mut head = [0u8; 24];
    for (at, word) in [
        cost.lanes,
        len32(out)?,
        cost.memory_kib,
        cost.passes,
        VERSION,
        cost.variant.code(),
    ]
    .into_iter()
    .enumerate()
    {
        head[4 * at..4 * at + 4].copy_from_slice(&word.to_le_bytes());
    }
    let le = |field: &[u8]| len32(field).map(u32::to_le_bytes);
    let (l0, l1, l2, l3) = (
        le(inputs.password)?,
        le(inputs.salt)?,
        le(inputs.secret)?,
        le(inputs.ad)?,
    );
    let mut h0 = [0u8; 64];
    blake2b(
        &mut h0,
        &head,
        &[
            &l0,
            inputs.password,
            &l1,
            inputs.salt,
            &l2,
            inputs.secret,
            &l3,
            inputs.ad,
        ],
    );

    let shape = Shape::of(cost, engine);
    let mut memory = Memory::zeroed(shape.total_blocks())?;
    let mut bytes = [0u8; 1024];
    for lane in 0..shape.lanes {
        for column in 0..2u32 {
            hprime(
                &mut bytes,
                &[&h0, &column.to_le_bytes(), &(lane as u32).to_le_bytes()],
            );
            memory.blocks()[lane * shape.lane_length() + column as usize] =
                Block::from_bytes(&bytes);
        }
    }
    let threads = threads.clamp(1, shape.lanes);
    for pass in 0..shape.passes {
        for slice in 0..4 {
            fill_slice(&shape, pass, slice, memory.blocks(), threads);
        }
    }
    let mut last = Block::ZERO;
    for lane in 0..shape.lanes {
        last.xor_with(&memory.blocks()[lane * shape.lane_length() + shape.lane_length() - 1]);
    }
    for (c, w) in bytes.chunks_exact_mut(8).zip(&last.0) {
        c.copy_from_slice(&w.to_le_bytes());
    }
    hprime(out, &[&bytes]);
    bytes.fill(0);
    Ok(())
}

/// The derivation's memory: anonymous pages of its own, which the kernel hands
/// over zeroed (no second zeroing pass here: under QEMU's TCG each pass over
/// 64 MiB costs tens of milliseconds) and takes back when it is dropped, after a
/// wipe (its blocks are derived from the passphrase).
struct Memory {
    blocks: std::ptr::NonNull<Block>,
    len: usize,
}

impl Memory {
    /// `blocks` zeroed blocks, a failed mapping reported instead of aborting.
    fn zeroed(blocks: usize) -> Result<Memory, ParamError> {
        let oom = || ParamError::OutOfMemory { blocks };
        let bytes = blocks
            .checked_mul(std::mem::size_of::<Block>())
            .filter(|b| *b > 0)
            .ok_or_else(oom)?;
        // SAFETY: a fresh private anonymous mapping: no address is given and no
        // file is involved, so nothing existing is touched.
        let at = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if at == libc::MAP_FAILED {
            return Err(oom());
        }
        // Page-aligned, so aligned for Block (64 bytes); mmap never returns null
        // for a mapping without MAP_FIXED.
        let blocks_at = std::ptr::NonNull::new(at.cast::<Block>()).ok_or_else(oom)?;
        Ok(Memory {
            blocks: blocks_at,
            len: blocks,
        })
    }

    fn blocks(&mut self) -> &mut [Block] {
        // SAFETY: `len` blocks mapped readable and writable by `zeroed`, zero bytes
        // being a valid Block; the mapping lives as long as `self`, which this
        // borrow is tied to.
        unsafe { std::slice::from_raw_parts_mut(self.blocks.as_ptr(), self.len) }
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        for b in self.blocks() {
            // A volatile write per word so that the wipe is not removed as a dead store.
            for w in &mut b.0 {
                // SAFETY: `w` is a valid, aligned, exclusive reference to a u64.
                unsafe { std::ptr::write_volatile(w, 0) };
            }
        }
        // SAFETY: the mapping `zeroed` made, of this length, unmapped once; no
        // borrow of it outlives `self`.
        unsafe {
            libc::munmap(
                self.blocks.as_ptr().cast(),
                self.len * std::mem::size_of::<Block>(),
            )
        };
    }
}

/// RFC 9106 §3.3, H': BLAKE2b stretched to `out.len()` bytes.
fn hprime(out: &mut [u8], parts: &[&[u8]]) {
    let len = (out.len() as u32).to_le_bytes();
    let mut first = [0u8; 64];
    let short = out.len() <= 64;
    blake2b(if short { &mut *out } else { &mut first }, &len, parts);
    if short {
        return;
    }
    let mut v = first;
    out[..32].copy_from_slice(&v[..32]);
    let mut at = 32;
    while out.len() - at > 64 {
        let previous = v;
        blake2b(&mut v, &previous, &[]);
        out[at..at + 32].copy_from_slice(&v[..32]);
        at += 32;
    }
    blake2b(&mut out[at..], &v, &[]);
}

/// BLAKE2b of `head` then `parts`, `out.len()` (1 to 64) bytes long; one hasher
/// type for every use, so that the init carries one copy of its code.
fn blake2b(out: &mut [u8], head: &[u8], parts: &[&[u8]]) {
    if let Ok(mut h) = Blake2bVar::new(out.len()) {
        h.update(head);
        for p in parts {
            h.update(p);
        }
        // The output length is the one the hasher was made for: this cannot fail.
        let _ = h.finalize_variable(out);
    }
}

/// The memory's geometry and the inputs of the address blocks.
struct Shape {
    engine: Engine,
    variant: Variant,
    lanes: usize,
    segment: usize,
    passes: usize,
}

impl Shape {
    fn of(cost: &Cost, engine: Engine) -> Shape {
        Shape {
            engine,
            variant: cost.variant,
            lanes: cost.lanes as usize,
            segment: segment_length(cost),
            passes: cost.passes as usize,
        }
    }

    fn lane_length(&self) -> usize {
        self.segment * 4
    }

    fn total_blocks(&self) -> usize {
        self.lanes * self.lane_length()
    }
}

/// The blocks of every lane, shared by the threads of one slice.
struct Lanes {
    base: *mut Block,
    len: usize,
}

// SAFETY: threads of one slice write disjoint segments (one lane each) and read
// only blocks no thread of the slice writes (module comment; RFC 9106 §3.4).
unsafe impl Sync for Lanes {}

impl Lanes {
    /// # Safety
    /// No thread may be writing block `i` (see `Sync` above).
    unsafe fn get(&self, i: usize) -> &Block {
        debug_assert!(i < self.len);
        // SAFETY: `i < len` by construction of every index (taken modulo the
        // lane length and the lane count); the caller guarantees no writer.
        unsafe { &*self.base.add(i) }
    }

    /// # Safety
    /// Block `i` is in the calling thread's own segment.
    #[allow(clippy::mut_from_ref)]
    unsafe fn get_mut(&self, i: usize) -> &mut Block {
        debug_assert!(i < self.len);
        // SAFETY: as `get`; only the owning thread reads or writes its segment.
        unsafe { &mut *self.base.add(i) }
    }
}

fn fill_slice(shape: &Shape, pass: usize, slice: usize, memory: &mut [Block], threads: usize) {
    let lanes = Lanes {
        base: memory.as_mut_ptr(),
        len: memory.len(),
    };
    let lanes = &lanes;
    // With one thread nothing is spawned: the calling thread takes every lane.
    std::thread::scope(|scope| {
        let mut unstarted = Vec::new();
        for first in 1..threads {
            let spawned = std::thread::Builder::new().spawn_scoped(scope, move || {
                for lane in (first..shape.lanes).step_by(threads) {
                    // SAFETY: this thread alone computes lanes first, first + threads, ...
                    unsafe { fill_segment(shape, pass, slice, lane, lanes) };
                }
            });
            if spawned.is_err() {
                // No thread: this one computes those lanes after its own.
                unstarted.push(first);
            }
        }
        for first in std::iter::once(0).chain(unstarted) {
            for lane in (first..shape.lanes).step_by(threads) {
                // SAFETY: as above; a lane whose thread could not start is this thread's.
                unsafe { fill_segment(shape, pass, slice, lane, lanes) };
            }
        }
    });
}

/// Computes lane `lane`'s segment of `slice` in `pass` (RFC 9106 §3.4).
///
/// # Safety
/// No other thread computes this lane's segment at the same time (`Lanes`).
unsafe fn fill_segment(shape: &Shape, pass: usize, slice: usize, lane: usize, memory: &Lanes) {
    let q = shape.lane_length();
    let seg = shape.segment;
    let independent = shape.variant == Variant::I || (pass == 0 && slice < 2);
    let mut input = Block::ZERO;
    let mut addresses = Block::ZERO;
    if independent {
        input.0[..6].copy_from_slice(&[
            pass as u64,
            lane as u64,
            slice as u64,
            shape.total_blocks() as u64,
            shape.passes as u64,
            u64::from(shape.variant.code()),
        ]);
    }
    let next_addresses = |input: &mut Block, addresses: &mut Block| {
        input.0[6] += 1;
        *addresses = compress(&Block::ZERO, &compress(&Block::ZERO, input));
    };
    // The first two blocks of each lane come from H'.
    let first = if pass == 0 && slice == 0 { 2 } else { 0 };
    if independent && first != 0 {
        next_addresses(&mut input, &mut addresses);
    }
    let lane_base = lane * q;
    for index in first..seg {
        let column = slice * seg + index;
        let prev = lane_base + if column == 0 { q - 1 } else { column - 1 };
        let pseudo_rand = if independent {
            if index % WORDS == 0 {
                next_addresses(&mut input, &mut addresses);
            }
            addresses.0[index % WORDS]
        } else {
            // SAFETY: the previous block of this lane is this thread's or final.
            unsafe { memory.get(prev) }.0[0]
        };
        let ref_lane = if pass == 0 && slice == 0 {
            lane
        } else {
            ((pseudo_rand >> 32) as usize) % shape.lanes
        };
        let ref_column = reference_column(shape, pass, slice, index, ref_lane == lane, pseudo_rand);
        // SAFETY: the block being computed is in this thread's own segment; the
        // reference is final for this slice (RFC 9106 §3.4) and differs from it, as
        // does `prev` (above).
        unsafe {
            shape.engine.compress_into(
                memory.get_mut(lane_base + column),
                memory.get(prev),
                memory.get(ref_lane * q + ref_column),
                pass > 0,
            )
        };
    }
}

/// RFC 9106 §3.4.2: the column of the reference block in its lane.
fn reference_column(
    shape: &Shape,
    pass: usize,
    slice: usize,
    index: usize,
    same_lane: bool,
    pseudo_rand: u64,
) -> usize {
    let q = shape.lane_length();
    let seg = shape.segment;
    let finished = if pass == 0 { slice * seg } else { q - seg };
    let area = if same_lane {
        finished + index - 1
    } else {
        finished - usize::from(index == 0)
    };
    let j1 = pseudo_rand & 0xffff_ffff;
    let x = (j1 * j1) >> 32;
    let y = (area as u64 * x) >> 32;
    let relative = area - 1 - y as usize;
    let start = if pass == 0 || slice == 3 {
        0
    } else {
        (slice + 1) * seg
    };
    (start + relative) % q
}

#[cfg(target_arch = "x86_64")]
mod avx2;
mod compress;

use compress::{compress, Engine};

#[cfg(test)]
mod tests;
