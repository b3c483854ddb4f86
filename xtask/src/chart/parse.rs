//! Reads a QEMU serial log (kernel lines with `[    3.756250]` timestamps,
//! the init's `alpinit: ...` kmsg records, the console text between them and
//! the `ALPINIT-REPORT` block of `report-init`) into a [`Timeline`].
//!
//! The lines read are the ones the init writes: `crates/init/src/log.rs`
//! (`phase`), `crates/init/src/discovery.rs` (`coldplug:`, `probe`, `found`,
//! `waiting:`, and with `debug_init` the `module` and `uevent:` lines),
//! `crates/apkovl/src/candidate.rs` (`apkovl chosen:`),
//! `crates/init/src/overlay.rs` (`unpacked`), `crates/init/src/packages.rs`
//! (`running apk`) and `crates/init/src/handover.rs` (`peak memory`).

/// What a point on the timeline is, for its colour and legend entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Kernel,
    Module,
    ModuleFailed,
    Device,
    Probe,
    Found,
    Wait,
    Overlay,
    Apk,
    Handover,
}

/// One thing that happened at a moment, or over a span when `to` is set.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Seconds on the kernel's clock (the `[ ... ]` timestamps).
    pub at: f64,
    pub to: Option<f64>,
    pub kind: Kind,
    pub label: String,
}

/// A `phase` line: the init's CLOCK_MONOTONIC value and where it lands on
/// the kernel's clock.
#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    pub name: String,
    pub secs: f64,
    pub at: f64,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Timeline {
    pub phases: Vec<Phase>,
    /// Sorted by start time, then by order in the log.
    pub events: Vec<Event>,
    /// Added to a CLOCK_MONOTONIC value to put it on the kernel's clock.
    pub clock_offset: f64,
    /// The last moment anything was seen.
    pub end: f64,
}

/// Splits `[    3.756250] rest` anywhere in the line (console text is often
/// glued in front of a kernel record) into the seconds and the rest.
pub fn timestamped(line: &str) -> Option<(f64, &str)> {
    let mut from = 0;
    while let Some(open) = line[from..].find('[').map(|i| from + i) {
        let after = &line[open + 1..];
        if let Some(close) = after.find(']') {
            let inner = after[..close].trim();
            if !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                if let Ok(secs) = inner.parse::<f64>() {
                    let rest = &after[close + 1..];
                    return Some((secs, rest.strip_prefix(' ').unwrap_or(rest)));
                }
            }
        }
        from = open + 1;
    }
    None
}

/// A record as the parser keeps it before the clocks are lined up.
enum Raw {
    Event(Kind, String),
    Phase(String, f64),
    Waiting(String),
    Chosen,
    Unpacked(String),
    RunningApk,
}

/// Parses an `alpinit: ` record (without the prefix).
fn init_record(msg: &str) -> Option<Raw> {
    if let Some(rest) = msg.strip_prefix("phase ") {
        let (name, secs) = rest.trim().rsplit_once(' ')?;
        return Some(Raw::Phase(name.to_string(), secs.parse().ok()?));
    }
    if let Some(rest) = msg.strip_prefix("module ") {
        // `LoadEvent { name: "virtio_blk", result: Ok(()) }` (Debug form).
        let name = rest.split_once("name: \"")?.1.split_once('"')?.0;
        let ok = rest.contains("result: Ok");
        let kind = if ok { Kind::Module } else { Kind::ModuleFailed };
        let label = if ok {
            format!("module {name}")
        } else {
            format!("module {name} failed")
        };
        return Some(Raw::Event(kind, label));
    }
    if let Some(rest) = msg.strip_prefix("uevent: ") {
        let field = |key: &str| {
            let v = rest.split_once(&format!("{key}='"))?.1;
            Some(v.split_once('\'')?.0.to_string())
        };
        let added = field("action")? == "Add";
        let devname = field("devname")?;
        if added && field("subsystem")? == "block" && !devname.is_empty() {
            return Some(Raw::Event(Kind::Device, format!("uevent add {devname}")));
        }
        return None;
    }
    if let Some(rest) = msg.strip_prefix("probe ") {
        let (dev, fields) = rest.split_once(": ")?;
        let fstype = fields.strip_prefix("type='")?.split_once('\'')?.0;
        let what = if fstype.is_empty() {
            "no file system"
        } else {
            fstype
        };
        return Some(Raw::Event(Kind::Probe, format!("probe {dev}: {what}")));
    }
    if msg.starts_with("found ") {
        return Some(Raw::Event(Kind::Found, msg.to_string()));
    }
    if msg.starts_with("coldplug: ") || msg.starts_with("peak memory ") {
        let kind = if msg.starts_with("peak") {
            Kind::Handover
        } else {
            Kind::Device
        };
        return Some(Raw::Event(kind, msg.to_string()));
    }
    if let Some(rest) = msg.strip_prefix("waiting: ") {
        return Some(Raw::Waiting(rest.to_string()));
    }
    if msg.starts_with("apkovl chosen: ") {
        return Some(Raw::Chosen);
    }
    if msg.starts_with("unpacked ") {
        return Some(Raw::Unpacked(msg.to_string()));
    }
    if msg.starts_with("running apk ") {
        return Some(Raw::RunningApk);
    }
    None
}

