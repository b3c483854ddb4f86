//! `cargo xtask bench hostile`: the worst overlay shapes the default `Limits` let
//! through, each unpacked by the real unpacker (the `unpack` example of
//! `alpinit-apkovl`, release build) in a child process against a fresh root, with the
//! child's wall time and peak memory checked against the bounds of
//! `crates/apkovl`'s unpacker: at most 64 MiB peak and 1 s per MB of gzip input.
//!
//! The child runs under an address-space cap (`--mem-cap-mb`, default 2048) and a
//! time limit (`--timeout`, default 30 s) so that a blow-up shows as a failure
//! instead of taking the machine down.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use flate2::write::GzEncoder;
use flate2::Compression;

mod child;
pub use child::{run_capped, Ended, Run};

/// Peak memory bound of the unpacker, in KiB.
const MAX_PEAK_KIB: i64 = 64 * 1024;
/// Time bound of the unpacker, in seconds per MB (10^6 bytes) of gzip input.
const MAX_SECS_PER_MB: f64 = 1.0;
/// Bytes of stdout/stderr of the child kept for the report; the rest is drained.
const KEEP_OUTPUT: usize = 2048;

/// Member layouts; every size stays within `Limits::default()` (100 000 members,
/// 4096-byte paths, 255-byte components, 64 KiB PAX records, 1 GiB of tar stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// FIFOs and device nodes (skipped by the unpacker), each named by a PAX `path`
    /// of `name_len` bytes of control characters.
    SkippedPaxNames { count: u64, name_len: usize },
    /// A directory chain `d/d/…` `depth` levels deep, then `files` empty files at its
    /// bottom (paths of about 2 × depth bytes, in PAX records).
    DeepPaths { depth: u64, files: u64 },
    /// `c/`, a file `c/f`, then `c/l1 -> c/f`, `c/l2 -> c/l1`, … `links` hard links.
    HardlinkChain { links: u64 },
    /// `t/`, 100 directories, and `files` one-byte files spread over them.
    TinyFiles { files: u64 },
    /// `z/` and one regular file of `bytes` zero bytes.
    BigZero { bytes: u64 },
}

#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub name: &'static str,
    pub kind: Kind,
    /// Whether rejecting the overlay (exit status 1, an error naming the cause) is a
    /// correct outcome: only for names no real overlay has. The others are valid
    /// overlays that must be unpacked.
    pub may_reject: bool,
}

/// The shapes the command runs, in order.
pub fn shapes() -> Vec<Shape> {
    vec![
        Shape {
            name: "skipped-pax-names",
            kind: Kind::SkippedPaxNames {
                count: 4_000,
                name_len: 60_000,
            },
            may_reject: true,
        },
        Shape {
            name: "deep-paths",
            kind: Kind::DeepPaths {
                depth: 2_040,
                files: 6_000,
            },
            may_reject: false,
        },
        Shape {
            name: "hardlink-chain-10k",
            kind: Kind::HardlinkChain { links: 9_998 },
            may_reject: false,
        },
        Shape {
            name: "hardlink-chain-100k",
            kind: Kind::HardlinkChain { links: 99_998 },
            may_reject: false,
        },
        Shape {
            name: "tiny-files-100k",
            kind: Kind::TinyFiles { files: 99_899 },
            may_reject: false,
        },
        Shape {
            name: "big-zero-file",
            kind: Kind::BigZero { bytes: 512 << 20 },
            may_reject: false,
        },
    ]
}

impl Kind {
    /// Archive members the shape holds (PAX extension headers not counted).
    pub fn members(self) -> u64 {
        match self {
            Kind::SkippedPaxNames { count, .. } => count,
            Kind::DeepPaths { depth, files } => depth + files,
            Kind::HardlinkChain { links } => links + 2,
            Kind::TinyFiles { files } => 1 + 100 + files,
            Kind::BigZero { .. } => 2,
        }
    }

