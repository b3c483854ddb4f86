//! When to stop looking for boot media: Alpine's wait rules (§2.9), made
//! event-driven. There is no fixed idle timeout on the happy path:
//!
//! * while coldplug is unfinished, a module is loading or a block device is
//!   being handled, we wait (bounded by `hard_limit`);
//! * once something was found and nothing is settling, we stop at once;
//! * "settling" means USB storage that may still produce a disk: a
//!   usb-storage/uas interface bound with no disk behind it yet, or USB
//!   activity on the usb bus within the last `usb_grace` (1 s: a hub that
//!   is still enumerating);
//!   while something was found we keep waiting for settling storage at most
//!   `settle_limit` after the first finding (`usbdelay=` sets it), so an
//!   apkovl on a slow second stick is not missed (Alpine bug: it waits only
//!   250 ms after a boot repository);
//! * when nothing was found, we give slow hardware Alpine's 5 s of silence
//!   after the last event before failing (or stop as soon as it is quiet
//!   when networking may still provide the overlay).

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct WaitPolicy {
    pub idle_timeout: Duration,
    pub usb_grace: Duration,
    pub settle_limit: Duration,
    pub hard_limit: Duration,
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
    pub usb_storage_without_disk: bool,
    /// First time anything (apkovl, repository, wanted device) was found.
    pub first_finding: Option<Instant>,
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
        if since_start >= self.hard_limit {
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
        let settling = s.usb_storage_without_disk || usb_recent == Some(true);
        if let Some(found) = s.first_finding {
            if !settling || s.now.saturating_duration_since(found) >= self.settle_limit {
                return Decision::Done;
            }
            return Decision::Wait(TICK);
        }
        if settling {
            return Decision::Wait(TICK);
        }
        if self.allow_not_found {
            return Decision::GiveUp;
        }
        let quiet_for = s.now.saturating_duration_since(s.last_event);
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
            usb_storage_without_disk: false,
            first_finding: None,
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
        s.usb_storage_without_disk = true;
        assert!(matches!(p.decide(&s), Decision::Wait(_)));
        s.usb_storage_without_disk = false;
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
        s.usb_storage_without_disk = true;
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
}