/// Parses a kernel record: the hand-over to `/init`, a disk's driver line,
/// its partition table, a mount.
fn kernel_record(msg: &str) -> Option<Raw> {
    if msg.starts_with("Run /init as init process") {
        return Some(Raw::Event(Kind::Kernel, "kernel runs /init".to_string()));
    }
    // `virtio_blk virtio0: [vda] 65536 512-byte logical blocks ...`,
    // `sd 0:0:0:0: [sda] 2048 512-byte ...`, `sr 0:0:0:0: [sr0] scsi3-mmc drive`.
    if msg.contains("logical blocks") || msg.contains("scsi3-mmc drive") {
        let (dev, rest) = msg.split_once(": [")?;
        let (disk, _) = rest.split_once(']')?;
        return Some(Raw::Event(Kind::Device, format!("disk {disk} ({dev})")));
    }
    if msg.contains("): mounted filesystem") {
        let dev = msg.split_once('(')?.1.split_once(')')?.0;
        return Some(Raw::Event(Kind::Device, format!("kernel mounts {dev}")));
    }
    // ` vda: vda1` / ` sda: sda1 sda2 < sda5 >`: a partition table read.
    let (disk, parts) = msg.trim().split_once(": ")?;
    let names: Vec<&str> = parts.split_whitespace().collect();
    let plausible = !disk.is_empty()
        && disk.bytes().all(|b| b.is_ascii_alphanumeric())
        && !names.is_empty()
        && names
            .iter()
            .all(|p| p.starts_with(disk) || *p == "<" || *p == ">");
    plausible.then(|| Raw::Event(Kind::Device, format!("partitions {disk}: {parts}")))
}

/// The `monotonic=` line of the report block: when the new root's init ran.
fn report_monotonic(log: &str) -> Option<f64> {
    let begin = log.find(alpinit_qemu_tests::report::BEGIN)?;
    let block = &log[begin..];
    let block = &block[..block
        .find(alpinit_qemu_tests::report::END)
        .unwrap_or(block.len())];
    block
        .lines()
        .find_map(|l| l.trim().strip_prefix("monotonic="))
        .and_then(|v| v.parse().ok())
}

