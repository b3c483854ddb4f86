//! `cargo xtask bench unpack`: the alpinit unpacker against GNU tar.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use super::trace::{self, continue_tracee, vm_hwm_kib, wait};
use super::{median, runs_value};
use crate::paths;
use crate::process::run;

/// `cargo xtask bench unpack [-n N] [--mb M]`: the alpinit unpacker against
/// GNU `tar -xzf` on the same ~M MB overlay, N runs each, interleaved.
pub fn unpack(args: &[String]) -> Result<()> {
    let mut runs = 5usize;
    let mut target_mb = 50u64;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "-n" => runs = runs_value(&mut iter, arg)?,
            "--mb" => {
                target_mb = iter
                    .next()
                    .with_context(|| format!("{arg} needs a value"))?
                    .parse()
                    .with_context(|| format!("{arg} wants a size in MB"))?;
            }
            other => bail!("unknown bench unpack option {other:?}"),
        }
    }
    let unpacker = build_unpack_example()?;
    let work = scratch_dir();
    fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let result = measure(&unpacker, &work, runs, target_mb);
    let _ = fs::remove_dir_all(&work);
    result
}

fn measure(unpacker: &Path, work: &Path, runs: usize, target_mb: u64) -> Result<()> {
    let overlay = work.join("overlay.apkovl.tar.gz");
    let tree = work.join("tree");
    let content = make_overlay_tree(&tree, target_mb * 1_000_000)?;
    let mut tar = Command::new("tar");
    tar.args(["--numeric-owner", "-czf"])
        .arg(&overlay)
        .arg("-C")
        .arg(&tree)
        .args(&content.top_level);
    run(&mut tar)?;
    fs::remove_dir_all(&tree).with_context(|| format!("removing {}", tree.display()))?;
    let compressed = fs::metadata(&overlay)
        .with_context(|| format!("reading {}", overlay.display()))?
        .len();
    println!(
        "overlay: {} ({} files, {} dirs, {} symlinks; {:.1} MB of file data, {:.1} MB gzip'd)",
        overlay.display(),
        content.files,
        content.dirs,
        content.symlinks,
        content.bytes as f64 / 1e6,
        compressed as f64 / 1e6
    );
    println!("scratch: {} ({})", work.display(), scratch_kind(work));
    let dest = work.join("dest");
    let mut alpinit = Samples::default();
    let mut gnu = Samples::default();
    for i in 1..=runs {
        let mut cmd = Command::new(unpacker);
        cmd.arg(&overlay).arg(&dest);
        let a = timed(&mut cmd, &dest)?;
        if i == 1 {
            check_unpacked(&dest, &content)?;
        }
        let mut cmd = Command::new("tar");
        cmd.arg("-xzf").arg(&overlay).arg("-C").arg(&dest);
        let g = timed(&mut cmd, &dest)?;
        println!(
            "run {i}/{runs}: alpinit {:.3}s (cpu {:.3}s) {} KiB, tar {:.3}s (cpu {:.3}s) {} KiB",
            a.secs, a.cpu_secs, a.max_rss_kib, g.secs, g.cpu_secs, g.max_rss_kib
        );
        alpinit.push(a);
        gnu.push(g);
    }
    let _ = fs::remove_dir_all(&dest);
    let mb = content.bytes as f64 / 1e6;
    let (a_secs, a_rss, a_cpu) = alpinit.medians();
    let (g_secs, g_rss, g_cpu) = gnu.medians();
    println!("\nmedians over {runs} run(s), {mb:.1} MB of uncompressed file data:");
    println!(
        "  alpinit unpack: {:>7.1} MB/s  ({a_secs:.3} s, cpu {a_cpu:.3} s)  peak RSS {a_rss} KiB",
        mb / a_secs
    );
    println!(
        "  GNU tar -xzf:   {:>7.1} MB/s  ({g_secs:.3} s, cpu {g_cpu:.3} s with gzip)  peak RSS {g_rss} KiB (tar itself; gzip runs as its own process)",
        mb / g_secs
    );
    println!(
        "  ratio alpinit/GNU tar: {:.2}x (throughput, wall); {:.2}x (CPU time)",
        g_secs / a_secs,
        g_cpu / a_cpu
    );
    println!("reproduce: cargo xtask bench unpack -n {runs} --mb {target_mb}");
    Ok(())
}

