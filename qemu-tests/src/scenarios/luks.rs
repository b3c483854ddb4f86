//! LUKS against its oracle: every container shape `crates/luks/tests/make-fixtures.sh`
//! makes is opened in one VM by Debian's cryptsetup and by alpinit-luks, and the
//! dm-crypt tables (`dmsetup table --showkeys`) must be identical; a file system
//! written through cryptsetup's mapping must read back through ours. The host has no
//! device-mapper, so this runs in the VM (`src/bin/luks-oracle.rs` is its init).

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::checks::want_hostname;
use super::*;

/// Each container's data area, KiB: the ext4 image written through the mapping.
const DATA_KIB: u64 = 1024;
const HELLO: &str = "written through cryptsetup, read through alpinit\n";
/// Kernel modules the comparison needs beyond what the image loads for an ext4 root:
/// device-mapper and dm-crypt, the cipher templates, loop for the containers, and
/// AF_ALG, through which cryptsetup decrypts key slots.
const MODULES: &[&str] = &[
    "dm-crypt",
    "xts",
    "ecb",
    "essiv",
    "sha512_generic",
    "loop",
    "algif_skcipher",
    "algif_hash",
];
/// What `make-fixtures.sh` makes; the scenario fails if one is missing.
const MIN_FIXTURES: usize = 11;

pub(super) fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "luks-oracle",
            about: "every LUKS1/LUKS2 fixture shape: our dm-crypt table equals cryptsetup's, its ext4 reads back",
            image: ImageKind::Standard,
            setup: setup_luks_oracle,
            check: check_luks_oracle,
        },
        Scenario {
            name: "luks-root",
            about: "LUKS2 root (cryptroot=, root=/dev/mapper/root): a wrong, then the right passphrase typed",
            image: ImageKind::Standard,
            setup: setup_luks_root,
            check: check_luks_root,
        },
    ]
}

const LUKS_HOST: &str = "alpinit-luks-root";
const RIGHT: &str = "correct horse";
const WRONG: &str = "wrong horse";
const PROMPT: &str = "Enter passphrase for /dev/vda: ";

/// An ext4 root encrypted in place by cryptsetup (`reencrypt --encrypt`, which needs
/// no device-mapper on the host): LUKS2, aes-xts-plain64, PBKDF2.
fn setup_luks_root(assets: &Assets, dir: &Path) -> Result<Setup> {
    let tree = dir.join("root.tree");
    let init = fs::read(&assets.report_init)
        .with_context(|| format!("reading {}", assets.report_init.display()))?;
    media::write_tree(
        &tree,
        &[
            FileSpec::new("etc/hostname", 0o644, format!("{LUKS_HOST}\n")),
            FileSpec::new("sbin/init", 0o755, init),
            FileSpec::new("proc/.keep", 0o644, ""),
            FileSpec::new("sys/.keep", 0o644, ""),
            FileSpec::new("dev/.keep", 0o644, ""),
        ],
    )?;
    let img = dir.join("luks.img");
    let _ = fs::remove_file(&img);
    sh(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "LUKSROOT", "-d"])
        .arg(&tree)
        .arg(&img)
        .arg("24M"))?;
    let f = fs::OpenOptions::new().write(true).open(&img)?;
    f.set_len(32 << 20)?;
    drop(f);
    let pass = dir.join("pass");
    fs::write(&pass, RIGHT)?;
    sh(Command::new("cryptsetup")
        .args([
            "reencrypt",
            "--encrypt",
            "--type",
            "luks2",
            "--batch-mode",
            "--reduce-device-size",
            "8M",
        ])
        .args([
            "--cipher",
            "aes-xts-plain64",
            "--key-size",
            "512",
            "--pbkdf",
            "pbkdf2",
        ])
        .args([
            "--pbkdf-force-iterations",
            "1000",
            "--luks2-metadata-size",
            "16k",
            "--luks2-keyslots-size",
            "1m",
        ])
        .arg("--key-file")
        .arg(&pass)
        .arg(&img))?;
    let mut vm = kernel_vm(
        assets,
        ImageKind::Standard,
        "root=/dev/mapper/root cryptroot=/dev/vda cryptdm=root",
    )?;
    vm.virtio_disk(&img)
        .type_after(PROMPT, &format!("{WRONG}\n"))
        .type_after(PROMPT, &format!("{RIGHT}\n"));
    Ok(interactive(assets, vm))
}