/// Reads a serial log. Lines without a kernel timestamp are console text
/// and are skipped; unknown records are skipped too, so any log parses.
pub fn parse(log: &str) -> Timeline {
    let mut raw: Vec<(f64, Raw)> = Vec::new();
    for line in log.lines() {
        let Some((at, msg)) = timestamped(line) else {
            continue;
        };
        let rec = match msg.strip_prefix("alpinit: ") {
            Some(m) => init_record(m),
            None => kernel_record(msg),
        };
        if let Some(r) = rec {
            raw.push((at, r));
        }
    }
    // A phase record is written just after its CLOCK_MONOTONIC value was
    // read, so the smallest (kernel time - value) is the closest estimate of
    // how far the two clocks are apart.
    let clock_offset = raw
        .iter()
        .filter_map(|(at, r)| match r {
            Raw::Phase(_, secs) => Some(at - secs),
            _ => None,
        })
        .reduce(f64::min)
        .unwrap_or(0.0);
    let mut t = Timeline {
        clock_offset,
        ..Timeline::default()
    };
    for (_, r) in &raw {
        if let Raw::Phase(name, secs) = r {
            t.phases.push(Phase {
                name: name.clone(),
                secs: *secs,
                at: secs + clock_offset,
            });
        }
    }
    let phase_at = |name: &str| t.phases.iter().find(|p| p.name == name).map(|p| p.at);
    let mut events = Vec::new();
    let mut wait: Option<(f64, String)> = None;
    let mut since_wait: Option<String> = None;
    let mut chosen = None;
    let mut unpacked = None;
    let mut apk = None;
    // `why` names what ended the wait when no device, probe, find or
    // module came after its last line.
    let close_wait = |events: &mut Vec<Event>,
                      wait: &mut Option<(f64, String)>,
                      since: &mut Option<String>,
                      end: f64,
                      why: &str| {
        if let Some((from, reason)) = wait.take() {
            let why = since.take().unwrap_or_else(|| why.to_string());
            // The bar and, on its own row, what ended it: one label with
            // both would not fit beside the bar.
            let end = end.max(from);
            events.push(Event {
                at: from,
                to: Some(end),
                kind: Kind::Wait,
                label: format!("waiting: {reason} ({:.3} s)", end - from),
            });
            events.push(Event {
                at: end,
                to: None,
                kind: Kind::Wait,
                label: format!("wait over: {why}"),
            });
        }
    };
    let media_found = phase_at("media-found");
    for (at, r) in raw {
        if let (Some(end), Some(_)) = (media_found, &wait) {
            if at >= end {
                close_wait(
                    &mut events,
                    &mut wait,
                    &mut since_wait,
                    end,
                    "discovery ended",
                );
            }
        }
        match r {
            Raw::Event(kind, label) => {
                if wait.is_some()
                    && matches!(
                        kind,
                        Kind::Device
                            | Kind::Probe
                            | Kind::Found
                            | Kind::Module
                            | Kind::ModuleFailed
                    )
                {
                    since_wait = Some(label.clone());
                }
                events.push(Event {
                    at,
                    to: None,
                    kind,
                    label,
                });
            }
            Raw::Waiting(reason) => {
                let same = wait.as_ref().is_some_and(|(_, r)| *r == reason);
                if !same {
                    close_wait(&mut events, &mut wait, &mut since_wait, at, "a new wait");
                    wait = Some((at, reason));
                }
                since_wait = None;
            }
            Raw::Chosen => chosen = chosen.or(Some(at)),
            Raw::Unpacked(detail) => unpacked = Some(detail),
            Raw::RunningApk => apk = apk.or(Some(at)),
            Raw::Phase(..) => {}
        }
    }
    let last = raw_end(&events, &t.phases);
    close_wait(
        &mut events,
        &mut wait,
        &mut since_wait,
        media_found.unwrap_or(last),
        "discovery ended",
    );
    if let (Some(from), Some(to)) = (phase_at("apkovl-chosen").or(chosen), phase_at("unpacked")) {
        let label = unpacked.unwrap_or_else(|| "overlay".to_string());
        events.push(Event {
            at: from,
            to: Some(to.max(from)),
            kind: Kind::Overlay,
            label: format!("{label} ({:.3} s)", to - from),
        });
    }
    if let (Some(from), Some(to)) = (apk, phase_at("packages")) {
        events.push(Event {
            at: from,
            to: Some(to.max(from)),
            kind: Kind::Apk,
            label: format!("apk add ({:.3} s)", to - from),
        });
    }
    if let (Some(from), Some(new)) = (phase_at("switch-root"), report_monotonic(log)) {
        let to = new + clock_offset;
        events.push(Event {
            at: from,
            to: Some(to.max(from)),
            kind: Kind::Handover,
            label: format!("switch_root -> new root's init ({:.3} s)", to - from),
        });
    }
    // Stable sort: equal times keep log order.
    events.sort_by(|a, b| a.at.total_cmp(&b.at));
    t.end = raw_end(&events, &t.phases);
    t.events = events;
    t
}

fn raw_end(events: &[Event], phases: &[Phase]) -> f64 {
    events
        .iter()
        .map(|e| e.to.unwrap_or(e.at))
        .chain(phases.iter().map(|p| p.at))
        .fold(0.0, f64::max)
}
