//! The new root's `/sbin/init` for the `luks-oracle` scenario: for each container
//! made by `crates/luks/tests/make-fixtures.sh`, open it with Debian's cryptsetup,
//! write a small ext4 image through that mapping and record `dmsetup table
//! --showkeys`, close it, then open the same container with alpinit-luks (header,
//! key slot, dm ioctls) and check that the table is identical and the file system
//! mounts and reads back. One console line per container, then power off.
//!
//! Runs as PID 1 in a throw-away VM: every failure becomes a `FAIL` line, never a
//! panic.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use alpinit_luks::{dm, mem_available, Header, Limits};

const DIR: &str = "/oracle";
/// Marker lines the scenario parses.
const LINE: &str = "luks-oracle:";

fn main() {
    let mut out = console();
    mount_api();
    for m in fs::read_to_string(format!("{DIR}/modules"))
        .unwrap_or_default()
        .lines()
    {
        if let Err(e) = load_module(m) {
            say(&mut out, &format!("{LINE} module {m}: {e}"));
        }
    }
    let list = fs::read_to_string(format!("{DIR}/list")).unwrap_or_default();
    let mut failed = 0;
    for name in list.lines().filter(|l| !l.is_empty()) {
        match check(name) {
            Ok(detail) => say(&mut out, &format!("{LINE} {name}: ok: {detail}")),
            Err(e) => {
                failed += 1;
                say(&mut out, &format!("{LINE} {name}: FAIL: {e}"));
            }
        }
    }
    say(&mut out, &format!("{LINE} done, {failed} failed"));
    // SAFETY: sync and reboot take no pointers; this is PID 1 of a test VM.
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_POWER_OFF);
    }
}

fn console() -> Box<dyn Write> {
    match OpenOptions::new().write(true).open("/dev/console") {
        Ok(f) => Box::new(f),
        Err(_) => Box::new(std::io::stdout()),
    }
}

fn say(out: &mut Box<dyn Write>, line: &str) {
    let _ = out.write_all(format!("{line}\n").as_bytes());
    let _ = out.flush();
}

