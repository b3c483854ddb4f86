//! The loader's queue: which request a worker takes next. Three tiers
//! (first, critical, the rest), each in arrival order; a hold that keeps a
//! burst from starting until it is all queued; and first-tier jobs that
//! run alone for a bounded time.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

/// How long loads of modules that settle slowly ([`Tier::First`]) keep
/// other loads from starting. Under TCG the xhci chain takes about 340 ms
/// (`README.md`, "The critical path first"), on hardware a few ms; a
/// controller whose reset hangs must not hold the rest of the boot's
/// modules longer than this.
pub(crate) const ALONE_MAX: Duration = Duration::from_millis(500);

/// The order a request is taken in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tier {
    /// Drivers of buses whose devices take long to appear
    /// ([`crate::slow_to_settle`]): taken first, and no other job starts
    /// while one runs (at most [`ALONE_MAX`]).
    First,
    /// On the way to boot media.
    Critical,
    Rest,
}

impl Tier {
    /// The tier of a request whose modules include one that settles
    /// slowly (SLOW) or one on the way to boot media (CRITICAL).
    pub(crate) fn of(slow: bool, critical: bool) -> Tier {
        if slow {
            Tier::First
        } else if critical {
            Tier::Critical
        } else {
            Tier::Rest
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Job {
    /// A modalias and the modules it matched when requested.
    Alias {
        alias: String,
        names: Vec<String>,
    },
    Name(String),
}

#[derive(Debug, Default)]
pub(crate) struct Queue {
    /// [`Tier::First`] requests, taken before all others.
    first: VecDeque<Job>,
    /// Requests on the way to boot media, taken before `rest`.
    critical: VecDeque<Job>,
    rest: VecDeque<Job>,
    /// Jobs in any tier, so a storm of identical uevents queues one job.
    queued: HashSet<Job>,
    /// [`Tier::First`] jobs running, and until when they run alone.
    first_running: usize,
    alone_until: Option<Instant>,
    /// Set by [`crate::Loader::hold`]: no job starts.
    held: bool,
}

impl Queue {
    pub(crate) fn is_empty(&self) -> bool {
        self.first.is_empty() && self.critical.is_empty() && self.rest.is_empty()
    }

    /// Whether a [`Tier::First`] job is queued or running.
    pub(crate) fn first_pending(&self) -> bool {
        !self.first.is_empty() || self.first_running > 0
    }

    pub(crate) fn set_held(&mut self, held: bool) {
        self.held = held;
    }

    /// Queues `job` unless it is queued already; returns whether it was.
    pub(crate) fn push(&mut self, job: Job, tier: Tier) -> bool {
        if !self.queued.insert(job.clone()) {
            return false;
        }
        match tier {
            Tier::First => self.first.push_back(job),
            Tier::Critical => self.critical.push_back(job),
            Tier::Rest => self.rest.push_back(job),
        }
        true
    }

    /// The next job at `now` and whether it is [`Tier::First`]: the
    /// oldest first one, else (unless first ones still run alone) the
    /// oldest critical one, else the oldest other. None while held.
    pub(crate) fn pop(&mut self, now: Instant) -> Option<(Job, bool)> {
        if self.held {
            return None;
        }
        if let Some(job) = self.first.pop_front() {
            self.queued.remove(&job);
            self.first_running += 1;
            self.alone_until.get_or_insert(now + ALONE_MAX);
            return Some((job, true));
        }
        if self.alone_until(now).is_some() {
            return None;
        }
        let job = self
            .critical
            .pop_front()
            .or_else(|| self.rest.pop_front())?;
        self.queued.remove(&job);
        Some((job, false))
    }

    /// Until when [`Tier::First`] jobs still keep others from starting,
    /// if they do at `now`.
    pub(crate) fn alone_until(&self, now: Instant) -> Option<Instant> {
        self.alone_until
            .filter(|until| self.first_running > 0 && now < *until)
    }

    /// A [`Tier::First`] job ended.
    pub(crate) fn first_done(&mut self) {
        self.first_running = self.first_running.saturating_sub(1);
        if self.first_running == 0 {
            self.alone_until = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str) -> Job {
        Job::Name(n.to_owned())
    }

    /// Requests on the way to boot media are taken before older others,
    /// each tier in its own order, and a request already queued is not
    /// queued twice.
    #[test]
    fn critical_requests_are_taken_before_older_others() {
        let now = Instant::now();
        let mut queue = Queue::default();
        assert!(queue.push(name("snd_hda_intel"), Tier::Rest));
        assert!(queue.push(name("e1000"), Tier::Rest));
        assert!(queue.push(name("virtio_blk"), Tier::Critical));
        assert!(queue.push(name("ext4"), Tier::Critical));
        assert!(!queue.push(name("virtio_blk"), Tier::Critical));
        assert!(!queue.push(name("e1000"), Tier::Rest));
        assert!(!queue.is_empty());
        let order: Vec<Job> = std::iter::from_fn(|| queue.pop(now).map(|(job, _)| job)).collect();
        assert_eq!(
            order,
            [
                name("virtio_blk"),
                name("ext4"),
                name("snd_hda_intel"),
                name("e1000")
            ]
        );
        assert!(queue.is_empty());
        // Taken jobs may be asked for again.
        assert!(queue.push(name("ext4"), Tier::Critical));
    }

    /// A USB host controller's driver is taken before older critical
    /// requests, and while it runs (at most `ALONE_MAX`) nothing else
    /// starts; several first ones may run together.
    #[test]
    fn slow_to_settle_requests_run_first_and_alone() {
        let now = Instant::now();
        let mut queue = Queue::default();
        queue.push(name("ata_piix"), Tier::Critical);
        queue.push(name("snd_hda_intel"), Tier::Rest);
        queue.push(name("xhci_pci"), Tier::First);
        queue.push(name("ehci_pci"), Tier::First);
        assert!(queue.first_pending());
        assert_eq!(queue.pop(now), Some((name("xhci_pci"), true)));
        assert_eq!(queue.pop(now), Some((name("ehci_pci"), true)));
        assert!(queue.first_pending(), "running");
        assert_eq!(queue.pop(now), None, "others wait while first ones run");
        assert_eq!(queue.alone_until(now), Some(now + ALONE_MAX));
        queue.first_done();
        assert_eq!(queue.pop(now), None, "one first job still runs");
        // A first job that hangs holds the others for ALONE_MAX at most.
        assert_eq!(queue.alone_until(now + ALONE_MAX), None);
        assert_eq!(queue.pop(now + ALONE_MAX), Some((name("ata_piix"), false)));
        queue.first_done();
        assert!(!queue.first_pending(), "only other tiers left");
        assert_eq!(queue.pop(now), Some((name("snd_hda_intel"), false)));
        // Once no first job runs, a new one starts a new window.
        queue.push(name("usb_storage"), Tier::First);
        queue.push(name("sd_mod"), Tier::Critical);
        let later = now + 2 * ALONE_MAX;
        assert_eq!(queue.pop(later), Some((name("usb_storage"), true)));
        assert_eq!(queue.pop(later), None);
        queue.first_done();
        assert_eq!(queue.pop(later), Some((name("sd_mod"), false)));
    }

    /// While held nothing is taken, first tier included; released, the
    /// burst is taken in tier order.
    #[test]
    fn a_held_burst_is_taken_in_tier_order() {
        let now = Instant::now();
        let mut queue = Queue::default();
        queue.set_held(true);
        queue.push(name("ata_piix"), Tier::Critical);
        assert_eq!(queue.pop(now), None);
        queue.push(name("xhci_pci"), Tier::First);
        assert_eq!(queue.pop(now), None);
        queue.set_held(false);
        assert_eq!(queue.pop(now), Some((name("xhci_pci"), true)));
    }
}
