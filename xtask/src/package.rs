//! `.apk` packages from `initramfs/alpine/APKBUILD`, as abuild would make
//! them, without an Alpine build host.
//!
//! The recipe's own `package()` and subpackage functions run under `sh`
//! with the variables and helpers abuild gives them (`srcdir`, `builddir`,
//! `pkgdir`, `subpkgdir`, `subpkgname`, `amove`, `default_doc`), against a
//! build tree holding the static musl init where the recipe's `build()`
//! leaves it (`target/release/alpinit`) and the man pages. Each package
//! directory is then written in apk v2 format, signed, by the same code
//! that builds the test repositories (`qemu-tests/src/alpine_repo.rs`).
//! `build()` and `check()` are not run here: the init comes from
//! `cargo xtask`'s musl build (static, as `build()`'s `+crt-static` makes
//! it on Alpine) and the checks are `cargo test`.

mod stand_in;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use alpinit_qemu_tests::alpine_repo::{self, Entry, Installed, Key};
use anyhow::{bail, Context, Result};

use crate::paths;

pub use stand_in::{conf as stand_in_conf, mkinitfs_package};

/// Prefix of the key the packages are signed with (abuild's packager key).
pub const KEY_PREFIX: &str = "alpinit-packager";

/// The helpers abuild defines for package functions, as far as the recipe
/// uses them: `amove` moves paths from `$pkgdir` to `$subpkgdir`;
/// `default_doc` (what a `-doc` subpackage without a function runs) moves
/// the man pages and documentation and compresses the man pages.
const ABUILD_SHIM: &str = r#"
amove() {
	for p; do
		p=${p#/}
		mkdir -p "$subpkgdir/$(dirname "$p")"
		mv "$pkgdir/$p" "$subpkgdir/$p"
	done
}
default_doc() {
	pkgdesc="$pkgdesc (documentation)"
	depends=
	install_if="docs $pkgname=$pkgver-r$pkgrel"
	for d in usr/share/man usr/share/doc; do
		if [ -e "$pkgdir/$d" ]; then amove "$d"; fi
	done
	if [ -d "$subpkgdir/usr/share/man" ]; then
		find "$subpkgdir/usr/share/man" -type f ! -name '*.gz' -exec gzip -9n {} +
	fi
}
doc() { default_doc; }
meta() {
	printf 'pkgdesc=%s\ndepends=%s\ninstall_if=%s\narch=%s\n' \
		"$pkgdesc" "$depends" "$install_if" "$1" > "$2"
}
"#;

/// Runs the recipe: `package()`, then each subpackage's function in a
/// subshell (abuild's order), each writing its metadata beside its
/// directory. `$1` is the recipe, `$2` the output directory.
const RUNNER: &str = r#"
set -e
. "$1"
out=$2
cd "$builddir"
pkgdir=$out/$pkgname
mkdir -p "$pkgdir"
package
meta "$CARCH" "$out/$pkgname.meta"
for sp in $subpackages; do
	name=${sp%%:*}
	fn=$(echo "$sp" | cut -s -d: -f2)
	sparch=$(echo "$sp" | cut -s -d: -f3)
	[ -n "$fn" ] || fn=${name##*-}
	[ -n "$sparch" ] || sparch=$CARCH
	(
		subpkgname=$name
		subpkgdir=$out/$name
		mkdir -p "$subpkgdir"
		cd "$builddir"
		"$fn"
		meta "$sparch" "$out/$name.meta"
	)
done
printf 'pkgname=%s\npkgver=%s\npkgrel=%s\nurl=%s\nlicense=%s\ninstall=%s\nsubpackages=%s\n' \
	"$pkgname" "$pkgver" "$pkgrel" "$url" "$license" "$install" "$subpackages" > "$out/recipe.meta"
"#;

/// The recipe and its install scripts (what a rebuilt image depends on).
pub const RECIPE_FILES: &[&str] = &[
    "APKBUILD",
    "alpinit-mkinitfs.post-install",
    "alpinit-mkinitfs.post-upgrade",
    "alpinit-mkinitfs.pre-deinstall",
];

pub fn recipe_dir() -> PathBuf {
    paths::workspace_root().join("initramfs/alpine")
}

/// One written package.
pub struct Package {
    pub name: String,
    /// `VERSION-rREL`.
    pub version: String,
    pub path: PathBuf,
}

/// Everything `build` wrote, and the key that signed it.
pub struct Built {
    pub packages: Vec<Package>,
    pub key: Key,
}

impl Built {
    pub fn get(&self, name: &str) -> Result<&Package> {
        self.packages
            .iter()
            .find(|p| p.name == name)
            .with_context(|| format!("no package {name} was built"))
    }
}

/// Builds the recipe's packages for INIT (the static musl init) into OUT.
pub fn build(init: &Path, out: &Path) -> Result<Built> {
    let key = alpine_repo::cached_key(KEY_PREFIX)?;
    build_with_key(init, out, key)
}

fn build_with_key(init: &Path, out: &Path, key: Key) -> Result<Built> {
    if out.exists() {
        fs::remove_dir_all(out).with_context(|| format!("removing {}", out.display()))?;
    }
    let dirs = out.join("pkg");
    fs::create_dir_all(&dirs).with_context(|| format!("creating {}", dirs.display()))?;
    let recipe = recipe_dir().join("APKBUILD");
    let srcdir = out.join("src");
    let version = recipe_var(&recipe, "pkgver")?;
    let name = recipe_var(&recipe, "pkgname")?;
    let builddir = srcdir.join(format!("{name}-{version}"));
    build_tree(init, &builddir)?;
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("{ABUILD_SHIM}{RUNNER}"))
        .arg("sh")
        .arg(&recipe)
        .arg(&dirs)
        .env("srcdir", &srcdir)
        .env("startdir", recipe_dir())
        .env("CARCH", "x86_64")
        .status()
        .context("running the APKBUILD's package functions with sh")?;
    if !status.success() {
        bail!("the APKBUILD's package functions failed ({status})");
    }
    let recipe_meta = read_meta(&dirs.join("recipe.meta"))?;
    let field = |k: &str| recipe_meta.get(k).cloned().unwrap_or_default();
    let full_version = format!("{}-r{}", field("pkgver"), field("pkgrel"));
    let mut names = vec![field("pkgname")];
    for sp in field("subpackages").split_whitespace() {
        names.push(sp.split(':').next().unwrap_or(sp).to_string());
    }
    let scripts: Vec<String> = field("install")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let mut packages = Vec::new();
    for pkg in &names {
        let meta = read_meta(&dirs.join(format!("{pkg}.meta")))?;
        let root = dirs.join(pkg);
        let entries = walk(&root)?;
        let mut header = vec![
            ('P', pkg.clone()),
            ('V', full_version.clone()),
            ('A', meta.get("arch").cloned().unwrap_or_default()),
            ('I', installed_size(&root)?.to_string()),
            ('T', meta.get("pkgdesc").cloned().unwrap_or_default()),
            ('U', field("url")),
            ('L', field("license")),
            ('o', field("pkgname")),
            ('t', build_date()),
        ];
        for (letter, key) in [('D', "depends"), ('i', "install_if")] {
            let v = meta.get(key).map(|s| s.trim()).unwrap_or("");
            if !v.is_empty() {
                header.push((letter, v.split_whitespace().collect::<Vec<_>>().join(" ")));
            }
        }
        let mut pkg_scripts = Vec::new();
        for script in &scripts {
            let Some(kind) = script.strip_prefix(&format!("{pkg}.")) else {
                continue;
            };
            let path = recipe_dir().join(script);
            let text = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            pkg_scripts.push((kind.to_string(), text));
        }
        let installed = Installed {
            header,
            entries,
            scripts: pkg_scripts,
        };
        let built = alpine_repo::build_package(&installed, &root, &key)?;
        let path = out.join(built.file_name());
        fs::write(&path, &built.bytes).with_context(|| format!("writing {}", path.display()))?;
        packages.push(Package {
            name: pkg.clone(),
            version: full_version.clone(),
            path,
        });
    }
    Ok(Built { packages, key })
}

/// `$builddir` as the recipe's `build()` leaves it.
fn build_tree(init: &Path, builddir: &Path) -> Result<()> {
    let release = builddir.join("target/release");
    fs::create_dir_all(&release).with_context(|| format!("creating {}", release.display()))?;
    fs::copy(init, release.join("alpinit"))
        .with_context(|| format!("copying {}", init.display()))?;
    fs::set_permissions(release.join("alpinit"), fs::Permissions::from_mode(0o755))
        .context("chmod the init")?;
    let docs = builddir.join("docs");
    fs::create_dir_all(&docs).with_context(|| format!("creating {}", docs.display()))?;
    for page in ["alpinit.8", "alpinit-bootparam.7"] {
        let src = paths::workspace_root().join("docs").join(page);
        fs::copy(&src, docs.join(page)).with_context(|| format!("copying {}", src.display()))?;
    }
    Ok(())
}

/// One variable of the recipe, as `sh` sees it after sourcing it.
fn recipe_var(recipe: &Path, var: &str) -> Result<String> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(". \"$1\"; printf '%s' \"${var}\""))
        .arg("sh")
        .arg(recipe)
        .env("srcdir", "/nonexistent")
        .output()
        .with_context(|| format!("reading {var} from {}", recipe.display()))?;
    if !out.status.success() {
        bail!(
            "sourcing {}: {}",
            recipe.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn read_meta(path: &Path) -> Result<BTreeMap<String, String>> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(parse_meta(&text))
}

fn parse_meta(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Every directory, file and symlink under ROOT, each directory before
/// what it holds (sorted by path: a parent is a prefix of its children).
pub fn walk(root: &Path) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        let dir = root.join(&rel);
        for child in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let child = child.with_context(|| format!("reading {}", dir.display()))?;
            let path = rel.join(child.file_name());
            let meta = fs::symlink_metadata(child.path())
                .with_context(|| format!("stat {}", child.path().display()))?;
            let text = path.to_string_lossy().into_owned();
            let mode = meta.mode() & 0o7777;
            if meta.is_dir() {
                out.push(Entry::Dir { path: text, mode });
                todo.push(path);
            } else {
                out.push(Entry::File { path: text, mode });
            }
        }
    }
    out.sort_by(|a, b| entry_path(a).cmp(entry_path(b)));
    Ok(out)
}