fn mount(src: &str, target: &str, fstype: &str, flags: libc::c_ulong) -> Result<(), String> {
    let _ = fs::create_dir_all(target);
    let c = |s: &str| std::ffi::CString::new(s).map_err(|e| e.to_string());
    let (s, t, f) = (c(src)?, c(target)?, c(fstype)?);
    // SAFETY: all pointers are NUL-terminated strings alive for the call; no data.
    let r = unsafe { libc::mount(s.as_ptr(), t.as_ptr(), f.as_ptr(), flags, std::ptr::null()) };
    if r != 0 {
        return Err(format!(
            "mount {src} on {target}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// /proc, /sys and /dev may have been moved over by the initramfs; mount what is not.
fn mount_api() {
    if !Path::new("/proc/self").exists() {
        let _ = mount("proc", "/proc", "proc", 0);
    }
    if !Path::new("/sys/kernel").exists() {
        let _ = mount("sysfs", "/sys", "sysfs", 0);
    }
    if !Path::new("/dev/null").exists() {
        let _ = mount("devtmpfs", "/dev", "devtmpfs", 0);
    }
    let _ = mount("tmpfs", "/run", "tmpfs", 0);
}

fn load_module(path: &str) -> Result<(), String> {
    let f = File::open(path).map_err(|e| format!("open: {e}"))?;
    // SAFETY: finit_module on an fd we own, with an empty NUL-terminated parameter string.
    let r = unsafe { libc::syscall(libc::SYS_finit_module, f.as_raw_fd(), c"".as_ptr(), 0) };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EEXIST) {
            return Err(e.to_string());
        }
    }
    Ok(())
}

const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_SET_FD: libc::c_ulong = 0x4C00;
const LOOP_CLR_FD: libc::c_ulong = 0x4C01;
const BLKGETSIZE64: libc::c_ulong = 0x8008_1272;

/// Attach `img` to a free loop device.
fn attach_loop(img: &Path) -> Result<(PathBuf, File), String> {
    let ctl = File::open("/dev/loop-control").map_err(|e| format!("/dev/loop-control: {e}"))?;
    // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a number.
    let n = unsafe { libc::ioctl(ctl.as_raw_fd(), LOOP_CTL_GET_FREE as _) };
    if n < 0 {
        return Err(format!(
            "LOOP_CTL_GET_FREE: {}",
            std::io::Error::last_os_error()
        ));
    }
    let dev = PathBuf::from(format!("/dev/loop{n}"));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(img)
        .map_err(|e| format!("{}: {e}", img.display()))?;
    let lo = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&dev)
        .map_err(|e| format!("{}: {e}", dev.display()))?;
    // SAFETY: LOOP_SET_FD takes the backing file's fd by value.
    if unsafe { libc::ioctl(lo.as_raw_fd(), LOOP_SET_FD as _, file.as_raw_fd()) } != 0 {
        return Err(format!(
            "LOOP_SET_FD {}: {}",
            dev.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok((dev, lo))
}

fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd} {}: {}: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn check(name: &str) -> Result<String, String> {
    let img = PathBuf::from(format!("{DIR}/{name}.img"));
    let hdr = PathBuf::from(format!("{DIR}/{name}.hdr"));
    let secret = format!("{DIR}/{name}.secret");
    let inner = fs::read(format!("{DIR}/inner.img")).map_err(|e| format!("inner.img: {e}"))?;
    let (dev, lo) = attach_loop(&img)?;
    let r = check_on(&dev, &hdr, &secret, &inner);
    let _ = run("/usr/sbin/dmsetup", &["remove", "theirs"]);
    // SAFETY: LOOP_CLR_FD takes no argument.
    unsafe { libc::ioctl(lo.as_raw_fd(), LOOP_CLR_FD as _) };
    r
}

fn check_on(dev: &Path, hdr: &Path, secret: &str, inner: &[u8]) -> Result<String, String> {
    let devs = dev.to_string_lossy().to_string();
    let hdrs = hdr.to_string_lossy().to_string();
    let mut args = vec![
        "open",
        "--type",
        "luks",
        "--disable-keyring",
        "--key-file",
        secret,
    ];
    if hdr.exists() {
        args.extend(["--header", &hdrs]);
    }
    args.extend([devs.as_str(), "theirs"]);
    run("/usr/sbin/cryptsetup", &args)?;
    let theirs = run("/usr/sbin/dmsetup", &["table", "--showkeys", "theirs"])?;
    {
        let mut f = OpenOptions::new()
            .write(true)
            .open("/dev/mapper/theirs")
            .map_err(|e| format!("/dev/mapper/theirs: {e}"))?;
        f.write_all(inner)
            .map_err(|e| format!("writing the file system: {e}"))?;
        f.sync_all()
            .map_err(|e| format!("syncing /dev/mapper/theirs: {e}"))?;
    }
    run("/usr/sbin/cryptsetup", &["close", "theirs"])?;

    let header_path = if hdr.exists() { hdr } else { dev };
    let mut h = File::open(header_path).map_err(|e| format!("{}: {e}", header_path.display()))?;
    let header = Header::read(&mut h).map_err(|e| format!("header: {e}"))?;
    let pass = fs::read(secret).map_err(|e| format!("{secret}: {e}"))?;
    let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let limits = Limits::for_mem_available(mem_available(&meminfo).unwrap_or(256 << 20));
    let unlocked = header
        .unlock(&mut h, &pass, &limits)
        .map_err(|e| format!("unlock: {e}"))?;
    let data = File::open(dev).map_err(|e| format!("{devs}: {e}"))?;
    let meta = data.metadata().map_err(|e| format!("{devs}: {e}"))?;
    if !meta.file_type().is_block_device() {
        return Err(format!("{devs} is not a block device"));
    }
    let mut size: u64 = 0;
    // SAFETY: BLKGETSIZE64 writes one u64 through the pointer, which is valid.
    if unsafe { libc::ioctl(data.as_raw_fd(), BLKGETSIZE64 as _, &mut size) } != 0 {
        return Err(format!(
            "BLKGETSIZE64 {devs}: {}",
            std::io::Error::last_os_error()
        ));
    }
    let rdev = meta.rdev();
    let table = dm::crypt_table(
        &unlocked.segment,
        &unlocked.volume_key,
        libc::major(rdev),
        libc::minor(rdev),
        size,
        false,
    )
    .map_err(|e| format!("table: {e}"))?;
    let control = dm::Control::open(Path::new("/dev/mapper/control")).map_err(|e| e.to_string())?;
    let uuid = dm::luks_uuid(header.version(), header.uuid(), "ours");
    let (major, minor) = control
        .create_crypt("ours", &uuid, &table, false)
        .map_err(|e| e.to_string())?;
    let r = compare_and_mount(&theirs, major, minor);
    let _ = control.remove("ours");
    r
}

fn compare_and_mount(theirs: &str, major: u32, minor: u32) -> Result<String, String> {
    let ours = run("/usr/sbin/dmsetup", &["table", "--showkeys", "ours"])?;
    if ours != theirs {
        return Err(format!(
            "tables differ: cryptsetup `{theirs}`, ours `{ours}`"
        ));
    }
    let uevent = fs::read_to_string(format!("/sys/dev/block/{major}:{minor}/uevent"))
        .map_err(|e| format!("uevent of {major}:{minor}: {e}"))?;
    let node = uevent
        .lines()
        .find_map(|l| l.strip_prefix("DEVNAME="))
        .ok_or_else(|| format!("no DEVNAME for {major}:{minor}"))?;
    let node = format!("/dev/{node}");
    mount(&node, "/run/mnt", "ext4", libc::MS_RDONLY)?;
    let text = fs::read_to_string("/run/mnt/hello");
    let _ = std::ffi::CString::new("/run/mnt").map(|p| {
        // SAFETY: a NUL-terminated path alive for the call.
        unsafe { libc::umount(p.as_ptr()) }
    });
    let text = text.map_err(|e| format!("reading hello through {node}: {e}"))?;
    if text != format!("{}\n", "written through cryptsetup, read through alpinit") {
        return Err(format!("hello reads {text:?}"));
    }
    // The table minus the key.
    let shown: Vec<&str> = ours
        .split(' ')
        .enumerate()
        .map(|(i, w)| if i == 4 { "<key>" } else { w })
        .collect();
    Ok(format!(
        "same table `{}`, file system reads back",
        shown.join(" ")
    ))
}