    pub fn write<W: Write>(self, tar: &mut Tar<W>) -> io::Result<()> {
        match self {
            Kind::SkippedPaxNames { count, name_len } => {
                for i in 0..count {
                    let kind = [b'6', b'3', b'4'][(i % 3) as usize];
                    tar.entry(&hostile_name(i, name_len), kind, 0, b"", 0o644)?;
                }
            }
            Kind::DeepPaths { depth, files } => {
                let mut dir = Vec::with_capacity(2 * depth as usize);
                for _ in 0..depth {
                    dir.extend_from_slice(b"d/");
                    tar.entry(&dir, b'5', 0, b"", 0o755)?;
                }
                for i in 0..files {
                    let mut path = dir.clone();
                    path.extend_from_slice(format!("f{i}").as_bytes());
                    tar.entry(&path, b'0', 0, b"", 0o644)?;
                }
            }
            Kind::HardlinkChain { links } => {
                tar.entry(b"c/", b'5', 0, b"", 0o755)?;
                tar.entry(b"c/f", b'0', 4, b"", 0o644)?;
                tar.data(b"data")?;
                let mut prev = b"c/f".to_vec();
                for i in 1..=links {
                    let name = format!("c/l{i}").into_bytes();
                    tar.entry(&name, b'1', 0, &prev, 0o644)?;
                    prev = name;
                }
            }
            Kind::TinyFiles { files } => {
                tar.entry(b"t/", b'5', 0, b"", 0o755)?;
                for d in 0..100 {
                    tar.entry(format!("t/d{d:02}/").as_bytes(), b'5', 0, b"", 0o755)?;
                }
                for i in 0..files {
                    let name = format!("t/d{:02}/f{i}", i % 100);
                    tar.entry(name.as_bytes(), b'0', 1, b"", 0o644)?;
                    tar.data(b"x")?;
                }
            }
            Kind::BigZero { bytes } => {
                tar.entry(b"z/", b'5', 0, b"", 0o755)?;
                tar.entry(b"z/zero", b'0', bytes, b"", 0o644)?;
                tar.zeros(bytes)?;
            }
        }
        tar.finish()
    }
}

/// A name of `len` bytes: components of three control characters (ESC, BEL, CR; no
/// NUL, no `.`), made unique by a final `/n<i>` component. The 4-byte period is what
/// deflate compresses best (258-byte matches at a distance with no extra bits), so the
/// gzip'd overlay is as small as an attacker can make it.
pub fn hostile_name(i: u64, len: usize) -> Vec<u8> {
    const UNIT: &[u8; 4] = b"\x1b\x07\x0d/";
    let suffix = format!("/n{i}");
    let body = len.saturating_sub(suffix.len()).max(1);
    let mut out: Vec<u8> = UNIT.iter().copied().cycle().take(body).collect();
    if out.last() == Some(&b'/') {
        out.pop();
        out.push(UNIT[0]);
    }
    out.extend_from_slice(suffix.as_bytes());
    out
}

/// A minimal ustar + PAX writer: names over 100 bytes go into a PAX `path` (and
/// `linkpath`) record, as GNU tar `--format=posix` writes them.
pub struct Tar<W: Write> {
    out: W,
    /// Members written, PAX extension headers not counted.
    pub members: u64,
    /// Bytes of tar stream written.
    pub bytes: u64,
    /// Bytes still owed to the current member's data.
    owed: u64,
}

impl<W: Write> Tar<W> {
    pub fn new(out: W) -> Self {
        Tar {
            out,
            members: 0,
            bytes: 0,
            owed: 0,
        }
    }

    pub fn into_inner(self) -> W {
        self.out
    }

    fn put(&mut self, b: &[u8]) -> io::Result<()> {
        self.out.write_all(b)?;
        self.bytes += b.len() as u64;
        Ok(())
    }

    fn header(
        &mut self,
        name: &[u8],
        kind: u8,
        size: u64,
        link: &[u8],
        mode: u32,
    ) -> io::Result<()> {
        let mut h = [0u8; 512];
        let name = &name[..name.len().min(100)];
        h[..name.len()].copy_from_slice(name);
        octal(&mut h[100..108], u64::from(mode));
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        octal(&mut h[124..136], size);
        octal(&mut h[136..148], 1_700_000_000);
        h[156] = kind;
        let link = &link[..link.len().min(100)];
        h[157..157 + link.len()].copy_from_slice(link);
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        octal(&mut h[329..337], 0);
        octal(&mut h[337..345], 0);
        h[148..156].fill(b' ');
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        self.put(&h)
    }

    /// One member; `size` bytes of data must follow through [`Tar::data`] or
    /// [`Tar::zeros`].
    pub fn entry(
        &mut self,
        path: &[u8],
        kind: u8,
        size: u64,
        link: &[u8],
        mode: u32,
    ) -> io::Result<()> {
        if self.owed != 0 {
            return Err(io::Error::other("previous member's data not written"));
        }
        if path.len() > 100 || link.len() > 100 {
            let mut pax = Vec::new();
            if path.len() > 100 {
                pax_record(&mut pax, b"path", path);
            }
            if link.len() > 100 {
                pax_record(&mut pax, b"linkpath", link);
            }
            self.header(b"PaxHeaders/long", b'x', pax.len() as u64, b"", 0o644)?;
            self.put(&pax)?;
            self.pad(pax.len() as u64)?;
        }
        self.header(path, kind, size, link, mode)?;
        self.members += 1;
        self.owed = size;
        Ok(())
    }