pub(crate) fn build_unpack_example() -> Result<PathBuf> {
    let mut cmd = crate::build::cargo_release("alpinit-apkovl");
    cmd.args(["--example", "unpack"]);
    run(&mut cmd)?;
    let bin = paths::target_dir()
        .join("release")
        .join("examples")
        .join("unpack");
    if !bin.is_file() {
        bail!(
            "cargo built the unpack example but {} is missing",
            bin.display()
        );
    }
    Ok(bin)
}

/// A RAM-backed directory when there is one, so the disk does not decide.
fn scratch_dir() -> PathBuf {
    let name = format!("alpinit-bench-unpack-{}", std::process::id());
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.join(name)
    } else {
        paths::target_dir().join(name)
    }
}

fn scratch_kind(dir: &Path) -> &'static str {
    if trace::on_tmpfs(dir) {
        "tmpfs, like the new root of a diskless boot"
    } else {
        "NOT tmpfs: the figures include a disk file system"
    }
}

#[derive(Debug, Default)]
pub struct TreeContent {
    pub top_level: Vec<String>,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    /// Bytes of regular-file data.
    pub bytes: u64,
}

/// Deterministic config-like text: `key = value` lines from a counter.
pub fn text_file(seed: u64, len: usize) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "enable",
        "port",
        "listen",
        "user",
        "path",
        "timeout",
        "allow",
        "deny",
        "log",
        "level",
        "interface",
        "address",
        "gateway",
        "hostname",
        "service",
        "option",
        "default",
        "cache",
    ];
    let mut out = Vec::with_capacity(len + 64);
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    while out.len() < len {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let a = WORDS[(x >> 33) as usize % WORDS.len()];
        let b = WORDS[(x >> 41) as usize % WORDS.len()];
        let n = (x >> 50) % 10_000;
        if (x >> 20).is_multiple_of(7) {
            out.extend_from_slice(format!("# {a} the {b} settings\n").as_bytes());
        } else {
            out.extend_from_slice(format!("{a}_{b} = {n}\n").as_bytes());
        }
    }
    out.truncate(len);
    out
}

/// About TARGET bytes of file data under DIR: ~12% small text files in
/// etc/-like trees, the rest copies of the largest /usr/bin programs that
/// fit (real machine code compresses like real overlays' binaries do).
pub fn make_overlay_tree(dir: &Path, target: u64) -> Result<TreeContent> {
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    let mut c = TreeContent::default();
    let text_budget = target / 8;
    let mut seed = 0u64;
    'trees: for top in ["etc", "root"] {
        for group in 0..40 {
            let sub = dir
                .join(top)
                .join(format!("conf{group:02}.d"))
                .join("nested");
            fs::create_dir_all(&sub).with_context(|| format!("creating {}", sub.display()))?;
            c.dirs += 2;
            for n in 0..100 {
                if c.bytes >= text_budget {
                    break 'trees;
                }
                seed += 1;
                let len = 200 + (seed * 7919 % 3800) as usize;
                let name = if n % 2 == 0 {
                    sub.join(format!("file{n:03}.conf"))
                } else {
                    sub.with_file_name(format!("file{n:03}.conf"))
                };
                fs::write(&name, text_file(seed, len))
                    .with_context(|| format!("writing {}", name.display()))?;
                c.files += 1;
                c.bytes += len as u64;
                if n % 25 == 0 {
                    let link = sub.join(format!("link{n:03}"));
                    std::os::unix::fs::symlink(format!("../file{:03}.conf", n + 1), link)
                        .context("creating a symlink")?;
                    c.symlinks += 1;
                }
            }
        }
    }
    let bin = dir.join("usr/local/bin");
    fs::create_dir_all(&bin).with_context(|| format!("creating {}", bin.display()))?;
    c.dirs += 3;
    let mut programs: Vec<(u64, PathBuf)> = fs::read_dir("/usr/bin")
        .context("reading /usr/bin")?
        .flatten()
        .filter_map(|e| {
            let meta = fs::symlink_metadata(e.path()).ok()?;
            (meta.is_file() && meta.len() >= 64 * 1024).then(|| (meta.len(), e.path()))
        })
        .collect();
    programs.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    for (size, path) in programs {
        let left = target.saturating_sub(c.bytes);
        if left < 64 * 1024 {
            break;
        }
        if size > left {
            continue;
        }
        let name = path
            .file_name()
            .context("a /usr/bin entry without a name")?;
        fs::copy(&path, bin.join(name)).with_context(|| format!("copying {}", path.display()))?;
        c.files += 1;
        c.bytes += size;
    }
    let mut top: Vec<String> = fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    top.sort();
    c.top_level = top;
    if c.bytes < target / 2 {
        bail!(
            "only {} bytes of content could be gathered (is /usr/bin populated?)",
            c.bytes
        );
    }
    Ok(c)
}

