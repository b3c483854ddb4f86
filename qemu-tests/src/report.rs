//! The report printed by `report-init` and the `alpinit:` lines of a serial
//! log, parsed for assertions.

pub const BEGIN: &str = "ALPINIT-REPORT-BEGIN";
pub const END: &str = "ALPINIT-REPORT-END";

/// Makes a value safe for one `key=value` line.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

pub fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('\\') => out.push('\\'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(c) => out.push(c),
                    None => {
                        out.push_str("\\x");
                        out.push_str(&hex);
                    }
                }
            }
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub source: String,
    pub target: String,
    pub fstype: String,
    pub options: Vec<String>,
}

impl Mount {
    pub fn is_read_only(&self) -> bool {
        self.options.iter().any(|o| o == "ro")
    }
}

/// `inspect=` line: the lstat of one path.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Inspect {
    pub kind: String,
    pub mode: u32,
    pub uid: u32,
    pub size: u64,
    pub target: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub entries: Vec<(String, String)>,
}

impl Report {
    /// The last complete report in a serial log. Kernel lines that land
    /// inside it (they start with `[`) are skipped.
    pub fn parse(log: &str) -> Option<Report> {
        let lines: Vec<&str> = log.lines().map(|l| l.trim_end_matches('\r')).collect();
        let end = lines.iter().rposition(|l| l.trim() == END)?;
        let begin = lines[..end].iter().rposition(|l| l.trim() == BEGIN)?;
        let entries = lines[begin + 1..end]
            .iter()
            .filter_map(|line| {
                let (key, value) = line.split_once('=')?;
                let valid =
                    !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '-');
                valid.then(|| (key.to_string(), unescape(value)))
            })
            .collect();
        Some(Report { entries })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, key: &str) -> Vec<&str> {
        self.entries
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn pid(&self) -> Option<u32> {
        self.get("pid")?.parse().ok()
    }

    /// Seconds of CLOCK_MONOTONIC when the new root's init started.
    pub fn monotonic(&self) -> Option<f64> {
        self.get("monotonic")?.parse().ok()
    }

    pub fn mounts(&self) -> Vec<Mount> {
        self.all("mount")
            .into_iter()
            .filter_map(|line| {
                let mut f = line.split_whitespace();
                Some(Mount {
                    source: f.next()?.to_string(),
                    target: f.next()?.to_string(),
                    fstype: f.next()?.to_string(),
                    options: f.next()?.split(',').map(str::to_string).collect(),
                })
            })
            .collect()
    }

    pub fn mount_at(&self, target: &str) -> Option<Mount> {
        self.mounts().into_iter().rev().find(|m| m.target == target)
    }

    pub fn inspect(&self, path: &str) -> Option<Inspect> {
        let prefix = format!("{path} ");
        let line = self
            .all("inspect")
            .into_iter()
            .find(|l| l.starts_with(&prefix))?;
        let mut out = Inspect::default();
        for field in line[prefix.len()..].split_whitespace() {
            let Some((key, value)) = field.split_once('=') else {
                // "missing ..." for absent paths
                return None;
            };
            match key {
                "type" => out.kind = value.to_string(),
                "mode" => out.mode = u32::from_str_radix(value, 8).unwrap_or(0),
                "uid" => out.uid = value.parse().unwrap_or(u32::MAX),
                "size" => out.size = value.parse().unwrap_or(0),
                "target" => out.target = Some(value.to_string()),
                _ => {}
            }
        }
        Some(out)
    }

    pub fn content(&self, path: &str) -> Option<&str> {
        let prefix = format!("{path} ");
        self.all("content")
            .into_iter()
            .find_map(|l| l.strip_prefix(&prefix))
    }
}

/// `alpinit: phase <name> <seconds>` lines, in log order.
pub fn phases(log: &str) -> Vec<(String, f64)> {
    const MARK: &str = "alpinit: phase ";
    log.lines()
        .filter_map(|line| {
            let rest = &line[line.find(MARK)? + MARK.len()..];
            let mut words = rest.split_whitespace();
            let name = words.next()?.to_string();
            let secs = words.next()?.parse().ok()?;
            Some((name, secs))
        })
        .collect()
}

/// The last `n` lines of a log, for failure messages.
pub fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| format!("    | {}\n", l.trim_end_matches('\r')))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_round_trips() {
        for s in [
            "plain",
            "two\nlines",
            "back\\slash",
            "tab\there",
            "ctl\u{1}x",
            "",
        ] {
            let e = escape(s);
            assert!(!e.contains('\n'), "{e}");
            assert_eq!(unescape(&e), s);
        }
    }

    const LOG: &str = "\
[    3.1] alpinit: phase start 3.100000\r
[    5.5] alpinit: phase media-found 5.512345\r
ALPINIT-REPORT-BEGIN\r
pid=1\r
monotonic=9.250000\r
cmdline=console=ttyS0 panic=-1\r
mount=tmpfs / tmpfs rw,relatime,mode=755 0 0\r
[    9.3] random: crng init done\r
mount=/dev/vda1 /media/vda1 ext4 ro,relatime 0 0\r
hostname=virt\r
inspect=/bin type=symlink mode=0777 uid=0 gid=0 size=7 target=usr/bin\r
inspect=/nope missing No such file or directory (os error 2)\r
inspect=/etc/motd type=file mode=0644 uid=0 gid=0 size=3\r
content=/etc/motd hi\\n\r
ALPINIT-REPORT-END\r
";

    #[test]
    fn parses_a_report_amid_kernel_lines() {
        let report = Report::parse(LOG).expect("report");
        assert_eq!(report.pid(), Some(1));
        assert_eq!(report.monotonic(), Some(9.25));
        assert_eq!(report.get("hostname"), Some("virt"));
        assert_eq!(report.mounts().len(), 2);
        let media = report.mount_at("/media/vda1").expect("mount");
        assert_eq!(media.source, "/dev/vda1");
        assert_eq!(media.fstype, "ext4");
        assert!(media.is_read_only());
        assert!(!report.mount_at("/").expect("root").is_read_only());
        let bin = report.inspect("/bin").expect("bin");
        assert_eq!(bin.kind, "symlink");
        assert_eq!(bin.target.as_deref(), Some("usr/bin"));
        assert_eq!(report.inspect("/nope"), None);
        assert_eq!(report.inspect("/etc/motd").expect("motd").mode, 0o644);
        assert_eq!(report.content("/etc/motd"), Some("hi\n"));
    }

    #[test]
    fn no_report_without_both_markers() {
        assert_eq!(Report::parse("ALPINIT-REPORT-BEGIN\npid=1\n"), None);
        assert_eq!(Report::parse(""), None);
    }

    #[test]
    fn phase_lines() {
        let got = phases(LOG);
        assert_eq!(
            got,
            vec![
                ("start".to_string(), 3.1),
                ("media-found".to_string(), 5.512345)
            ]
        );
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "    | b\n    | c\n");
    }
}
