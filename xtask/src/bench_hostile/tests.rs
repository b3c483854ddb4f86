use std::io::Read;
use std::time::Instant;

use super::*;

/// One member as an independent reader sees it (PAX `path`/`linkpath` applied).
#[derive(Debug)]
struct Member {
    path: Vec<u8>,
    kind: u8,
    size: u64,
    link: Vec<u8>,
    data: Vec<u8>,
}

fn field_octal(f: &[u8]) -> u64 {
    let s = std::str::from_utf8(f).unwrap();
    u64::from_str_radix(s.trim_matches(|c: char| c == '\0' || c == ' '), 8).unwrap()
}

fn field_str(f: &[u8]) -> Vec<u8> {
    f.split(|&b| b == 0).next().unwrap().to_vec()
}

/// Gunzips and lists `gz`, checking every header checksum and the end blocks.
fn list(gz: &[u8]) -> Vec<Member> {
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut tar)
        .unwrap();
    assert_eq!(tar.len() % 512, 0);
    let mut out = Vec::new();
    let mut pos = 0;
    let (mut pax_path, mut pax_link) = (None, None);
    loop {
        let h = &tar[pos..pos + 512];
        if h.iter().all(|&b| b == 0) {
            assert!(tar[pos..].iter().all(|&b| b == 0), "data after the end");
            assert!(tar.len() - pos >= 1024, "end blocks missing");
            return out;
        }
        let sum: u64 = h
            .iter()
            .enumerate()
            .map(|(i, &b)| u64::from(if (148..156).contains(&i) { b' ' } else { b }))
            .sum();
        assert_eq!(field_octal(&h[148..154]), sum, "checksum at {pos}");
        assert_eq!(&h[257..263], b"ustar\0");
        let size = field_octal(&h[124..136]);
        let kind = h[156];
        let data = tar[pos + 512..pos + 512 + size as usize].to_vec();
        pos += 512 + size.div_ceil(512) as usize * 512;
        if kind == b'x' {
            let mut rec = &data[..];
            while !rec.is_empty() {
                let sp = rec.iter().position(|&b| b == b' ').unwrap();
                let len: usize = std::str::from_utf8(&rec[..sp]).unwrap().parse().unwrap();
                let body = &rec[sp + 1..len - 1];
                assert_eq!(rec[len - 1], b'\n');
                let eq = body.iter().position(|&b| b == b'=').unwrap();
                match &body[..eq] {
                    b"path" => pax_path = Some(body[eq + 1..].to_vec()),
                    b"linkpath" => pax_link = Some(body[eq + 1..].to_vec()),
                    other => panic!("unexpected PAX key {other:?}"),
                }
                rec = &rec[len..];
            }
            continue;
        }
        out.push(Member {
            path: pax_path.take().unwrap_or_else(|| field_str(&h[..100])),
            kind,
            size,
            link: pax_link.take().unwrap_or_else(|| field_str(&h[157..257])),
            data,
        });
    }
}

fn generate(kind: Kind) -> (Vec<Member>, u64) {
    let gz = GzEncoder::new(Vec::new(), Compression::fast());
    let mut tar = Tar::new(gz);
    kind.write(&mut tar).unwrap();
    let (members, bytes) = (tar.members, tar.bytes);
    let gz = tar.into_inner().finish().unwrap();
    let listed = list(&gz);
    assert_eq!(listed.len() as u64, members, "{kind:?}");
    assert_eq!(members, kind.members(), "{kind:?}");
    (listed, bytes)
}

fn components(p: &[u8]) -> Vec<&[u8]> {
    p.split(|&b| b == b'/').filter(|c| !c.is_empty()).collect()
}

#[test]
fn skipped_pax_names_are_long_control_byte_names_of_skipped_types() {
    let (m, _) = generate(Kind::SkippedPaxNames {
        count: 7,
        name_len: 3000,
    });
    let mut names: Vec<&[u8]> = m.iter().map(|x| &x.path[..]).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 7, "names are unique");
    for x in &m {
        assert!(matches!(x.kind, b'3' | b'4' | b'6'), "{}", x.kind);
        assert_eq!(x.path.len(), 3000);
        assert!(!x.path.contains(&0) && !x.path.contains(&b'.'));
        let parts = components(&x.path);
        assert_eq!(
            parts.len(),
            x.path.iter().filter(|&&b| b == b'/').count() + 1
        );
        let (last, dirs) = parts.split_last().unwrap();
        assert!(last.starts_with(b"n") && dirs.len() > 700);
        assert!(dirs.iter().all(|c| c.iter().all(u8::is_ascii_control)));
    }
}

#[test]
fn deep_paths_go_as_deep_as_claimed() {
    let (m, _) = generate(Kind::DeepPaths {
        depth: 60,
        files: 9,
    });
    let dirs: Vec<&Member> = m.iter().filter(|x| x.kind == b'5').collect();
    assert_eq!(dirs.len(), 60);
    for (i, d) in dirs.iter().enumerate() {
        assert_eq!(components(&d.path).len(), i + 1);
    }
    let files: Vec<&Member> = m.iter().filter(|x| x.kind == b'0').collect();
    assert_eq!(files.len(), 9);
    assert!(files
        .iter()
        .all(|f| components(&f.path).len() == 61 && f.size == 0));
}