fn entry_path(e: &Entry) -> &str {
    match e {
        Entry::Dir { path, .. } | Entry::File { path, .. } => path,
    }
}

/// abuild's `size`: `du -sk` of the package directory, in bytes. Never 0
/// (the directory itself counts), which matters: apk does not open a
/// package whose installed size is 0, so an empty package's install
/// scripts would never run.
pub fn installed_size(root: &Path) -> Result<u64> {
    let out = Command::new("du")
        .arg("-sk")
        .arg(root)
        .output()
        .with_context(|| format!("running du -sk {}", root.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let kib: u64 = text
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("du -sk {} printed {text:?}", root.display()))?;
    Ok(kib * 1024)
}

/// abuild's `builddate`: `SOURCE_DATE_EPOCH` when set (reproducible), else 0.
fn build_date() -> String {
    std::env::var("SOURCE_DATE_EPOCH").unwrap_or_else(|_| "0".into())
}

/// `cargo xtask package [--init FILE] [-o DIR]`.
pub fn command(args: &[String]) -> Result<()> {
    let mut init = None;
    let mut out = paths::target_dir().join("alpinit-packages");
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let mut value = || iter.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--init" => init = Some(PathBuf::from(value()?)),
            "-o" | "--output" => out = PathBuf::from(value()?),
            other => bail!("unknown package option {other:?}"),
        }
    }
    let init = match init {
        Some(path) => path,
        None => crate::build::init()?,
    };
    let built = build(&init, &out)?;
    for p in &built.packages {
        let size = fs::metadata(&p.path).map(|m| m.len()).unwrap_or(0);
        println!(
            "{} {}: {} ({size} bytes)",
            p.name,
            p.version,
            p.path.display()
        );
    }
    println!(
        "signed with {} (public key: {})",
        built.key.name,
        built.key.public.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests;
