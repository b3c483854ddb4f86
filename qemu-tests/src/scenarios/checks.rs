//! Assertions shared by the scenarios.

use crate::qemu::Outcome;
use crate::report::{self, Report};

/// What every booted-through scenario must show.
pub(super) fn common(outcome: &Outcome, report: Option<&Report>) -> (Vec<String>, Report) {
    let mut failures = Vec::new();
    if outcome.log.contains("Kernel panic") {
        failures.push("kernel panic on the console".to_string());
    }
    let Some(report) = report else {
        let why = if outcome.timed_out {
            "timed out"
        } else if outcome.status.is_some() {
            "QEMU exited"
        } else {
            "stopped"
        };
        failures.push(format!(
            "no report from the new root's init ({why} after {:.1}s)",
            outcome.elapsed.as_secs_f64()
        ));
        return (failures, Report::default());
    };
    if report.pid() != Some(1) {
        failures.push(format!(
            "report-init pid is {:?}, want 1",
            report.get("pid")
        ));
    }
    let phases: Vec<String> = report::phases(&outcome.log)
        .into_iter()
        .map(|p| p.0)
        .collect();
    for want in ["start", "switch-root"] {
        if !phases.iter().any(|p| p == want) {
            failures.push(format!("no `alpinit: phase {want}` line on the console"));
        }
    }
    if !media_ok(&outcome.log) {
        failures.push("no ` * Mounting boot media: ok.` on the console".to_string());
    }
    (failures, report.clone())
}

/// A root-mode boot's first checks (no boot media, so not [`common`]'s):
/// no kernel panic and a report from the new root's init, on which MORE
/// runs.
pub(super) fn root_booted(
    outcome: &Outcome,
    report: Option<&Report>,
    more: impl FnOnce(&mut Vec<String>, &Report),
) -> Vec<String> {
    let mut failures = Vec::new();
    if outcome.log.contains("Kernel panic") {
        failures.push("kernel panic on the console".to_string());
    }
    match report {
        Some(report) => more(&mut failures, report),
        None => failures.push("no report from the new root's init".to_string()),
    }
    failures
}

/// `Mounting boot media: ` and `ok.` may be split by kernel messages.
pub(super) fn media_ok(log: &str) -> bool {
    const MARK: &str = "Mounting boot media: ";
    let Some(pos) = log.find(MARK) else {
        return false;
    };
    let rest = &log[pos + MARK.len()..];
    match (rest.find("ok."), rest.find("failed.")) {
        (Some(ok), Some(failed)) => ok < failed,
        (Some(_), None) => true,
        _ => false,
    }
}

/// The initramfs was freed after the hand-over by its own child
/// (`crates/init/src/free_initramfs.rs`), which exited 0 under the new
/// root's init.
pub(super) fn want_initramfs_freed(failures: &mut Vec<String>, report: &Report) {
    let children = report.all("child");
    if !children.contains(&"alpinit-free-in 0") {
        failures.push(format!(
            "the initramfs freer did not exit 0 under the new init: children {children:?}"
        ));
    }
}

pub(super) fn want_hostname(failures: &mut Vec<String>, report: &Report, want: &str) {
    if report.get("hostname") != Some(want) {
        failures.push(format!(
            "hostname is {:?}, want {want:?}",
            report.get("hostname")
        ));
    }
}

/// A read-only mount of SOURCE (any of TARGETS) with FSTYPE in the new root.
pub(super) fn want_media(
    failures: &mut Vec<String>,
    report: &Report,
    source: &str,
    targets: &[&str],
    fstype: &str,
) {
    let found = report
        .mounts()
        .into_iter()
        .find(|m| m.source == source && targets.contains(&m.target.as_str()));
    match found {
        None => failures.push(format!(
            "{source} is not mounted at {} in the new root",
            targets.join(" or ")
        )),
        Some(m) => {
            if m.fstype != fstype {
                failures.push(format!("{} is {}, want {fstype}", m.target, m.fstype));
            }
            if !m.is_read_only() {
                failures.push(format!(
                    "{} is not read-only: {}",
                    m.target,
                    m.options.join(",")
                ));
            }
        }
    }
}

/// A shell prompt (`... # `) on a line after `Mounting boot media: failed.`.
pub(super) fn shell_prompt_after_failure(log: &str) -> bool {
    let Some(pos) = log.find("failed.") else {
        return false;
    };
    if !log[..pos].contains("Mounting boot media") {
        return false;
    }
    log[pos..].lines().skip(1).any(|l| {
        let l = strip_escapes(l);
        let l = l.trim_end_matches('\r');
        l.ends_with("# ") || l.trim_end().ends_with(" #") || l.trim() == "#"
    })
}

/// Drops ANSI CSI sequences (busybox ash asks for the cursor position
/// with `ESC [ 6 n` right after its prompt).
pub(super) fn strip_escapes(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_media_verdicts() {
        let cases = [
            (" * Mounting boot media: ok.\n", true),
            (" * Mounting boot media: [ 3.2] usb 1-1: new\nok.\n", true),
            (" * Mounting boot media: failed.\n", false),
            ("nothing\n", false),
        ];
        for (log, want) in cases {
            assert_eq!(media_ok(log), want, "{log:?}");
        }
    }

    #[test]
    fn recovery_prompt_detection() {
        let cases = [
            (
                " * Mounting boot media: failed.\nalpinit: no boot media\n/ # ",
                true,
            ),
            (" * Mounting boot media: failed.\r\n~ # \r\n", true),
            (
                " * Mounting boot media: failed.\r\nsh: no job control\r\n/ # \u{1b}[6n",
                true,
            ),
            (" * Mounting boot media: failed.\n", false),
            ("/ # \n * Mounting boot media: failed.\n", false),
            ("something failed.\n/ # ", false),
        ];
        for (log, want) in cases {
            assert_eq!(shell_prompt_after_failure(log), want, "{log:?}");
        }
    }
}
