//! What a whole boot did ([`Boot`]), read back from the recorded events.

use crate::failure::End;
use crate::platform::fake::Ev;
use alpinit_sys::{Call, MountFlags};
use std::path::{Path, PathBuf};

/// What a boot did.
pub struct Boot {
    pub end: End,
    pub events: Vec<Ev>,
    pub console: String,
    pub kmsg: String,
    pub(super) root: PathBuf,
}

/// A mount as the tests compare it: paths relative to the machine's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub source: String,
    pub target: String,
    pub fstype: Option<String>,
    pub flags: MountFlags,
    pub data: Option<String>,
}

impl Boot {
    fn rel(&self, p: &Path) -> String {
        match p.strip_prefix(&self.root) {
            Ok(r) => format!("/{}", r.display()),
            Err(_) => p.display().to_string(),
        }
    }
    pub fn mounts(&self) -> Vec<Mount> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Ev::Sys(Call::Mount {
                    source,
                    target,
                    fstype,
                    flags,
                    data,
                }) => Some(Mount {
                    source: self.rel(Path::new(source)),
                    target: self.rel(target),
                    fstype: fstype.clone(),
                    flags: *flags,
                    data: data.clone(),
                }),
                _ => None,
            })
            .collect()
    }
    /// The mount on `target`, if any (the first one).
    pub fn mount_on(&self, target: &str) -> Option<Mount> {
        self.mounts().into_iter().find(|m| m.target == target)
    }
    pub fn umounts(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Ev::Sys(Call::Umount { target, .. }) => Some(self.rel(target)),
                _ => None,
            })
            .collect()
    }
    pub fn insmods(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Ev::Insmod(n) => Some(n.clone()),
                _ => None,
            })
            .collect()
    }
    /// Spawned argv, the program relative to the machine's root.
    pub fn spawned(&self) -> Vec<Vec<String>> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Ev::Spawn(argv) => {
                    let mut v = argv.clone();
                    v[0] = self.rel(Path::new(&v[0]));
                    Some(v)
                }
                _ => None,
            })
            .collect()
    }
    pub fn shells(&self) -> usize {
        self.spawned()
            .iter()
            .filter(|a| a[0] == "/bin/busybox" && a.get(1).map(String::as_str) == Some("sh"))
            .count()
    }
    pub fn switched_to(&self) -> Option<(String, Vec<String>)> {
        self.events.iter().rev().find_map(|e| match e {
            Ev::SwitchRoot { init, args } => Some((init.clone(), args.clone())),
            _ => None,
        })
    }
    pub fn has(&self, ev: &Ev) -> bool {
        self.events.contains(ev)
    }
    /// Index of the first event matching `f` (for order assertions).
    pub fn index(&self, f: impl Fn(&Ev) -> bool) -> Option<usize> {
        self.events.iter().position(f)
    }
    /// Asserts that the console shows `text` (the console is the message).
    pub fn assert_console(&self, text: &str) {
        assert!(
            self.console.contains(text),
            "{text:?} not in:\n{}",
            self.console
        );
    }
    /// Asserts that the kernel log shows `text`.
    pub fn assert_kmsg(&self, text: &str) {
        assert!(self.kmsg.contains(text), "{text:?} not in:\n{}", self.kmsg);
    }
    /// Asserts a normal hand-over to `/sbin/init` without a shell.
    pub fn assert_clean_switch(&self) {
        assert_eq!(self.end, End::SwitchedRoot, "console:\n{}", self.console);
        assert_eq!(
            self.switched_to().map(|s| s.0).as_deref(),
            Some("/sbin/init")
        );
        assert_eq!(self.shells(), 0, "console:\n{}", self.console);
    }
}