    pub fn data(&mut self, data: &[u8]) -> io::Result<()> {
        if data.len() as u64 != self.owed {
            return Err(io::Error::other("member data of the wrong size"));
        }
        self.put(data)?;
        self.owed = 0;
        self.pad(data.len() as u64)
    }

    pub fn zeros(&mut self, mut n: u64) -> io::Result<()> {
        if n != self.owed {
            return Err(io::Error::other("member data of the wrong size"));
        }
        let total = n;
        let block = vec![0u8; 1 << 20];
        while n > 0 {
            let k = n.min(block.len() as u64) as usize;
            self.put(&block[..k])?;
            n -= k as u64;
        }
        self.owed = 0;
        self.pad(total)
    }

    fn pad(&mut self, len: u64) -> io::Result<()> {
        let rem = (512 - len % 512) % 512;
        self.put(&[0u8; 512][..rem as usize])
    }

    /// The two zero end blocks.
    pub fn finish(&mut self) -> io::Result<()> {
        self.put(&[0u8; 1024])
    }
}

fn octal(field: &mut [u8], v: u64) {
    let w = field.len() - 1;
    let s = format!("{v:0w$o}");
    field[..w].copy_from_slice(&s.as_bytes()[s.len() - w..]);
    field[w] = 0;
}

/// `"<len> key=value\n"`, where `len` counts the whole record including itself.
fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let rest = key.len() + value.len() + 3;
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// Writes the shape's gzip'd tar to `path`; returns (members, tar bytes).
fn build(kind: Kind, path: &Path) -> Result<(u64, u64)> {
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    // Level 9, as an attacker shrinking the file would use.
    let gz = GzEncoder::new(BufWriter::new(file), Compression::best());
    let mut tar = Tar::new(gz);
    kind.write(&mut tar)
        .with_context(|| format!("writing {}", path.display()))?;
    let (members, bytes) = (tar.members, tar.bytes);
    if members != kind.members() {
        bail!("{kind:?} wrote {members} members");
    }
    tar.into_inner()
        .finish()
        .and_then(|mut w| w.flush())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok((members, bytes))
}

struct Opts {
    only: Vec<String>,
    timeout: Duration,
    mem_cap_mb: u64,
}

fn parse(args: &[String]) -> Result<Opts> {
    let mut o = Opts {
        only: Vec::new(),
        timeout: Duration::from_secs(30),
        mem_cap_mb: 2048,
    };
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let mut number = || -> Result<u64> {
            iter.next()
                .with_context(|| format!("{arg} needs a value"))?
                .parse()
                .with_context(|| format!("{arg} wants a number"))
        };
        match arg.as_str() {
            "--timeout" => o.timeout = Duration::from_secs(number()?),
            "--mem-cap-mb" => o.mem_cap_mb = number()?,
            name if !name.starts_with('-') => o.only.push(name.to_owned()),
            other => bail!("unknown bench hostile option {other:?}"),
        }
    }
    let known: Vec<&str> = shapes().iter().map(|s| s.name).collect();
    if let Some(bad) = o.only.iter().find(|n| !known.contains(&n.as_str())) {
        bail!("unknown shape {bad:?}; shapes: {}", known.join(", "));
    }
    Ok(o)
}

/// `cargo xtask bench hostile [SHAPE..] [--timeout S] [--mem-cap-mb M]`.
pub fn run(args: &[String]) -> Result<()> {
    let opts = parse(args)?;
    let unpacker = crate::bench::build_unpack_example()?;
    let work = scratch_dir();
    fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let result = run_in(&unpacker, &work, &opts);
    let _ = fs::remove_dir_all(&work);
    result
}

