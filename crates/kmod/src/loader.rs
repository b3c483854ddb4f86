//! Loading modules on a small pool of worker threads, each module at most once.
//!
//! # A panic in a worker
//!
//! A bug in this crate must neither hang discovery (which waits for
//! [`Loader::busy`] to turn false) nor leave a module marked as loading
//! forever. So the insmod of each module runs under `catch_unwind`: a panic
//! there marks that module failed with a message naming it, like any other
//! load failure. A panic elsewhere in a job (index lookup, planning) is
//! caught around the whole job and logged under the job's name. Whatever
//! happens, the job's place in the busy count is given back by a drop guard
//! ([`Finish`]). This holds in builds that unwind (tests). The init's
//! release build aborts on panic instead: its panic hook runs on the
//! panicking thread and starts the recovery shell there, once, for the
//! first panicking thread only (see `crates/init/src/emergency.rs`).

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::time::Instant;

use nix::sys::eventfd::{EfdFlags, EventFd};

use crate::class::{Deferral, Kind};
use crate::config::ModprobeConfig;
use crate::image::{open_module, ModuleSource};
use crate::index::ModuleIndex;
use crate::insmod::Insmod;
use crate::name::normalize;
use crate::plan::{Plan, PlanError, Planned};
use crate::queue::{Job, Queue, Tier};

/// Worker threads. init_module sleeps in the kernel (probing, firmware, USB resets), so a few
/// threads overlap that waiting even on one CPU; more would only add memory.
const WORKERS: usize = 4;

const WORKER_STACK: usize = 256 << 10;

/// Why a module could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("module {module} failed: {message}")]
    Failed { module: String, message: String },
    #[error("module {module} not loaded: dependency {dependency} failed")]
    Dependency { module: String, dependency: String },
}

/// One finished load attempt, for the boot log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadEvent {
    /// Normalised module name (or the requested name when it did not resolve).
    pub name: String,
    /// `Ok` when inserted (or already present), else the reason.
    pub result: Result<(), String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ModState {
    Loading,
    Loaded,
    Failed(String),
}

/// What became of a request by modalias ([`Loader::request_alias`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requested {
    /// Queued; `critical` when on the way to boot media (loaded before
    /// the rest).
    Queued { critical: bool },
    /// Left for the new root: every module it matches is of a kind the
    /// loader's [`Deferral`] defers (`kind` is the first of them).
    Deferred { kind: Kind, modules: Vec<String> },
    /// No loadable module matches (built in, blacklisted, or not in the
    /// image): nothing to do.
    Nothing,
}

#[derive(Debug, Default)]
struct State {
    queue: Queue,
    running: usize,
    shutdown: bool,
    modules: HashMap<String, ModState>,
    log: Vec<LoadEvent>,
    missing: Vec<String>,
}

struct Shared {
    index: Arc<ModuleIndex>,
    config: Arc<ModprobeConfig>,
    insmod: Arc<dyn Insmod>,
    state: Mutex<State>,
    changed: Condvar,
    event: Option<EventFd>,
    /// Held shared by every insertion, exclusively by one that refuses the kernel's module
    /// requests ([`LoadStep::refuse_requests`](crate::LoadStep)), so that only its own
    /// requests are refused.
    inserting: RwLock<()>,
}

/// Loads modules on worker threads: each module at most once per Loader (concurrent requests
/// for the same module wait for the first), independent chains in parallel, a failing module
/// reported and not retried.
pub struct Loader {
    shared: Arc<Shared>,
    workers: usize,
    deferral: Deferral,
    named: bool,
}