#[test]
fn hardlink_chain_links_each_name_to_the_one_before() {
    let (m, _) = generate(Kind::HardlinkChain { links: 25 });
    assert_eq!((m[0].kind, &m[0].path[..]), (b'5', &b"c/"[..]));
    assert_eq!((m[1].kind, &m[1].data[..]), (b'0', &b"data"[..]));
    for w in m[1..].windows(2) {
        assert_eq!(w[1].kind, b'1');
        assert_eq!(w[1].link, w[0].path);
    }
}

#[test]
fn tiny_files_and_big_zero_file_hold_the_data_claimed() {
    let (m, _) = generate(Kind::TinyFiles { files: 250 });
    assert_eq!(m.iter().filter(|x| x.kind == b'5').count(), 101);
    let files: Vec<&Member> = m.iter().filter(|x| x.kind == b'0').collect();
    assert_eq!(files.len(), 250);
    assert!(files.iter().all(|f| f.data == b"x"));
    let bytes = (3 << 20) + 5;
    let (m, tar_bytes) = generate(Kind::BigZero { bytes });
    assert_eq!(m[1].size, bytes);
    assert!(m[1].data.iter().all(|&b| b == 0));
    assert_eq!(tar_bytes, 512 * 2 + bytes.div_ceil(512) * 512 + 1024);
}

/// The point of the benchmark is shapes the unpacker must accept: each stays inside
/// `Limits::default()` (`crates/apkovl/src/unpack/mod.rs`).
#[test]
fn default_shapes_stay_within_the_default_limits() {
    for s in shapes() {
        assert!(s.kind.members() <= 100_000, "{}", s.name);
        match s.kind {
            Kind::SkippedPaxNames { name_len, .. } => assert!(name_len + 16 < 64 * 1024),
            Kind::DeepPaths { depth, files } => {
                assert!(2 * depth as usize + format!("f{files}").len() <= 4096)
            }
            Kind::BigZero { bytes } => assert!(bytes + (1 << 20) < 1 << 30),
            Kind::HardlinkChain { .. } | Kind::TinyFiles { .. } => {}
        }
    }
}

#[test]
fn pax_records_count_their_own_length() {
    for value_len in [1, 80, 90, 91, 92, 95, 989, 990, 995, 60_000] {
        let mut rec = Vec::new();
        pax_record(&mut rec, b"path", &vec![b'a'; value_len]);
        let sp = rec.iter().position(|&b| b == b' ').unwrap();
        let len: usize = std::str::from_utf8(&rec[..sp]).unwrap().parse().unwrap();
        assert_eq!(len, rec.len(), "value of {value_len} bytes");
    }
}

#[test]
fn child_runs_report_exit_output_timeout_and_memory_cap() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("root");
    let sh = |script: &str| {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    };
    let long = Duration::from_secs(30);
    let r = run_capped(&mut sh("echo 3 entries, 4 bytes"), &dest, long, 1 << 30).unwrap();
    assert_eq!(r.ended, Ended::Exit(0));
    assert_eq!(r.stdout, "3 entries, 4 bytes\n");
    assert!(r.peak_kib.is_some_and(|k| k > 0));
    assert_eq!(describe(&r, 3), "unpacked (3 entries)");
    let r = run_capped(&mut sh("echo nope >&2; exit 1"), &dest, long, 1 << 30).unwrap();
    assert_eq!(
        (r.ended, describe(&r, 3).as_str()),
        (Ended::Exit(1), "rejected: nope")
    );
    // Output beyond what is kept is drained, not buffered, and does not block.
    let r = run_capped(&mut sh("head -c 5000000 /dev/zero"), &dest, long, 1 << 30).unwrap();
    assert_eq!((r.ended, r.stdout.len()), (Ended::Exit(0), KEEP_OUTPUT));
    let started = Instant::now();
    let r = run_capped(
        &mut sh("sleep 3"),
        &dest,
        Duration::from_millis(300),
        1 << 30,
    )
    .unwrap();
    assert_eq!(r.ended, Ended::TimedOut);
    assert!(started.elapsed() < Duration::from_secs(10));
    // 100 MB in a shell variable cannot fit in 64 MiB of address space.
    let script = "x=$(head -c 100000000 /dev/zero | tr '\\0' x); echo ${#x}";
    let r = run_capped(&mut sh(script), &dest, long, 64 << 20).unwrap();
    assert_ne!(r.ended, Ended::Exit(0), "{r:?}");
}

#[test]
fn verdict_needs_both_bounds_and_rejection_only_where_allowed() {
    let run = |ended, peak_kib| Run {
        secs: 0.5,
        cpu_secs: 0.4,
        peak_kib,
        ended,
        stdout: String::new(),
        stderr: String::new(),
    };
    let ok = run(Ended::Exit(0), Some(MAX_PEAK_KIB));
    assert!(passes(false, &ok, MAX_SECS_PER_MB));
    assert!(!passes(false, &ok, MAX_SECS_PER_MB * 1.01));
    assert!(!passes(
        true,
        &run(Ended::Exit(0), Some(MAX_PEAK_KIB + 1)),
        0.1
    ));
    assert!(!passes(true, &run(Ended::Exit(0), None), 0.1));
    let rejected = run(Ended::Exit(1), Some(1000));
    assert!(passes(true, &rejected, 0.1));
    assert!(!passes(false, &rejected, 0.1));
    for ended in [Ended::Exit(2), Ended::Signal(6), Ended::TimedOut] {
        assert!(!passes(true, &run(ended, Some(1000)), 0.1), "{ended:?}");
    }
}