fn check_luks_root(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    let log = &outcome.log;
    let mut failures = Vec::new();
    let prompts = log.matches(PROMPT).count();
    if prompts != 2 {
        failures.push(format!("{prompts} passphrase prompts, want 2"));
    }
    let wrong = log
        .matches("No key available with this passphrase.")
        .count();
    if wrong != 1 {
        failures.push(format!(
            "`No key available with this passphrase.` {wrong} times, want once"
        ));
    }
    for pw in [RIGHT, WRONG] {
        if log.contains(pw) {
            failures.push(format!("the passphrase {pw:?} was echoed on the console"));
        }
    }
    if log.contains("Kernel panic") {
        failures.push("kernel panic on the console".to_string());
    }
    let Some(report) = report else {
        failures.push("no report from the new root's init".to_string());
        return failures;
    };
    want_hostname(&mut failures, report, LUKS_HOST);
    match report.mount_at("/") {
        Some(m) if m.source.starts_with("/dev/dm-") && m.fstype == "ext4" => {}
        other => failures.push(format!("/ is {other:?}, want a /dev/dm-N ext4")),
    }
    failures
}

fn sh(cmd: &mut Command) -> Result<String> {
    let shown = format!("{cmd:?}");
    let out = cmd.output().with_context(|| format!("starting {shown}"))?;
    if !out.status.success() {
        bail!(
            "{shown}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A host program and the libraries `ldd` lists for it, at their own paths.
fn with_libraries(program: &str, files: &mut Vec<FileSpec>) -> Result<()> {
    let mut paths = vec![program.to_string()];
    paths.extend(crate::ldd::parse(&sh(Command::new("ldd").arg(program))?));
    for p in paths {
        if files.iter().any(|f| f.path == p.trim_start_matches('/')) {
            continue;
        }
        let data = fs::read(&p).with_context(|| format!("reading {p}"))?;
        files.push(FileSpec::new(&p, 0o755, data));
    }
    Ok(())
}

/// `names` and their dependencies from the kernel's modules.dep, dependencies first.
pub(super) fn module_closure(modules_dir: &Path, names: &[&str]) -> Result<Vec<String>> {
    let dep = fs::read_to_string(modules_dir.join("modules.dep"))
        .with_context(|| format!("reading {}/modules.dep", modules_dir.display()))?;
    let norm = |s: &str| s.replace('-', "_");
    let entry = |name: &str| {
        dep.lines().find_map(|l| {
            let (path, deps) = l.split_once(':')?;
            let base = path.rsplit('/').next()?.strip_suffix(".ko")?;
            (norm(base) == norm(name)).then(|| {
                (
                    path.to_string(),
                    deps.split_whitespace()
                        .map(str::to_string)
                        .collect::<Vec<_>>(),
                )
            })
        })
    };
    let mut order: Vec<String> = Vec::new();
    for name in names {
        let (path, deps) =
            entry(name).with_context(|| format!("module {name} not in modules.dep"))?;
        // modules.dep lists a module's dependencies so that loading them from the last
        // to the first works.
        for d in deps.iter().rev().chain(std::iter::once(&path)) {
            if !order.contains(d) {
                order.push(d.clone());
            }
        }
    }
    Ok(order)
}

fn setup_luks_oracle(assets: &Assets, dir: &Path) -> Result<Setup> {
    let tree = dir.join("root.tree");
    let oracle = tree.join("oracle");
    fs::create_dir_all(&oracle).with_context(|| format!("creating {}", oracle.display()))?;
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/luks/tests/make-fixtures.sh");
    sh(Command::new("sh")
        .arg(&script)
        .arg(&oracle)
        .arg(DATA_KIB.to_string()))?;
    let mut names: Vec<String> = fs::read_dir(&oracle)?
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .strip_suffix(".oracle")
                .map(str::to_string)
        })
        .collect();
    names.sort();
    if names.len() < MIN_FIXTURES {
        bail!(
            "make-fixtures.sh made {} containers, want {MIN_FIXTURES}",
            names.len()
        );
    }

    // The ext4 image each container carries (4 KiB blocks suit 4096-byte sectors).
    let inner_tree = dir.join("inner.tree");
    fs::create_dir_all(&inner_tree)?;
    fs::write(inner_tree.join("hello"), HELLO)?;
    sh(Command::new("mkfs.ext4")
        .args([
            "-q",
            "-F",
            "-O",
            "^has_journal",
            "-b",
            "4096",
            "-L",
            "INNER",
            "-d",
        ])
        .arg(&inner_tree)
        .arg(oracle.join("inner.img"))
        .arg(format!("{DATA_KIB}K")))?;

    // The kernel's modules directory: `<pkg>/boot/vmlinux-REL` → `<pkg>/lib/modules/REL`.
    let release = assets
        .kernel
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.split_once('-').map(|(_, r)| r.to_string()))
        .context("kernel release from the kernel's file name")?;
    let pkg = assets
        .kernel
        .parent()
        .and_then(Path::parent)
        .context("kernel package directory")?;
    let modules_dir = pkg.join("lib/modules").join(&release);
    let mut files = Vec::new();
    let mut load = String::new();
    for m in module_closure(&modules_dir, MODULES)? {
        let data = fs::read(modules_dir.join(&m)).with_context(|| format!("reading module {m}"))?;
        let at = format!("oracle/modules.d/{}", m.rsplit('/').next().unwrap_or(&m));
        load.push_str(&format!("/{at}\n"));
        files.push(FileSpec::new(&at, 0o644, data));
    }
    files.push(FileSpec::new("oracle/modules", 0o644, load));
    files.push(FileSpec::new("oracle/list", 0o644, names.join("\n") + "\n"));
    let init = assets.report_init.with_file_name("luks-oracle");
    files.push(FileSpec::new(
        "sbin/init",
        0o755,
        fs::read(&init).with_context(|| format!("reading {}", init.display()))?,
    ));
    with_libraries("/usr/sbin/cryptsetup", &mut files)?;
    with_libraries("/usr/sbin/dmsetup", &mut files)?;
    // glibc loads libgcc_s when a thread exits (libargon2's lanes), so ldd misses it.
    let gcc_s = [
        "/lib/x86_64-linux-gnu/libgcc_s.so.1",
        "/usr/lib/x86_64-linux-gnu/libgcc_s.so.1",
    ]
    .into_iter()
    .find(|p| Path::new(p).is_file())
    .context("libgcc_s.so.1 not found (glibc needs it for cryptsetup's Argon2 threads)")?;
    files.push(FileSpec::new(
        "lib/x86_64-linux-gnu/libgcc_s.so.1",
        0o755,
        fs::read(gcc_s)?,
    ));
    for d in ["proc", "sys", "dev", "run"] {
        files.push(FileSpec::new(&format!("{d}/.keep"), 0o644, ""));
    }
    media::write_tree(&tree, &files)?;
    let img = dir.join("root.img");
    media::disk_image(&img, Filesystem::Ext4, "ROOT", 128, &tree)?;

    let mut vm = kernel_vm(assets, ImageKind::Standard, "root=LABEL=ROOT rootflags=rw")?;
    vm.virtio_disk(&img);
    Ok(Setup {
        vm,
        stop: Some(Box::new(|log: &str| {
            log.contains("Kernel panic") || log.contains("luks-oracle: done")
        })),
        timeout: assets.accel.boot_timeout() * 2,
    })
}

