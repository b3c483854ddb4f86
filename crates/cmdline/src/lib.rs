//! Alpine's kernel command line semantics.
//!
//! The old `initramfs-init` shell script splits `/proc/cmdline` on whitespace (no quoting) and
//! turns every word into shell variables. [`Cmdline`] reproduces those rules exactly:
//!
//! * `s`, `single` or `1` switch on single mode;
//! * `console=DEV[,opts]` is collected into [`Cmdline::consoles`] (prepended, as Alpine does,
//!   options after the first `,` stripped) and the last one becomes the `switch_root` console;
//! * for every name in Alpine's option list ([`OPTIONS`]), `name=value` stores everything after
//!   the first `=`, a bare `name` stores `yes` and `noname` stores `no`; later words override
//!   earlier ones;
//! * every other word is kept verbatim in [`Cmdline::other_words`] (module parameters such as
//!   `modprobe.blacklist=` or `mod.param=`, and loader noise such as `BOOT_IMAGE=`).
//!
//! Only the raw values are stored; the typed accessors (`init()`, `tmpfs_options()`, …) derive
//! their answers from them on each call, so there is a single source of truth that can be
//! logged as-is.

mod aoe;
mod apkovl;
mod nbd;
mod views;
mod wireguard;

#[cfg(test)]
mod tests;

pub use aoe::Aoe;
pub use apkovl::ApkovlSpec;
pub use nbd::{Nbd, NbdServer};
pub use views::{CmdlineError, DEFAULT_UEVENT_BUF_SIZE, MAX_UEVENT_BUF_SIZE, MAX_USBDELAY};
pub use wireguard::{Wireguard, DEFAULT_WIREGUARD_CONFIG};

/// Alpine's `myopts` list, in the order the script declares it.
///
/// The order matters only for [`Cmdline::options`], which reports options in this order.
pub const OPTIONS: [&str; 46] = [
    "BOOTIF",
    "alpine_repo",
    "aoe",
    "aoe_iflist",
    "aoe_mtu",
    "apkovl",
    "autodetect_serial",
    "blacklist",
    "bootstrap_usr_merged",
    "chart",
    "cryptdiscards",
    "cryptdm",
    "cryptheader",
    "cryptkey",
    "cryptoffset",
    "cryptroot",
    "dasd",
    "debug_init",
    "ds",
    "init",
    "init_args",
    "ip",
    "keep_apk_new",
    "memdisk",
    "modules",
    "nbd",
    "overlaytmpfs",
    "overlaytmpfsflags",
    "panic",
    "pkgs",
    "quiet",
    "resume",
    "resume_offset",
    "root",
    "root_size",
    "rootflags",
    "rootfstype",
    "s390x_net",
    "splash",
    "ssh_key",
    "tinycloud",
    "uevent_buf_size",
    "usbdelay",
    "usrflags",
    "wireguard",
    "zfcp",
];

/// Environment variable prefix the script uses for every option (`KOPT_root`, …).
const ENV_PREFIX: &str = "KOPT_";

/// The parsed kernel command line: raw option values plus the few words handled specially.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cmdline {
    /// One slot per entry of [`OPTIONS`]; `None` means the option never appeared.
    values: Vec<Option<String>>,
    single: bool,
    consoles: Vec<String>,
    switch_root_console: Option<String>,
    other: Vec<String>,
}

impl Cmdline {
    /// Parses a kernel command line with an empty environment.
    pub fn parse(text: &str) -> Self {
        Self::parse_with_env(text, std::iter::empty())
    }

    /// Parses `text` after seeding options from `KOPT_name=value` environment entries.
    ///
    /// The script only ever assigns `KOPT_*` variables and never clears them, so values
    /// exported before it runs act as defaults that the command line can override.
    /// Entries whose name is not an Alpine option are ignored.
    pub fn parse_with_env(text: &str, env: impl Iterator<Item = (String, String)>) -> Self {
        let mut cmdline = Self {
            values: vec![None; OPTIONS.len()],
            ..Self::default()
        };
        for (key, value) in env {
            if let Some(index) = key.strip_prefix(ENV_PREFIX).and_then(option_index) {
                cmdline.values[index] = Some(value);
            }
        }
        for word in text.split_ascii_whitespace() {
            cmdline.apply(word);
        }
        cmdline
    }

    fn apply(&mut self, word: &str) {
        match word {
            "s" | "single" | "1" => {
                self.single = true;
                return;
            }
            _ => {}
        }
        if let Some(spec) = word.strip_prefix("console=") {
            let device = spec.split(',').next().unwrap_or_default();
            // An empty `console=` would make the script run `switch_root -c /dev/`; there is
            // no device to hand over to, so it is ignored instead.
            if !device.is_empty() {
                self.consoles.insert(0, device.to_owned());
                self.switch_root_console = Some(device.to_owned());
            }
            return;
        }
        let mut matched = false;
        for (index, name) in OPTIONS.iter().enumerate() {
            let value = if let Some(rest) = word.strip_prefix(name) {
                if rest.is_empty() {
                    Some("yes")
                } else {
                    rest.strip_prefix('=')
                }
            } else if word.strip_prefix("no") == Some(name) {
                Some("no")
            } else {
                None
            };
            if let Some(value) = value {
                self.values[index] = Some(value.to_owned());
                matched = true;
            }
        }
        if !matched {
            self.other.push(word.to_owned());
        }
    }

    /// The raw value of option `name` (the script's `$KOPT_name`), if it was set.
    ///
    /// Unknown names give `None`.
    pub fn get(&self, name: &str) -> Option<&str> {
        let index = option_index(name)?;
        self.values.get(index)?.as_deref()
    }

    /// Whether option `name` has exactly the value `yes` (bare `name` on the command line).
    pub fn is_yes(&self, name: &str) -> bool {
        self.get(name) == Some("yes")
    }

    /// Every option that was set, in [`OPTIONS`] order, with its raw value.
    pub fn options(&self) -> impl Iterator<Item = (&str, &str)> {
        OPTIONS
            .iter()
            .zip(self.values.iter())
            .filter_map(|(name, value)| Some((*name, value.as_deref()?)))
    }

    /// `s`, `single` or `1` was given.
    pub fn single(&self) -> bool {
        self.single
    }

    /// Console device names from `console=` words, most recent first (Alpine prepends).
    pub fn consoles(&self) -> &[String] {
        &self.consoles
    }

    /// The device of the last `console=` word, for `switch_root -c /dev/<dev>`.
    pub fn switch_root_console(&self) -> Option<&str> {
        self.switch_root_console.as_deref()
    }

    /// Words that are neither Alpine options nor `console=`/single-mode words, in order.
    pub fn other_words(&self) -> &[String] {
        &self.other
    }
}

/// Position of `name` in [`OPTIONS`].
fn option_index(name: &str) -> Option<usize> {
    OPTIONS.iter().position(|option| *option == name)
}

/// Parses `text` and exercises every accessor; for fuzz targets.
pub fn fuzz(text: &str) {
    let env = [("KOPT_root".to_owned(), text.to_owned())];
    for cmdline in [
        Cmdline::parse(text),
        Cmdline::parse_with_env(text, env.into_iter()),
    ] {
        views::touch_all(&cmdline);
    }
}