impl Loader {
    pub fn new(
        index: Arc<ModuleIndex>,
        config: Arc<ModprobeConfig>,
        insmod: Arc<dyn Insmod>,
    ) -> Self {
        let event =
            EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK).ok();
        let shared = Arc::new(Shared {
            index,
            config,
            insmod,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            event,
            inserting: RwLock::new(()),
        });
        let mut workers = 0;
        for n in 0..WORKERS {
            let worker = Arc::clone(&shared);
            let spawned = std::thread::Builder::new()
                .name(format!("kmod-{n}"))
                .stack_size(WORKER_STACK)
                .spawn(move || worker.work());
            // Without threads requests run on the caller's thread instead (see `enqueue`).
            if spawned.is_ok() {
                workers += 1;
            }
        }
        Loader {
            shared,
            workers,
            deferral: Deferral::default(),
            named: false,
        }
    }

    /// The same loader, leaving requests by modalias whose modules are
    /// all of a kind `deferral` defers to the new root (see
    /// [`Loader::request_alias`]). Without it nothing is deferred.
    pub fn with_deferral(mut self, deferral: Deferral) -> Self {
        self.deferral = deferral;
        self
    }

    /// The same loader, noting whether the boot's configuration named
    /// modules to load (Alpine's `modules=` and `/etc/modules`): a root
    /// wait may then expect them to have brought the root ([`Loader::named`]).
    pub fn with_named(mut self, named: bool) -> Self {
        self.named = named;
        self
    }

    /// Whether the configuration named modules ([`Loader::with_named`]).
    pub fn named(&self) -> bool {
        self.named
    }

    /// The index requests are resolved against.
    pub fn index(&self) -> &ModuleIndex {
        &self.shared.index
    }

    /// Queue loading of every module matching `modalias` (non-blocking),
    /// ahead of other requests when one of them is on the way to boot
    /// media, or leave it to the new root when the loader's deferral
    /// covers all of them. A `cpu:` modalias is [`Kind::CpuFeature`]
    /// whatever its modules' paths say.
    pub fn request_alias(&self, modalias: &str) -> Requested {
        let index = &self.shared.index;
        let names = index.lookup(modalias, &self.shared.config);
        let kinds: Vec<Kind> = if modalias.starts_with("cpu:") {
            vec![Kind::CpuFeature]
        } else {
            // A name the index does not list (a modprobe.d alias of an
            // alias) is loaded as it always was.
            names
                .iter()
                .map(|n| index.kind(n).unwrap_or(Kind::Other))
                .collect()
        };
        if names.is_empty() {
            return Requested::Nothing;
        }
        if kinds.iter().all(|k| self.deferral.defers(*k)) {
            return Requested::Deferred {
                kind: kinds[0],
                modules: names,
            };
        }
        let tier = Tier::of(
            names.iter().any(|n| index.slow_to_settle(n)),
            kinds.iter().any(|k| self.deferral.critical(*k)),
        );
        self.enqueue(
            Job::Alias {
                alias: modalias.to_owned(),
                names,
            },
            tier,
        );
        Requested::Queued {
            critical: tier != Tier::Rest,
        }
    }

    /// Queue loading of a module by name or alias (non-blocking), ahead
    /// of other requests when it is on the way to boot media. Never
    /// deferred: a name is asked for explicitly.
    pub fn request(&self, name: &str) {
        let index = &self.shared.index;
        let ids = index.resolve(name, &self.shared.config).unwrap_or_default();
        let tier = Tier::of(
            ids.iter().any(|&id| index.slow_to_settle_id(id)),
            ids.iter()
                .any(|&id| self.deferral.critical(index.kind_of_id(id))),
        );
        self.enqueue(Job::Name(name.to_owned()), tier);
    }

    /// Load synchronously, return the outcome.
    pub fn load_now(&self, name: &str) -> Result<(), LoadError> {
        self.shared.lock().running += 1;
        let _done = Finish {
            shared: &self.shared,
            first: false,
        };
        self.shared.load_name(name)
    }

    /// Keeps queued requests from starting until the returned guard is
    /// dropped, so that a burst of requests (the coldplug sweep) is taken
    /// in tier order rather than in the order it arrived: a worker idle
    /// when the first request of the burst comes would start that one
    /// before a USB host controller's request later in the burst
    /// ([`crate::slow_to_settle`]).
    pub fn hold(&self) -> Hold<'_> {
        self.shared.lock().queue.set_held(true);
        Hold(&self.shared)
    }

    /// True while a request for a module that settles slowly (a USB host
    /// controller's driver, [`crate::slow_to_settle`]) is queued or
    /// running.
    pub fn settling_drivers_pending(&self) -> bool {
        self.shared.lock().queue.first_pending()
    }

    /// True while any request is queued or running.
    pub fn busy(&self) -> bool {
        self.shared.lock().is_busy()
    }

    /// Block until idle or the deadline passes; returns whether idle.
    pub fn wait_idle(&self, deadline: Instant) -> bool {
        let mut state = self.shared.lock();
        while state.is_busy() {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            state = match self.shared.changed.wait_timeout(state, deadline - now) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        true
    }

    /// A pollable fd (eventfd) that becomes readable whenever a request finishes; read it
    /// (or call [`Loader::reset_event`]) to reset.
    ///
    /// Should the eventfd not be creatable (fd exhaustion at boot), this is stdin, and
    /// callers must rely on [`Loader::wait_idle`] alone.
    pub fn event_fd(&self) -> BorrowedFd<'_> {
        match &self.shared.event {
            Some(event) => event.as_fd(),
            // SAFETY: fd 0 is never closed by this crate and BorrowedFd only requires a value
            // other than -1; poll(2) on it is harmless even if the caller closed it.
            None => unsafe { BorrowedFd::borrow_raw(libc::STDIN_FILENO) },
        }
    }

    /// Clears the readiness of [`Loader::event_fd`].
    pub fn reset_event(&self) {
        if let Some(event) = &self.shared.event {
            // EAGAIN just means nothing was pending.
            let _ = event.read();
        }
    }

    /// Load outcomes since the last call, in completion order.
    pub fn drain_log(&self) -> Vec<LoadEvent> {
        std::mem::take(&mut self.shared.lock().log)
    }

    /// Whether `name` (either spelling) has been inserted by this loader.
    pub fn loaded(&self, name: &str) -> bool {
        self.shared.lock().modules.get(&normalize(name)) == Some(&ModState::Loaded)
    }

    fn enqueue(&self, job: Job, tier: Tier) {
        if self.workers == 0 {
            self.shared.lock().running += 1;
            let _done = Finish {
                shared: &self.shared,
                first: false,
            };
            self.shared.run_guarded(job);
            return;
        }
        let mut state = self.shared.lock();
        if state.queue.push(job, tier) {
            self.shared.changed.notify_all();
        }
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        // Workers finish the module in hand and exit; nothing waits for them because an
        // init_module that never returns must not hang the caller too.
        self.shared.lock().shutdown = true;
        self.shared.changed.notify_all();
    }
}

