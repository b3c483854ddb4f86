//! When to stop looking for boot media: Alpine's wait rules (§2.9),
//! made event-driven. There is no fixed idle timeout on the happy path:
//!
//! * while coldplug is unfinished, a module is loading or a block device is
//!   being handled, we wait (bounded by `hard_limit`);
//! * "settling" means storage the kernel is still bringing up, as read
//!   from sysfs by [`crate::pending`] (an ATA port still probing, a SCSI
//!   disk/CD without its driver or block device, a usb-storage interface
//!   without its disk, a block device not handled yet...), or USB activity
//!   within the last `usb_grace` (a hub that is still enumerating);
//! * once something was found and nothing is settling, we stop at once;
//!   while something was found we keep waiting for settling storage at
//!   most `settle_limit` after the first finding, so a fast first finding
//!   (an apkovl on a virtio disk) does not end the wait while the CD with
//!   the boot repository is still being probed, and an apkovl on a slow
//!   second stick is not missed;
//! * `usbdelay=N` keeps Alpine's meaning as a floor: after a boot
//!   repository was found and no apkovl (nor the wanted device), the wait
//!   lasts until N s passed without a uevent, as nlplug-findfs' `-t`; an
//!   apkovl found meanwhile ends the floor (the rest of the rules apply);
//! * when nothing was found, settling storage is waited for while the
//!   kernel is not silent for `settle_limit`, then slow hardware gets
//!   Alpine's 5 s of silence after the last event before failing (or we
//!   stop as soon as it is quiet when networking may provide the overlay).

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct WaitPolicy {
    pub idle_timeout: Duration,
    pub usb_grace: Duration,
    pub settle_limit: Duration,
    pub hard_limit: Duration,
    /// `usbdelay=`: the floor after a boot repository found without an
    /// apkovl (None: no floor, the settle rules alone apply).
    pub usbdelay: Option<Duration>,
    /// Networking will run after discovery: finding no media is fine.
    pub allow_not_found: bool,
}

impl Default for WaitPolicy {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(5),
            usb_grace: Duration::from_millis(1000),
            settle_limit: Duration::from_secs(10),
            hard_limit: Duration::from_secs(60),
            usbdelay: None,
            allow_not_found: false,
        }
    }
}

/// What the discovery loop knows at one instant.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub now: Instant,
    pub started: Instant,
    pub coldplug_done: bool,
    /// Modules queued or loading.
    pub busy: bool,
    pub last_event: Instant,
    pub last_usb_event: Option<Instant>,
    /// The kernel shows storage still being brought up ([`crate::pending`]).
    pub storage_pending: bool,
    /// First time anything (apkovl, repository, wanted device) was found.
    pub first_finding: Option<Instant>,
    /// An apkovl was found (on any medium).
    pub apkovl_found: bool,
    /// The device named by `apkovl=DEV:...` (or `root=`) was found.
    pub wanted_found: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Done,
    /// Nothing was found within the rules: fail.
    GiveUp,
    /// Poll again after at most this long (new events wake us earlier).
    Wait(Duration),
}

const TICK: Duration = Duration::from_millis(100);