/// The unpacker must produce what was packed, or the timing means nothing.
fn check_unpacked(dest: &Path, want: &TreeContent) -> Result<()> {
    let mut got = TreeContent::default();
    count_tree(dest, &mut got)?;
    if (got.files, got.symlinks, got.bytes) != (want.files, want.symlinks, want.bytes) {
        bail!(
            "the alpinit unpack of the benchmark overlay is incomplete: {} files, {} symlinks, \
             {} bytes; want {}, {}, {}",
            got.files,
            got.symlinks,
            got.bytes,
            want.files,
            want.symlinks,
            want.bytes
        );
    }
    Ok(())
}

fn count_tree(dir: &Path, c: &mut TreeContent) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let meta = fs::symlink_metadata(entry.path())?;
        if meta.is_dir() {
            c.dirs += 1;
            count_tree(&entry.path(), c)?;
        } else if meta.file_type().is_symlink() {
            c.symlinks += 1;
        } else if meta.is_file() {
            c.files += 1;
            c.bytes += meta.len();
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub secs: f64,
    pub max_rss_kib: i64,
    /// User plus system CPU seconds (with reaped descendants: GNU tar's gzip).
    pub cpu_secs: f64,
}

#[derive(Debug, Default)]
struct Samples(Vec<Sample>);

impl Samples {
    fn push(&mut self, s: Sample) {
        self.0.push(s);
    }

    /// Median seconds, median peak RSS and median CPU seconds.
    fn medians(&self) -> (f64, i64, f64) {
        let mut secs: Vec<f64> = self.0.iter().map(|s| s.secs).collect();
        let mut rss: Vec<f64> = self.0.iter().map(|s| s.max_rss_kib as f64).collect();
        let mut cpu: Vec<f64> = self.0.iter().map(|s| s.cpu_secs).collect();
        (
            median(&mut secs).unwrap_or(f64::NAN),
            median(&mut rss).unwrap_or(0.0) as i64,
            median(&mut cpu).unwrap_or(f64::NAN),
        )
    }
}

