//! QEMU's human monitor driven from the console log (hot-plug steps).

use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::{MonitorStep, Vm};

/// How often the log is read while a monitor step waits for its trigger:
/// a hot-unplug aimed at a short window must not lag by a whole poll.
pub(super) const MONITOR_POLL: Duration = Duration::from_millis(20);

/// Sends [`MonitorStep`]s to QEMU's human monitor as their triggers appear
/// on the console; what the monitor answers goes to `LOG.monitor`, each
/// command sent is noted there with its time.
pub(crate) struct Monitor {
    steps: Vec<MonitorStep>,
    socket: PathBuf,
    stream: Option<UnixStream>,
    transcript: Option<fs::File>,
    next: usize,
    from: usize,
    seen_at: Option<Instant>,
}

impl Monitor {
    pub(super) fn socket_path(log: &Path) -> PathBuf {
        log.with_extension("monitor.sock")
    }

    pub(crate) fn new(vm: &Vm, log: &Path) -> Result<Monitor> {
        let socket = Self::socket_path(log);
        let transcript = if vm.monitor.is_empty() {
            None
        } else {
            // A stale socket is harmless: QEMU replaces it when it binds
            // and connecting to it meanwhile is refused (retried).
            let path = log.with_extension("monitor");
            Some(fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?)
        };
        Ok(Monitor {
            steps: vm.monitor.clone(),
            socket,
            stream: None,
            transcript,
            next: 0,
            from: 0,
            seen_at: None,
        })
    }

    /// A step is still to be sent.
    pub(crate) fn waiting(&self) -> bool {
        self.next < self.steps.len()
    }

    /// Called with the console log so far, every poll of the runner.
    pub(crate) fn poll(&mut self, log: &str, started: Instant) -> Result<()> {
        if self.steps.is_empty() {
            return Ok(());
        }
        if self.stream.is_none() {
            // QEMU creates the socket a moment after it starts.
            if let Ok(stream) = UnixStream::connect(&self.socket) {
                stream
                    .set_nonblocking(true)
                    .context("making the monitor stream non-blocking")?;
                self.stream = Some(stream);
            }
        }
        self.drain();
        let Some(step) = self.steps.get(self.next) else {
            return Ok(());
        };
        match self.seen_at {
            None => {
                if let Some(end) = crate::console::find_after(log, self.from, &step.after) {
                    self.from = end;
                    self.seen_at = Some(Instant::now());
                }
            }
            Some(at) if at.elapsed() >= step.delay => {
                let Some(stream) = self.stream.as_mut() else {
                    return Ok(());
                };
                stream
                    .write_all(format!("{}\n", step.command).as_bytes())
                    .context("writing to the QEMU monitor")?;
                if let Some(t) = self.transcript.as_mut() {
                    let _ = writeln!(
                        t,
                        "\n[{:.2}s after start, {:.2}s after {:?}] sent: {}",
                        started.elapsed().as_secs_f64(),
                        at.elapsed().as_secs_f64(),
                        step.after,
                        step.command
                    );
                }
                self.next += 1;
                self.seen_at = None;
            }
            Some(_) => {}
        }
        Ok(())
    }

    /// Copies what the monitor printed into the transcript.
    fn drain(&mut self) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        let mut buf = [0u8; 4096];
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 {
                break;
            }
            if let Some(t) = self.transcript.as_mut() {
                let _ = t.write_all(&buf[..n]);
            }
        }
    }
}