impl WaitPolicy {
    pub fn decide(&self, s: &Snapshot) -> Decision {
        let since_start = s.now.saturating_duration_since(s.started);
        // A floor asked for on the command line must fit inside the bound.
        let hard_limit = self.hard_limit + self.usbdelay.unwrap_or_default();
        if since_start >= hard_limit {
            return if s.first_finding.is_some() {
                Decision::Done
            } else {
                Decision::GiveUp
            };
        }
        if !s.coldplug_done || s.busy {
            return Decision::Wait(TICK);
        }
        let usb_recent = s
            .last_usb_event
            .map(|t| s.now.saturating_duration_since(t) < self.usb_grace);
        let settling = s.storage_pending || usb_recent == Some(true);
        if let Some(found) = s.first_finding {
            if let Some(floor) = self.usbdelay {
                if !s.apkovl_found && !s.wanted_found {
                    let quiet = s.now.saturating_duration_since(s.last_event.max(found));
                    if quiet < floor {
                        return Decision::Wait((floor - quiet).min(Duration::from_secs(1)));
                    }
                }
            }
            if settling && s.now.saturating_duration_since(found) < self.settle_limit {
                return Decision::Wait(TICK);
            }
            return Decision::Done;
        }
        let quiet_for = s.now.saturating_duration_since(s.last_event);
        if settling && quiet_for < self.settle_limit {
            return Decision::Wait(TICK);
        }
        if self.allow_not_found {
            return Decision::GiveUp;
        }
        if quiet_for >= self.idle_timeout {
            Decision::GiveUp
        } else {
            Decision::Wait((self.idle_timeout - quiet_for).min(Duration::from_secs(1)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(t0: Instant) -> Snapshot {
        Snapshot {
            now: t0 + Duration::from_millis(500),
            started: t0,
            coldplug_done: true,
            busy: false,
            last_event: t0 + Duration::from_millis(400),
            last_usb_event: None,
            storage_pending: false,
            first_finding: None,
            apkovl_found: false,
            wanted_found: false,
        }
    }

    #[test]
    fn found_and_quiet_stops_without_an_idle_timeout() {
        let t0 = Instant::now();
        let mut s = snap(t0);
        s.first_finding = Some(t0 + Duration::from_millis(450));
        assert_eq!(WaitPolicy::default().decide(&s), Decision::Done);
    }

    #[test]
    fn waits_while_modules_load_or_coldplug_runs() {
        let t0 = Instant::now();
        let p = WaitPolicy::default();
        let mut s = snap(t0);
        s.first_finding = Some(t0);
        s.busy = true;
        assert!(matches!(p.decide(&s), Decision::Wait(_)));
        s.busy = false;
        s.coldplug_done = false;
        assert!(matches!(p.decide(&s), Decision::Wait(_)));
    }

    #[test]
    fn repo_found_waits_for_usb_stick_still_settling() {
        // Regression for Alpine's missed apkovl on a slow second stick.
        let t0 = Instant::now();
        let p = WaitPolicy::default();
        let mut s = snap(t0);
        s.first_finding = Some(t0 + Duration::from_millis(100));
        s.storage_pending = true;
        assert!(matches!(p.decide(&s), Decision::Wait(_)));
        s.storage_pending = false;
        s.last_usb_event = Some(s.now - Duration::from_millis(200));
        assert!(matches!(p.decide(&s), Decision::Wait(_)));
        s.last_usb_event = Some(s.now - Duration::from_secs(2));
        assert_eq!(p.decide(&s), Decision::Done);
    }

    #[test]
    fn settling_wait_is_bounded_by_settle_limit() {
        let t0 = Instant::now();
        let p = WaitPolicy {
            settle_limit: Duration::from_secs(3),
            ..Default::default()
        };
        let mut s = snap(t0);
        s.storage_pending = true;
        s.first_finding = Some(t0);
        s.now = t0 + Duration::from_secs(3);
        assert_eq!(p.decide(&s), Decision::Done);
    }

    #[test]
    fn nothing_found_gives_up_after_idle_timeout_of_silence() {
        let t0 = Instant::now();
        let p = WaitPolicy::default();
        let mut s = snap(t0);
        assert!(matches!(p.decide(&s), Decision::Wait(_)));
        s.now = s.last_event + Duration::from_secs(5);
        assert_eq!(p.decide(&s), Decision::GiveUp);
    }

    #[test]
    fn network_boot_does_not_wait_for_media_that_is_not_there() {
        let t0 = Instant::now();
        let p = WaitPolicy {
            allow_not_found: true,
            ..Default::default()
        };
        assert_eq!(p.decide(&snap(t0)), Decision::GiveUp);
    }

    #[test]
    fn hard_limit_ends_a_hung_module_load() {
        let t0 = Instant::now();
        let p = WaitPolicy::default();
        let mut s = snap(t0);
        s.busy = true;
        s.now = t0 + Duration::from_secs(60);
        assert_eq!(p.decide(&s), Decision::GiveUp);
        s.first_finding = Some(t0);
        assert_eq!(p.decide(&s), Decision::Done);
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn apkovl_first_does_not_end_the_wait_while_storage_is_probed() {
        // Regression: an apkovl on a fast virtio disk ended discovery while
        // the CD with the boot repository was still behind IDE/AHCI.
        let t0 = Instant::now();
        let p = WaitPolicy::default();
        let mut s = snap(t0);
        s.first_finding = Some(t0 + Duration::from_millis(450));
        s.apkovl_found = true;
        s.storage_pending = true;
        assert_eq!(p.decide(&s), Decision::Wait(TICK));
        s.storage_pending = false;
        assert_eq!(p.decide(&s), Decision::Done);
    }

    #[test]
    fn pending_storage_wait_is_bounded_after_a_finding() {
        let t0 = Instant::now();
        let p = WaitPolicy::default();
        let mut s = snap(t0);
        s.first_finding = Some(t0);
        s.apkovl_found = true;
        s.storage_pending = true;
        s.now = t0 + secs(9);
        assert!(matches!(p.decide(&s), Decision::Wait(_)));
        s.now = t0 + secs(10);
        assert_eq!(p.decide(&s), Decision::Done);
    }

    #[test]
    fn network_boot_waits_for_storage_still_being_probed() {
        // Regression: with networking on, the wait ended right after
        // coldplug although a disk was still on its way.
        let t0 = Instant::now();
        let p = WaitPolicy {
            allow_not_found: true,
            ..Default::default()
        };
        let mut s = snap(t0);
        s.storage_pending = true;
        assert!(matches!(p.decide(&s), Decision::Wait(_)));
        s.storage_pending = false;
        assert_eq!(p.decide(&s), Decision::GiveUp);
    }

    #[test]
    fn nothing_found_pending_storage_counts_only_while_the_kernel_is_not_silent() {
        // Evidence that never clears (a CD drive whose sr module is not in
        // the image) must not stretch a failing boot to the hard limit.
        let t0 = Instant::now();
        let p = WaitPolicy::default();
        let mut s = snap(t0);
        s.storage_pending = true;
        s.now = s.last_event + secs(9);
        assert!(matches!(p.decide(&s), Decision::Wait(_)));
        s.now = s.last_event + secs(10);
        assert_eq!(p.decide(&s), Decision::GiveUp);
    }

    #[test]
    fn usbdelay_is_a_floor_after_a_repository_without_apkovl() {
        // Alpine's usbdelay= (nlplug-findfs -t): after a boot repository,
        // wait that long without uevents for the stick with the apkovl.
        let t0 = Instant::now();
        let p = WaitPolicy {
            usbdelay: Some(secs(8)),
            settle_limit: secs(8),
            ..Default::default()
        };
        let found = t0 + secs(1);
        let mut s = snap(t0);
        s.first_finding = Some(found);
        s.last_event = found;
        s.now = found + secs(3);
        assert!(
            matches!(p.decide(&s), Decision::Wait(_)),
            "nothing settling yet"
        );
        s.now = found + secs(8);
        assert_eq!(p.decide(&s), Decision::Done);
        // A uevent restarts the quiet period, as nlplug's poll timeout.
        s.last_event = found + secs(5);
        assert!(matches!(p.decide(&s), Decision::Wait(_)));
        s.now = found + secs(13);
        assert_eq!(p.decide(&s), Decision::Done);
    }

    #[test]
    fn usbdelay_floor_ends_when_the_apkovl_is_found() {
        let t0 = Instant::now();
        let p = WaitPolicy {
            usbdelay: Some(secs(8)),
            ..Default::default()
        };
        let mut s = snap(t0);
        s.first_finding = Some(t0 + secs(1));
        s.now = t0 + secs(4);
        s.last_event = t0 + secs(4);
        assert!(matches!(p.decide(&s), Decision::Wait(_)));
        s.apkovl_found = true;
        assert_eq!(p.decide(&s), Decision::Done);
        s.apkovl_found = false;
        s.wanted_found = true;
        assert_eq!(p.decide(&s), Decision::Done, "apkovl=DEV found: no floor");
    }

    #[test]
    fn without_usbdelay_a_quiet_repository_finding_stops_at_once() {
        let t0 = Instant::now();
        let mut s = snap(t0);
        s.first_finding = Some(t0 + Duration::from_millis(450));
        s.now = t0 + Duration::from_millis(500);
        assert_eq!(WaitPolicy::default().decide(&s), Decision::Done);
    }

    #[test]
    fn usbdelay_longer_than_the_hard_limit_is_still_honoured() {
        let t0 = Instant::now();
        let p = WaitPolicy {
            usbdelay: Some(secs(90)),
            ..Default::default()
        };
        let mut s = snap(t0);
        s.first_finding = Some(t0 + secs(1));
        s.last_event = t0 + secs(1);
        s.now = t0 + secs(61);
        assert!(matches!(p.decide(&s), Decision::Wait(_)));
        s.now = t0 + secs(91);
        assert_eq!(p.decide(&s), Decision::Done);
    }
}
