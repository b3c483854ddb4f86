use super::*;
use rustcrypto_argon2 as oracle;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn cost(variant: Variant, memory_kib: u32, passes: u32, lanes: u32) -> Cost {
    Cost {
        variant,
        memory_kib,
        passes,
        lanes,
    }
}

/// RustCrypto's `argon2` on the same inputs.
fn reference(c: &Cost, inputs: &Inputs<'_>, out_len: usize) -> Vec<u8> {
    let mut b = oracle::ParamsBuilder::new();
    b.m_cost(c.memory_kib)
        .t_cost(c.passes)
        .p_cost(c.lanes)
        .output_len(out_len);
    b.data(oracle::AssociatedData::new(inputs.ad).unwrap());
    let params = b.build().unwrap();
    let mut memory = vec![oracle::Block::new(); params.block_count()];
    let algorithm = match c.variant {
        Variant::I => oracle::Algorithm::Argon2i,
        Variant::Id => oracle::Algorithm::Argon2id,
    };
    let ctx =
        oracle::Argon2::new_with_secret(inputs.secret, algorithm, oracle::Version::V0x13, params)
            .unwrap();
    let mut out = vec![0u8; out_len];
    ctx.hash_password_into_with_memory(inputs.password, inputs.salt, &mut out, &mut memory[..])
        .unwrap();
    out
}

fn ours(c: &Cost, inputs: &Inputs<'_>, out_len: usize, threads: usize, engine: Engine) -> Vec<u8> {
    let mut out = vec![0u8; out_len];
    derive_with(c, inputs, &mut out, threads, engine).unwrap();
    out
}

#[test]
fn rfc9106_test_vectors_with_secret_and_associated_data() {
    // RFC 9106 §5.2 and §5.3: m = 32 KiB, t = 3, p = 4, a 32-byte tag,
    // P = 32 × 0x01, S = 16 × 0x02, K = 8 × 0x03, X = 12 × 0x04.
    let inputs = Inputs {
        password: &[1; 32],
        salt: &[2; 16],
        secret: &[3; 8],
        ad: &[4; 12],
    };
    let cases = [
        (
            Variant::I,
            "c814d9d1dc7f37aa13f0d77f2494bda1c8de6b016dd388d29952a4c4672b6ce8",
        ),
        (
            Variant::Id,
            "0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659",
        ),
    ];
    for (variant, tag) in cases {
        let c = cost(variant, 32, 3, 4);
        for engine in Engine::available() {
            for threads in [1, 4] {
                let got = hex(&ours(&c, &inputs, 32, threads, engine));
                assert_eq!(got, tag, "{variant:?} {engine:?}");
            }
        }
        assert_eq!(hex(&reference(&c, &inputs, 32)), tag, "oracle {variant:?}");
    }
}

#[test]
fn every_shape_matches_rustcrypto_argon2_on_one_thread_and_on_several() {
    // Lanes that do not divide the memory evenly, one address block and several,
    // outputs under and over 64 bytes (H' changes form there), 1 to 4 passes.
    let shapes: [(Variant, u32, u32, u32, usize); 9] = [
        (Variant::Id, 8, 1, 1, 32),
        (Variant::Id, 33, 1, 2, 32),
        (Variant::I, 64, 2, 2, 64),
        (Variant::Id, 64, 3, 4, 16),
        (Variant::I, 256, 1, 1, 65),
        (Variant::Id, 1024, 2, 3, 100),
        (Variant::Id, 2048, 4, 4, 64),
        (Variant::I, 4096, 1, 4, 32),
        (Variant::Id, 1000, 2, 5, 512),
    ];
    let inputs = Inputs {
        password: b"correct horse battery staple",
        salt: &[0x5a; 32],
        secret: &[],
        ad: &[],
    };
    for (variant, m, t, p, len) in shapes {
        let c = cost(variant, m, t, p);
        let want = reference(&c, &inputs, len);
        for engine in Engine::available() {
            for threads in [1, 2, 3, 4, 8] {
                assert_eq!(
                    ours(&c, &inputs, len, threads, engine),
                    want,
                    "{variant:?} m={m} t={t} p={p} len={len} threads={threads} {engine:?}"
                );
            }
        }
    }
}