/// Runs CMD into a fresh DEST and returns its wall time and peak RSS.
///
/// `ru_maxrss` from `wait4` cannot be used alone: at exec the kernel folds
/// the RSS of the address space being replaced (this process's, through
/// vfork) into it. So the child is traced (no syscall stops, only its exec
/// and exit) and its own `VmHWM` is read at the exit stop, while the
/// memory still exists.
pub fn timed(cmd: &mut Command, dest: &Path) -> Result<Sample> {
    use std::os::unix::process::CommandExt;
    if dest.exists() {
        fs::remove_dir_all(dest).with_context(|| format!("removing {}", dest.display()))?;
    }
    fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;
    let shown = format!("{cmd:?}");
    // SAFETY: the hook runs in the forked child before exec and only makes
    // one async-signal-safe system call.
    unsafe {
        cmd.pre_exec(|| {
            if libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let started = Instant::now();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {shown}"))?;
    let pid = child.id() as libc::pid_t;
    let mut peak_kib = None;
    let mut first_stop = true;
    let (status, usage) = loop {
        let Some((status, usage)) = wait(pid, 0).with_context(|| format!("waiting for {shown}"))?
        else {
            continue;
        };
        if !libc::WIFSTOPPED(status) {
            break (status, usage);
        }
        continue_tracee(pid, status, &mut first_stop, || {
            peak_kib = vm_hwm_kib(pid);
        });
    };
    let secs = started.elapsed().as_secs_f64();
    // The child was reaped above; dropping the handle does not wait again.
    drop(child);
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("{shown} failed: wait status {status:#x}");
    }
    Ok(Sample {
        secs,
        // Without the exit stop, the kernel's figure is still an upper bound.
        max_rss_kib: peak_kib.unwrap_or(usage.ru_maxrss),
        cpu_secs: trace::cpu_secs(&usage),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_files_are_deterministic_text_of_the_asked_length() {
        for (seed, len) in [(1, 200), (2, 3999), (3, 0)] {
            let a = text_file(seed, len);
            assert_eq!(a.len(), len);
            assert_eq!(a, text_file(seed, len));
            assert!(a.iter().all(|b| b.is_ascii() && *b != 0));
        }
        assert_ne!(text_file(1, 500), text_file(2, 500));
    }

    #[test]
    fn overlay_tree_has_the_size_asked_and_counts_match() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tree = dir.path().join("tree");
        let target = 3_000_000;
        let made = make_overlay_tree(&tree, target).expect("tree");
        assert!(made.bytes <= target && made.bytes >= target / 2, "{made:?}");
        assert!(made.files > 100 && made.symlinks > 0, "{made:?}");
        let mut counted = TreeContent::default();
        count_tree(&tree, &mut counted).expect("count");
        assert_eq!(
            (counted.files, counted.symlinks, counted.bytes),
            (made.files, made.symlinks, made.bytes)
        );
        check_unpacked(&tree, &made).expect("same tree");
        fs::remove_file(tree.join("etc/conf00.d/file001.conf")).expect("rm");
        assert!(check_unpacked(&tree, &made).is_err());
    }

    #[test]
    fn timed_reports_rss_and_failures() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("dest");
        fs::create_dir_all(dest.join("stale")).expect("stale");
        let mut ok = Command::new("sh");
        ok.args([
            "-c",
            "test ! -e stale && head -c 4000000 /dev/zero | tr '\\0' x > big",
        ])
        .current_dir(&dest);
        let sample = timed(&mut ok, &dest).expect("timed");
        assert!(sample.max_rss_kib > 0);
        // A program that touches 40 MB must be seen doing so.
        let mut big = Command::new("sh");
        big.args([
            "-c",
            "x=$(head -c 40000000 /dev/zero | tr '\\0' x); echo ${#x}",
        ]);
        let sample = timed(&mut big, &dest).expect("timed");
        assert!(sample.max_rss_kib > 30_000, "{sample:?}");
        // The child's CPU time, with its reaped descendants (the pipeline's head and tr).
        assert!(
            sample.cpu_secs > 0.0 && sample.cpu_secs < 60.0,
            "{sample:?}"
        );
        assert!(!dest.join("stale").exists(), "dest was not made fresh");
        let mut bad = Command::new("sh");
        bad.args(["-c", "exit 3"]);
        assert!(timed(&mut bad, &dest).is_err());
    }

    #[test]
    fn tmpfs_is_told_from_other_file_systems_by_statfs() {
        assert!(!trace::on_tmpfs(Path::new("/proc")));
        assert!(!trace::on_tmpfs(Path::new("/no/such/path")));
        let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let points: Vec<Vec<&str>> = mounts.lines().map(|l| l.split(' ').collect()).collect();
        for f in &points {
            // A mount point listed once is not covered by a later mount.
            let once = points.iter().filter(|g| g.get(1) == f.get(1)).count() == 1;
            if once && f.len() > 2 && f[2] == "tmpfs" && !f[1].contains('\\') {
                assert!(trace::on_tmpfs(Path::new(f[1])), "{}", f[1]);
            }
        }
    }
}