fn check_luks_oracle(outcome: &Outcome, _report: Option<&Report>) -> Vec<String> {
    let mut failures = Vec::new();
    let lines: Vec<&str> = outcome
        .log
        .lines()
        .filter_map(|l| l.trim_end().split_once("luks-oracle: ").map(|(_, r)| r))
        .collect();
    for l in &lines {
        if l.contains(": FAIL: ") || l.starts_with("module ") {
            failures.push(l.to_string());
        }
    }
    let ok = lines
        .iter()
        .filter(|l| l.contains(": ok: same table"))
        .count();
    if ok < MIN_FIXTURES {
        failures.push(format!(
            "{ok} containers compared equal, want at least {MIN_FIXTURES}"
        ));
    }
    if !lines.contains(&"done, 0 failed") {
        failures.push("no `luks-oracle: done, 0 failed` line".to_string());
    }
    if outcome.log.contains("Kernel panic") {
        failures.push("kernel panic on the console".to_string());
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_closure_puts_dependencies_first() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("modules.dep"),
            "kernel/drivers/md/dm-crypt.ko: kernel/drivers/md/dm-mod.ko\nkernel/drivers/md/dm-mod.ko:\nkernel/crypto/essiv.ko: kernel/crypto/authenc.ko\nkernel/crypto/authenc.ko:\n",
        )
        .unwrap();
        assert_eq!(
            module_closure(dir.path(), &["dm_crypt", "essiv"]).unwrap(),
            [
                "kernel/drivers/md/dm-mod.ko",
                "kernel/drivers/md/dm-crypt.ko",
                "kernel/crypto/authenc.ko",
                "kernel/crypto/essiv.ko"
            ]
        );
        assert!(module_closure(dir.path(), &["nope"]).is_err());
    }
}
