//! Typed views over the raw option values, with the script's defaults.
//!
//! Empty values count as unset wherever the script tests with `[ -n "$KOPT_x" ]`.

use std::time::Duration;

use crate::apkovl::is_url;
use crate::{ApkovlSpec, Cmdline};

/// nlplug-findfs's receive buffer size when `uevent_buf_size=` is absent.
pub const DEFAULT_UEVENT_BUF_SIZE: usize = 4 * 1024 * 1024;

/// Largest accepted `uevent_buf_size=`; the kernel keeps socket buffer sizes in an `int`.
pub const MAX_UEVENT_BUF_SIZE: usize = 1 << 30;

/// Largest accepted `usbdelay=`; anything longer would stall the boot for no benefit.
pub const MAX_USBDELAY: Duration = Duration::from_secs(3600);

const DEFAULT_INIT: &str = "/sbin/init";

/// The tmpfs of a diskless root always starts with this option.
const TMPFS_MODE: &str = "mode=0755";

/// A typed option whose raw value cannot be used; the caller warns and falls back.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CmdlineError {
    #[error("uevent_buf_size={value:?} is not a number of bytes")]
    UeventBufSizeSyntax { value: String },
    #[error("uevent_buf_size={value:?} is outside 1..={MAX_UEVENT_BUF_SIZE}")]
    UeventBufSizeRange { value: String },
    #[error("usbdelay={value:?} is not a number of seconds")]
    UsbdelaySyntax { value: String },
    #[error("usbdelay={value:?} exceeds {} seconds", MAX_USBDELAY.as_secs())]
    UsbdelayRange { value: String },
}