/// The peer in the same run: GNU `tar -xzf` of the same archive into an
/// empty directory on the same file system, owners and modes not restored:
/// wall and CPU seconds (gzip included), `None` when tar refuses the archive,
/// as it does paths deeper than it supports. Tar creates the FIFOs and device
/// nodes that alpinit skips; they go with the directory.
fn gnu_tar_secs(gz: &Path, dest: &Path) -> Option<(f64, f64)> {
    fs::create_dir_all(dest).ok()?;
    let start = std::time::Instant::now();
    let child = Command::new("tar")
        .arg("-xzf")
        .arg(gz)
        .arg("-C")
        .arg(dest)
        .args(["--no-same-owner", "--no-same-permissions"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let waited = crate::bench::trace::wait(child.id() as libc::pid_t, 0);
    let secs = start.elapsed().as_secs_f64();
    // Reaped by the wait above; dropping the handle does not wait again.
    drop(child);
    let _ = fs::remove_dir_all(dest);
    let (status, usage) = waited.ok().flatten()?;
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    ok.then(|| (secs, crate::bench::trace::cpu_secs(&usage)))
}

fn scratch_dir() -> PathBuf {
    let name = format!("alpinit-bench-hostile-{}", std::process::id());
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.join(name)
    } else {
        crate::paths::target_dir().join(name)
    }
}

fn run_in(unpacker: &Path, work: &Path, opts: &Opts) -> Result<()> {
    println!(
        "unpacker: {} (Limits::default()); child capped at {} MiB of address space, {} s",
        unpacker.display(),
        opts.mem_cap_mb,
        opts.timeout.as_secs()
    );
    println!(
        "bounds: peak RSS <= {} MiB, <= {MAX_SECS_PER_MB} s (wall) per MB of gzip input",
        MAX_PEAK_KIB / 1024
    );
    println!(
        "scratch: {} ({}); cpu = user + system seconds (GNU tar's with its gzip)\n",
        work.display(),
        if crate::bench::trace::on_tmpfs(work) {
            "tmpfs, for alpinit and GNU tar"
        } else {
            "NOT tmpfs"
        }
    );
    println!(
        "{:<20} {:>9} {:>9} {:>8}  {:>8} {:>6} {:>10} {:>8} {:>9} {:>7}  {:<7} outcome",
        "shape",
        "gzip MB",
        "tar MB",
        "members",
        "wall s",
        "cpu s",
        "peak KiB",
        "s/MB",
        "GNU tar s",
        "cpu s",
        "verdict"
    );
    let mut failed = 0;
    for shape in shapes()
        .into_iter()
        .filter(|s| opts.only.is_empty() || opts.only.iter().any(|n| n == s.name))
    {
        let gz = work.join(format!("{}.apkovl.tar.gz", shape.name));
        let (members, tar_bytes) = build(shape.kind, &gz)?;
        let gz_bytes = fs::metadata(&gz)
            .with_context(|| format!("reading {}", gz.display()))?
            .len();
        let dest = work.join("root");
        let mut cmd = Command::new(unpacker);
        cmd.arg(&gz).arg(&dest);
        let r = run_capped(&mut cmd, &dest, opts.timeout, opts.mem_cap_mb << 20)?;
        let _ = fs::remove_dir_all(&dest);
        let peer = gnu_tar_secs(&gz, &work.join("peer"));
        let _ = fs::remove_file(&gz);
        let per_mb = r.secs / (gz_bytes as f64 / 1e6);
        // A killed child's figures are lower bounds.
        let at_least = if r.ended == Ended::TimedOut { ">" } else { "" };
        let outcome = describe(&r, members);
        let pass = passes(shape.may_reject, &r, per_mb);
        failed += usize::from(!pass);
        println!(
            "{:<20} {:>9.3} {:>9.1} {:>8}  {:>8} {:>6.2} {:>10} {:>8} {:>9} {:>7}  {:<7} {}",
            shape.name,
            gz_bytes as f64 / 1e6,
            tar_bytes as f64 / 1e6,
            members,
            format!("{at_least}{:.2}", r.secs),
            r.cpu_secs,
            r.peak_kib
                .map_or("?".to_owned(), |k| format!("{at_least}{k}")),
            format!("{at_least}{per_mb:.2}"),
            peer.map_or("failed".to_owned(), |t| format!("{:.2}", t.0)),
            peer.map_or("-".to_owned(), |t| format!("{:.2}", t.1)),
            if pass { "pass" } else { "FAIL" },
            outcome
        );
    }
    if failed > 0 {
        bail!("{failed} shape(s) over the bounds or not unpacked");
    }
    println!("\nevery shape within the bounds");
    Ok(())
}

/// Unpacked (or, where allowed, rejected with an error) within both bounds.
fn passes(may_reject: bool, r: &Run, secs_per_mb: f64) -> bool {
    let accepted = r.ended == Ended::Exit(0) || (may_reject && r.ended == Ended::Exit(1));
    accepted && r.peak_kib.is_some_and(|k| k <= MAX_PEAK_KIB) && secs_per_mb <= MAX_SECS_PER_MB
}

/// What the child did, in a few words.
fn describe(r: &Run, members: u64) -> String {
    let first_line = |s: &str| {
        s.lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(120)
            .collect::<String>()
    };
    match r.ended {
        Ended::Exit(0) => {
            let entries = r.stdout.split_whitespace().next().unwrap_or("?");
            if entries == members.to_string() {
                format!("unpacked ({entries} entries)")
            } else {
                format!("unpacked ({entries} entries of {members})")
            }
        }
        Ended::Exit(1) => format!("rejected: {}", first_line(&r.stderr).escape_debug()),
        Ended::Exit(c) => format!("exit status {c}: {}", first_line(&r.stderr).escape_debug()),
        Ended::Signal(s) => format!("killed by signal {s} (memory cap reached?)"),
        Ended::TimedOut => "did not finish before the timeout (killed)".to_owned(),
    }
}

#[cfg(test)]
mod tests;