impl State {
    fn is_busy(&self) -> bool {
        !self.queue.is_empty() || self.running > 0
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave State inconsistent in a way that
        // matters more than stopping module loading altogether would.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn wait<'a>(&self, guard: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.changed
            .wait(guard)
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn wait_until<'a>(
        &self,
        guard: MutexGuard<'a, State>,
        until: Instant,
    ) -> MutexGuard<'a, State> {
        let timeout = until.saturating_duration_since(Instant::now());
        match self.changed.wait_timeout(guard, timeout) {
            Ok((guard, _)) => guard,
            Err(poisoned) => poisoned.into_inner().0,
        }
    }

    fn work(&self) {
        loop {
            let (job, first) = {
                let mut state = self.lock();
                loop {
                    if state.shutdown {
                        return;
                    }
                    let now = Instant::now();
                    if let Some(taken) = state.queue.pop(now) {
                        state.running += 1;
                        break taken;
                    }
                    state = match state.queue.alone_until(now) {
                        // Jobs are queued behind first ones running alone:
                        // look again when their time is up.
                        Some(until) => self.wait_until(state, until),
                        None => self.wait(state),
                    };
                }
            };
            let _done = Finish {
                shared: self,
                first,
            };
            self.run_guarded(job);
        }
    }

    /// [`Shared::run`] with a panic turned into a logged failure of the job.
    fn run_guarded(&self, job: Job) {
        let name = match &job {
            Job::Alias { alias, .. } => alias.clone(),
            Job::Name(name) => name.clone(),
        };
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| self.run(job))) {
            let mut state = self.lock();
            state.log.push(LoadEvent {
                name: name.clone(),
                result: Err(format!(
                    "loading {name} panicked: {}",
                    panic_message(&*payload)
                )),
            });
            drop(state);
            self.changed.notify_all();
        }
    }

    fn finish(&self, first: bool) {
        let mut state = self.lock();
        state.running -= 1;
        if first {
            state.queue.first_done();
        }
        // Signalled under the lock: whoever sees the fd readable and then asks `busy()`, or
        // sees `busy()` false, observes both changes together.
        if let Some(event) = &self.event {
            // Only fails when the counter would overflow, i.e. it is readable anyway.
            let _ = event.write(1);
        }
        drop(state);
        self.changed.notify_all();
    }

    fn run(&self, job: Job) {
        match job {
            Job::Alias { names, .. } => {
                for name in names {
                    // Outcomes are logged per module inside; unresolvable alias targets are
                    // stale index entries, not worth a log line per uevent.
                    let _ = self.load_name(&name);
                }
            }
            Job::Name(name) => {
                let _ = self.load_name(&name);
            }
        }
    }

    fn load_name(&self, name: &str) -> Result<(), LoadError> {
        let targets = match self.index.resolve(name, &self.config) {
            Ok(targets) => targets,
            Err(e) => {
                let mut state = self.lock();
                if matches!(e, PlanError::Unknown { .. })
                    && !state.missing.iter().any(|m| m == name)
                {
                    state.missing.push(name.to_owned());
                    state.log.push(LoadEvent {
                        name: name.to_owned(),
                        result: Err(e.to_string()),
                    });
                }
                return Err(e.into());
            }
        };
        let mut outcome = Ok(());
        for id in targets {
            let mut plan = Plan::default();
            self.index.plan_target(id, name, &self.config, &mut plan);
            let target = &self.index.modules[id].name;
            if let Err(e) = self.run_plan(target, &plan.steps) {
                if outcome.is_ok() {
                    outcome = Err(e);
                }
            }
        }
        outcome
    }

    fn run_plan(&self, target: &str, steps: &[Planned]) -> Result<(), LoadError> {
        for planned in steps {
            let name = &planned.step.name;
            let Err(message) = self.ensure_loaded(planned) else {
                continue;
            };
            if planned.optional {
                continue;
            }
            if name == target {
                return Err(LoadError::Failed {
                    module: target.to_owned(),
                    message,
                });
            }
            let err = LoadError::Dependency {
                module: target.to_owned(),
                dependency: name.clone(),
            };
            let mut state = self.lock();
            if !state.modules.contains_key(target) {
                state
                    .modules
                    .insert(target.to_owned(), ModState::Failed(err.to_string()));
                state.log.push(LoadEvent {
                    name: target.to_owned(),
                    result: Err(err.to_string()),
                });
                self.changed.notify_all();
            }
            return Err(err);
        }
        Ok(())
    }

    /// Inserts one module unless this loader already did (or failed to); waits when another
    /// thread is inserting it right now.
    fn ensure_loaded(&self, planned: &Planned) -> Result<(), String> {
        let step = &planned.step;
        {
            let mut state = self.lock();
            loop {
                match state.modules.get(&step.name) {
                    Some(ModState::Loaded) => return Ok(()),
                    Some(ModState::Failed(message)) => return Err(message.clone()),
                    Some(ModState::Loading) => state = self.wait(state),
                    None => break,
                }
            }
            state.modules.insert(step.name.clone(), ModState::Loading);
        }
        // Under catch_unwind so a panic cannot leave the module `Loading`,
        // which would block every later request for it.
        let result = catch_unwind(AssertUnwindSafe(|| {
            let source = open_module(&step.path).map_err(|e| error_chain(&e))?;
            let mut insert = || match &source {
                ModuleSource::File(file) => self.insmod.insmod_file(&step.name, file, &step.params),
                ModuleSource::Image(image) => self.insmod.insmod(&step.name, image, &step.params),
            };
            let inserted = if step.refuse_requests {
                let _alone = self.inserting.write().unwrap_or_else(|p| p.into_inner());
                self.insmod.refusing_requests(&mut insert)
            } else {
                let _shared = self.inserting.read().unwrap_or_else(|p| p.into_inner());
                insert()
            };
            inserted.map_err(|e| format!("insmod {}: {e}", step.path.display()))
        }))
        .unwrap_or_else(|payload| {
            Err(format!(
                "loading {} panicked: {}",
                step.name,
                panic_message(&*payload)
            ))
        });
        let mut state = self.lock();
        let new_state = match &result {
            Ok(()) => ModState::Loaded,
            Err(message) => ModState::Failed(message.clone()),
        };
        state.modules.insert(step.name.clone(), new_state);
        state.log.push(LoadEvent {
            name: step.name.clone(),
            result: result.clone(),
        });
        self.changed.notify_all();
        result
    }
}

/// Gives a job's place in the busy count back when dropped (and a
/// [`Tier::First`] job's hold on the other workers), so neither an early
/// return nor a panic can leave [`Loader::busy`] true for good.
struct Finish<'a> {
    shared: &'a Shared,
    first: bool,
}

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        self.shared.finish(self.first);
    }
}

/// Returned by [`Loader::hold`]: lets the workers go when dropped.
pub struct Hold<'a>(&'a Shared);

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        self.0.lock().queue.set_held(false);
        self.0.changed.notify_all();
    }
}

/// The text of a panic payload (`panic!` with a literal or a format).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_owned()
    }
}

/// `error: cause: cause` in one line for the log.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}
