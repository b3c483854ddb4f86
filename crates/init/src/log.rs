//! The init's voice: `/dev/kmsg` records and Alpine's console progress lines.
//!
//! One `write()` per kmsg record, `<prio>alpinit: msg`, cut to the kernel's
//! line limit. Until `/dev/kmsg` can be opened (or if it never can), records
//! go to the console instead so nothing is lost silently.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::{Mutex, OnceLock};

/// Kernel printk levels used here. Phase lines use NOTICE so they reach the
/// console whenever `quiet` is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Err = 3,
    Warn = 4,
    Notice = 5,
    Info = 6,
    Debug = 7,
}

/// LOG_LINE_MAX is 1024 minus the record prefix; stay well inside it.
const MAX_RECORD: usize = 976;

struct Logger {
    kmsg: Mutex<Option<File>>,
    quiet: Mutex<bool>,
    debug: Mutex<bool>,
}

fn logger() -> &'static Logger {
    static LOGGER: OnceLock<Logger> = OnceLock::new();
    LOGGER.get_or_init(|| Logger {
        kmsg: Mutex::new(None),
        quiet: Mutex::new(false),
        debug: Mutex::new(false),
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Where a thread's console text and kmsg records go instead of stdout and
/// `/dev/kmsg`: the console half of the platform seam, so a whole boot run
/// in a test thread can be read back (see `platform::Console`).
pub trait Sink: Send + Sync {
    fn console(&self, text: &str);
    fn kmsg(&self, record: &str);
}

struct ThreadSink {
    sink: std::sync::Arc<dyn Sink>,
    quiet: bool,
    debug: bool,
}

thread_local! {
    static SINK: std::cell::RefCell<Option<ThreadSink>> = const { std::cell::RefCell::new(None) };
}

/// Sends this thread's output to `sink` (None: back to the console and kmsg).
/// `quiet` and `debug` then apply to this thread only.
pub fn set_thread_sink(sink: Option<std::sync::Arc<dyn Sink>>) {
    SINK.with(|s| {
        *s.borrow_mut() = sink.map(|sink| ThreadSink {
            sink,
            quiet: false,
            debug: false,
        });
    });
}

/// Runs `f` on this thread's sink, if one is set.
fn with_sink<R>(f: impl FnOnce(&mut ThreadSink) -> R) -> Option<R> {
    SINK.with(|s| s.borrow_mut().as_mut().map(f))
}

/// Opens `/dev/kmsg` (called once `/dev` is mounted).
pub fn open_kmsg(path: &std::path::Path) {
    if let Ok(f) = OpenOptions::new().write(true).open(path) {
        *lock(&logger().kmsg) = Some(f);
    }
}

pub fn set_quiet(quiet: bool) {
    if with_sink(|s| s.quiet = quiet).is_none() {
        *lock(&logger().quiet) = quiet;
    }
}

pub fn set_debug(debug: bool) {
    if with_sink(|s| s.debug = debug).is_none() {
        *lock(&logger().debug) = debug;
    }
}

pub fn quiet() -> bool {
    with_sink(|s| s.quiet).unwrap_or_else(|| *lock(&logger().quiet))
}

fn debug_on() -> bool {
    with_sink(|s| s.debug).unwrap_or_else(|| *lock(&logger().debug))
}

/// Renders one kmsg record: prefix, the message with control characters
/// replaced (device-supplied strings end up here), truncated on a char
/// boundary.
pub fn record(level: Level, msg: &str) -> String {
    let mut out = format!("<{}>alpinit: ", level as u8);
    for c in msg.chars() {
        if out.len() + c.len_utf8() > MAX_RECORD {
            break;
        }
        out.push(if c.is_control() && c != '\t' { '?' } else { c });
    }
    out.push('\n');
    out
}

pub fn log(level: Level, msg: &str) {
    if level == Level::Debug && !debug_on() {
        return;
    }
    let rec = record(level, msg);
    if with_sink(|s| s.sink.kmsg(&rec)).is_some() {
        return;
    }
    let mut kmsg = lock(&logger().kmsg);
    let written = match kmsg.as_mut() {
        Some(f) => f.write_all(rec.as_bytes()).is_ok(),
        None => false,
    };
    drop(kmsg);
    if !written {
        // Console fallback, without the priority prefix.
        let text = rec.split_once('>').map_or(rec.as_str(), |(_, t)| t);
        console(text);
    }
}

pub fn console(text: &str) {
    if with_sink(|s| s.sink.console(text)).is_some() {
        return;
    }
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

pub fn info(msg: &str) {
    log(Level::Info, msg);
}
pub fn notice(msg: &str) {
    log(Level::Notice, msg);
}
pub fn warn(msg: &str) {
    log(Level::Warn, msg);
}
pub fn error(msg: &str) {
    log(Level::Err, msg);
}
pub fn debug(msg: &str) {
    log(Level::Debug, msg);
}

/// CLOCK_MONOTONIC; continuous across switch_root, so the new root's init
/// can be compared with these lines.
pub fn monotonic() -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes into the timespec we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return std::time::Duration::ZERO;
    }
    std::time::Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

/// A timing line: `alpinit: phase <name> <seconds>`.
pub fn phase(name: &str) {
    phase_at(name, monotonic());
}

pub fn phase_at(name: &str, t: std::time::Duration) {
    // Integer formatting: float printing would add ~10 KB to the init.
    notice(&format!(
        "phase {name} {}.{:06}",
        t.as_secs(),
        t.subsec_micros()
    ));
}

/// Alpine's `ebegin`/`eend` pair.
pub struct Progress {
    msg: String,
}

impl Progress {
    pub fn begin(msg: &str) -> Self {
        info(&format!("{msg}..."));
        if !quiet() {
            console(&format!(" * {msg}: "));
        }
        Self {
            msg: msg.to_owned(),
        }
    }

    pub fn ok(self) {
        info(&format!("{}: ok.", self.msg));
        if !quiet() {
            console("ok.\n");
        }
    }

    /// Prints `failed. <why>`; the caller then takes the emergency path.
    pub fn failed(self, why: &str) {
        let why = if why.is_empty() {
            String::new()
        } else {
            format!(" {why}")
        };
        error(&format!("{}: failed.{why}", self.msg));
        if quiet() {
            console(&format!("{} ", self.msg));
        }
        console(&format!("failed.{why}\n"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_has_prefix_and_newline() {
        assert_eq!(
            record(Level::Notice, "phase start 1.0"),
            "<5>alpinit: phase start 1.0\n"
        );
    }

    #[test]
    fn phase_time_has_six_decimals() {
        let t = std::time::Duration::new(3, 5_000_000);
        let rec = record(
            Level::Notice,
            &format!("phase x {}.{:06}", t.as_secs(), t.subsec_micros()),
        );
        assert_eq!(rec, "<5>alpinit: phase x 3.005000\n");
    }

    #[test]
    fn record_is_truncated_to_the_kernel_line_limit() {
        let long = "x".repeat(5000);
        let rec = record(Level::Info, &long);
        assert!(rec.len() <= MAX_RECORD + 1);
        assert!(rec.ends_with('\n'));
    }

    #[test]
    fn record_neutralises_control_characters_from_devices() {
        let rec = record(Level::Info, "label=evil\n<0>fake\x1b[2J");
        assert_eq!(rec.matches('\n').count(), 1);
        assert!(!rec.contains('\x1b'));
    }

    #[test]
    fn record_truncates_on_char_boundary() {
        let s = "é".repeat(2000);
        let rec = record(Level::Info, &s);
        assert!(rec.is_char_boundary(rec.len() - 1));
    }
}