impl Cmdline {
    /// A non-empty raw value (the script's `[ -n "$KOPT_name" ]`).
    pub(crate) fn non_empty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|value| !value.is_empty())
    }

    pub(crate) fn comma_list(&self, name: &str) -> Vec<String> {
        self.get(name).map(split_commas).unwrap_or_default()
    }

    /// Program to hand over to in the new root; `/sbin/init` unless `init=` is non-empty.
    pub fn init(&self) -> &str {
        self.non_empty("init").unwrap_or(DEFAULT_INIT)
    }

    /// `init_args=` split into words (the script expands it unquoted).
    pub fn init_args(&self) -> Vec<String> {
        self.get("init_args")
            .map(|args| args.split_ascii_whitespace().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    /// The `root=` spec; `None` selects diskless mode.
    pub fn root(&self) -> Option<&str> {
        self.non_empty("root")
    }

    /// File system type for the root: `rootfstype=`, or `zfs` when `root=ZFS=…`.
    ///
    /// The overlaytmpfs path of the script uses the raw `rootfstype=` only; use
    /// `get("rootfstype")` there.
    pub fn rootfstype(&self) -> Option<&str> {
        self.non_empty("rootfstype").or_else(|| {
            self.root()
                .filter(|root| root.starts_with("ZFS="))
                .map(|_| "zfs")
        })
    }

    /// Mount options for the diskless tmpfs root: `mode=0755[,size=<root_size>][,<rootflags>]`.
    pub fn tmpfs_options(&self) -> String {
        let mut options = String::from(TMPFS_MODE);
        if let Some(size) = self.non_empty("root_size") {
            options.push_str(",size=");
            options.push_str(size);
        }
        if let Some(flags) = self.non_empty("rootflags") {
            options.push(',');
            options.push_str(flags);
        }
        options
    }

    /// `root_size=` was used; the init prints Alpine's deprecation warning
    /// (`WARNING: the boot option root_size is deprecated. Use rootflags instead`).
    pub fn root_size_deprecated(&self) -> bool {
        self.non_empty("root_size").is_some()
    }

    /// Modules from `modules=a,b`.
    pub fn modules(&self) -> Vec<String> {
        self.comma_list("modules")
    }

    /// Modules from `blacklist=a,b`.
    pub fn blacklist(&self) -> Vec<String> {
        self.comma_list("blacklist")
    }

    /// `quiet`: no progress lines or banner on the console.
    pub fn quiet(&self) -> bool {
        self.is_yes("quiet")
    }

    /// `debug_init`: trace the boot steps.
    pub fn debug_init(&self) -> bool {
        self.is_yes("debug_init")
    }

    /// Exit (and let the kernel panic) instead of opening the recovery shell.
    ///
    /// As in the script any non-empty value counts, including `panic=0` and `nopanic`.
    pub fn panic_on_failure(&self) -> bool {
        self.non_empty("panic").is_some()
    }

    /// Receive buffer size for the uevent socket, in bytes.
    pub fn uevent_buf_size(&self) -> Result<usize, CmdlineError> {
        let Some(value) = self.non_empty("uevent_buf_size") else {
            return Ok(DEFAULT_UEVENT_BUF_SIZE);
        };
        if !value.bytes().all(|byte| byte.is_ascii_digit()) {
            return Err(CmdlineError::UeventBufSizeSyntax {
                value: value.to_owned(),
            });
        }
        value
            .parse::<usize>()
            .ok()
            .filter(|size| (1..=MAX_UEVENT_BUF_SIZE).contains(size))
            .ok_or_else(|| CmdlineError::UeventBufSizeRange {
                value: value.to_owned(),
            })
    }

    /// How long device discovery keeps waiting after a boot repository was found.
    ///
    /// Seconds, as an integer or a decimal (`2`, `0.5`); `None` when unset.
    pub fn usbdelay(&self) -> Result<Option<Duration>, CmdlineError> {
        self.non_empty("usbdelay")
            .map(|value| {
                let delay = parse_seconds(value).ok_or_else(|| CmdlineError::UsbdelaySyntax {
                    value: value.to_owned(),
                })?;
                delay.filter(|delay| *delay <= MAX_USBDELAY).ok_or_else(|| {
                    CmdlineError::UsbdelayRange {
                        value: value.to_owned(),
                    }
                })
            })
            .transpose()
    }

    /// The `apkovl=` source, classified.
    pub fn apkovl(&self) -> Option<ApkovlSpec> {
        self.non_empty("apkovl").map(ApkovlSpec::parse)
    }

    /// Repositories from `alpine_repo=a,b`; `auto` (search the boot media) gives none.
    pub fn alpine_repo(&self) -> Vec<String> {
        match self.get("alpine_repo") {
            Some("auto") | None => Vec::new(),
            Some(list) => split_commas(list),
        }
    }

    /// Extra packages from `pkgs=a,b`.
    pub fn pkgs(&self) -> Vec<String> {
        self.comma_list("pkgs")
    }

    /// `keep_apk_new`: do not let apk replace protected files from the apkovl.
    pub fn keep_apk_new(&self) -> bool {
        self.is_yes("keep_apk_new")
    }

    /// `apkovl_fallback=no` (alpinit's own option, so not in [`crate::OPTIONS`]):
    /// never fall back to a backup of a damaged overlay. Same rules as the
    /// listed options: the last word wins, bare means yes, `noapkovl_fallback`
    /// means no. On unless the value is `no`.
    pub fn apkovl_fallback(&self) -> bool {
        let mut value = "yes";
        for word in self.other_words() {
            if let Some(v) = word.strip_prefix("apkovl_fallback=") {
                value = v;
            } else if word == "apkovl_fallback" {
                value = "yes";
            } else if word == "noapkovl_fallback" {
                value = "no";
            }
        }
        value != "no"
    }

    /// `bootstrap_usr_merged`: pre-create a /usr-merged diskless root.
    pub fn bootstrap_usr_merged(&self) -> bool {
        self.is_yes("bootstrap_usr_merged")
    }

    /// Networking must be brought up: `ip=` or `nbd=` set, or the apkovl or a repository is a
    /// URL.
    ///
    /// The script only looks at the start of the whole `alpine_repo=` value; a URL anywhere in
    /// the list counts here, since apk could not reach it without a network either.
    pub fn needs_network(&self) -> bool {
        self.non_empty("ip").is_some()
            || self.non_empty("nbd").is_some()
            || matches!(self.apkovl(), Some(ApkovlSpec::Url(_)))
            || self.alpine_repo().iter().any(|repo| is_url(repo))
    }

    /// The network is configured: [`Self::needs_network`], or a `wireguard=`
    /// tunnel runs over it (the script calls `configure_ip` before
    /// `setup_wireguard`, outside `do_networking`).
    pub fn configures_network(&self) -> bool {
        self.needs_network() || self.non_empty("wireguard").is_some()
    }

    /// The NIC drivers are needed in the initramfs: the network is
    /// configured ([`Self::configures_network`]) or AoE runs over a link.
    pub fn uses_nics(&self) -> bool {
        self.configures_network() || self.non_empty("aoe").is_some()
    }
}

/// Splits a comma list, dropping empty entries as the script's unquoted expansion does.
pub(crate) fn split_commas(list: &str) -> Vec<String> {
    list.split(',')
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Parses `N` or `N.F` seconds. `None` is a syntax error, `Some(None)` an overflow.
fn parse_seconds(value: &str) -> Option<Option<Duration>> {
    let (whole, fraction) = match value.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (value, ""),
    };
    let all_digits = |text: &str| text.bytes().all(|byte| byte.is_ascii_digit());
    if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) {
        return None;
    }
    if value.ends_with('.') {
        return None;
    }
    let Ok(seconds) = whole.parse::<u64>() else {
        return Some(None);
    };
    // Digits beyond nanoseconds cannot change the result.
    let mut nanos: u32 = 0;
    for position in 0..9 {
        let digit = fraction
            .as_bytes()
            .get(position)
            .map_or(0, |byte| byte - b'0');
        nanos = nanos * 10 + u32::from(digit);
    }
    Some(Some(Duration::new(seconds, nanos)))
}

/// Calls every accessor once; used by [`crate::fuzz`].
pub(crate) fn touch_all(cmdline: &Cmdline) {
    for (name, value) in cmdline.options() {
        let _ = (cmdline.get(name), cmdline.is_yes(name), value);
    }
    let _ = (cmdline.single(), cmdline.consoles(), cmdline.other_words());
    let _ = (
        cmdline.switch_root_console(),
        cmdline.init(),
        cmdline.init_args(),
    );
    let _ = (
        cmdline.root(),
        cmdline.rootfstype(),
        cmdline.tmpfs_options(),
    );
    let _ = (
        cmdline.root_size_deprecated(),
        cmdline.modules(),
        cmdline.blacklist(),
    );
    let _ = (
        cmdline.quiet(),
        cmdline.debug_init(),
        cmdline.panic_on_failure(),
    );
    let _ = (
        cmdline.uevent_buf_size(),
        cmdline.usbdelay(),
        cmdline.apkovl(),
    );
    let _ = (
        cmdline.alpine_repo(),
        cmdline.pkgs(),
        cmdline.keep_apk_new(),
    );
    let _ = (cmdline.bootstrap_usr_merged(), cmdline.needs_network());
    let _ = (cmdline.configures_network(), cmdline.uses_nics());
    let _ = cmdline.wireguard();
    if let Some(aoe) = cmdline.aoe() {
        // Every accepted target names a node inside /dev/etherd.
        for t in &aoe.targets {
            assert!(!t.contains('/') && t.split('.').count() == 2, "{t:?}");
        }
    }
}
