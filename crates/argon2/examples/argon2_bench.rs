//! The program of `cargo xtask bench argon2` (xtask/src/bench/argon2.rs):
//! Argon2id derivations by this crate (`ours`) and by RustCrypto's `argon2`
//! (`rustcrypto`), built with the init's release profile, alternating, each
//! timed on a line of its own.
//!
//! `argon2_bench ROUNDS M_KIB PASSES LANES` runs ROUNDS rounds of both on
//! those costs; with no arguments (as `/init` of a VM) it takes ROUNDS from
//! `ARGON2_BENCH_RUNS` (the kernel passes `x=y` words of its command line as
//! the environment) and the LUKS2 benchmark header's costs
//! (`xtask/src/bench/root_luks.rs`: 64 MiB, 4 passes, 1 lane), then exits.

use std::time::Instant;

/// The bench root LUKS2 header's Argon2id costs.
const VM_COST: [u32; 3] = [65536, 4, 1];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize| args.get(i).and_then(|v| v.parse::<u32>().ok());
    let (rounds, [m, t, p]) = match (number(0), number(1), number(2), number(3)) {
        _ if args.is_empty() => {
            let runs = std::env::var("ARGON2_BENCH_RUNS").ok();
            (runs.and_then(|v| v.parse().ok()).unwrap_or(3), VM_COST)
        }
        (Some(rounds), Some(m), Some(t), Some(p)) if args.len() == 4 => (rounds, [m, t, p]),
        _ => {
            eprintln!("usage: argon2_bench [ROUNDS M_KIB PASSES LANES]");
            std::process::exit(2);
        }
    };
    for round in 0..rounds {
        // The order alternates, so that neither always runs on a warm machine.
        let order = if round % 2 == 0 {
            ["ours", "rustcrypto"]
        } else {
            ["rustcrypto", "ours"]
        };
        for which in order {
            report(which, m, t, p);
        }
    }
    println!("argon2-bench done");
}

fn report(which: &str, m: u32, t: u32, p: u32) {
    let mut tag = [0u8; 32];
    let (password, salt) = (b"benchmark passphrase", [0x5au8; 32]);
    let started = Instant::now();
    let ok = if which == "ours" {
        let cost = alpinit_argon2::Cost {
            variant: alpinit_argon2::Variant::Id,
            memory_kib: m,
            passes: t,
            lanes: p,
        };
        alpinit_argon2::derive(&cost, password, &salt, &mut tag).is_ok()
    } else {
        use rustcrypto_argon2 as rc;
        rc::Params::new(m, t, p, Some(tag.len()))
            .ok()
            .and_then(|params| {
                let mut memory = vec![rc::Block::new(); params.block_count()];
                rc::Argon2::new(rc::Algorithm::Argon2id, rc::Version::V0x13, params)
                    .hash_password_into_with_memory(password, &salt, &mut tag, &mut memory[..])
                    .ok()
            })
            .is_some()
    };
    let secs = started.elapsed().as_secs_f64();
    let hex: String = tag[..8].iter().map(|b| format!("{b:02x}")).collect();
    let engine = if which == "ours" {
        alpinit_argon2::engine_name()
    } else {
        "its-own"
    };
    if ok {
        println!(
            "argon2-bench impl={which} m={m} t={t} p={p} secs={secs:.6} tag={hex} engine={engine}"
        );
    } else {
        println!("argon2-bench impl={which} m={m} t={t} p={p} failed");
    }
}