#[test]
fn derive_uses_this_machines_threads_and_gives_the_same_key() {
    let c = cost(Variant::Id, 512, 2, 4);
    let mut out = [0u8; 64];
    derive(&c, b"pass", &[7; 16], &mut out).unwrap();
    let inputs = Inputs {
        password: b"pass",
        salt: &[7; 16],
        secret: &[],
        ad: &[],
    };
    assert_eq!(out.to_vec(), reference(&c, &inputs, 64));
}

#[test]
fn costs_and_inputs_outside_rfc9106_are_refused() {
    let ok = cost(Variant::Id, 64, 1, 1);
    let cases: [(Cost, usize, usize, ParamError); 5] = [
        (cost(Variant::Id, 64, 1, 0), 16, 32, ParamError::NoLanes),
        (cost(Variant::Id, 64, 0, 1), 16, 32, ParamError::NoPasses),
        (
            cost(Variant::I, 31, 1, 4),
            16,
            32,
            ParamError::MemoryTooSmall {
                memory_kib: 31,
                lanes: 4,
            },
        ),
        (ok, 7, 32, ParamError::SaltTooShort(7)),
        (ok, 16, 3, ParamError::OutputTooShort(3)),
    ];
    for (c, salt_len, out_len, want) in cases {
        let mut out = vec![0u8; out_len];
        let salt = vec![1u8; salt_len];
        assert_eq!(
            derive(&c, b"p", &salt, &mut out),
            Err(want.clone()),
            "{want}"
        );
        assert!(out.iter().all(|&b| b == 0), "{want}: output written");
    }
}

/// The memory of a derivation with `c`, in blocks.
fn blocks(c: &Cost) -> usize {
    Shape::of(c, Engine::Portable).total_blocks()
}

#[test]
fn blocks_follow_rfc9106_rounding_to_four_lanes() {
    // m' = 4p ⌊m / 4p⌋.
    assert_eq!(blocks(&cost(Variant::Id, 65536, 4, 1)), 65536);
    assert_eq!(blocks(&cost(Variant::Id, 1000, 1, 3)), 996);
    assert_eq!(blocks(&cost(Variant::Id, 33, 1, 2)), 32);
}

#[test]
fn the_chosen_engine_is_one_this_cpu_runs_and_a_single_one_is_taken_untimed() {
    let available = Engine::available();
    assert!(available.contains(&Engine::choose()));
    assert_eq!(Engine::fastest(&[Engine::Portable]), Engine::Portable);
}

/// The memory comes from the kernel zeroed (it is not zeroed again here), and a
/// mapping the kernel refuses is an error, not an abort: 2^50 bytes is beyond
/// the address space a process has on x86_64 (47 bits) and arm64 (48), so the
/// refusal does not depend on the overcommit policy; a size whose bytes do not
/// fit a usize is refused before any mapping is asked for.
#[test]
fn memory_is_zeroed_by_the_kernel_and_a_refused_mapping_is_out_of_memory() {
    let mut memory = Memory::zeroed(1024).expect("1 MiB");
    assert_eq!(memory.blocks().len(), 1024);
    assert!(memory.blocks().iter().all(|b| b.0.iter().all(|w| *w == 0)));
    memory.blocks()[1023].0[127] = 7;
    assert_eq!(memory.blocks()[1023].0[127], 7);
    drop(memory);
    for blocks in [1usize << 40, usize::MAX / 512, 0] {
        assert!(
            matches!(Memory::zeroed(blocks), Err(ParamError::OutOfMemory { blocks: b }) if b == blocks),
            "{blocks}"
        );
    }
}
