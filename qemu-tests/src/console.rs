//! Typing on the serial console: scenarios that answer a password prompt or
//! leave the recovery shell. QEMU connects its serial port to a Unix socket
//! the harness listens on; a reader thread copies everything the guest
//! prints into the log file, and the main loop types each step's input once
//! its trigger text has appeared.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::{Child, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::qemu::{Outcome, Vm, QEMU};

/// Wait this long after a trigger before typing: the guest prints a prompt
/// a moment before it switches echo off and reads.
const SETTLE: Duration = Duration::from_millis(500);
const POLL: Duration = Duration::from_millis(100);

/// Once `after` has been printed (later than the previous step's trigger),
/// type `send`. An empty `send` only moves the search position on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub after: String,
    pub send: String,
}

impl Vm {
    /// Adds a console step; a VM with steps boots with an interactive serial.
    pub fn type_after(&mut self, after: &str, send: &str) -> &mut Vm {
        self.console.push(Step {
            after: after.to_string(),
            send: send.to_string(),
        });
        self
    }
}

/// Where in LOG, from byte FROM on, the trigger ends.
pub fn find_after(log: &str, from: usize, trigger: &str) -> Option<usize> {
    let rest = log.get(from..)?;
    rest.find(trigger).map(|i| from + i + trigger.len())
}

/// `qemu::run` for a VM with console steps: same outcome, same log file.
pub(crate) fn run(
    vm: &Vm,
    log: &Path,
    timeout: Duration,
    stop: Option<&dyn Fn(&str) -> bool>,
) -> Result<Outcome> {
    let dir = log.parent().context("the log has no directory")?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    fs::write(log, b"").with_context(|| format!("truncating {}", log.display()))?;
    let socket = log.with_extension("sock");
    let _ = fs::remove_file(&socket);
    let listener =
        UnixListener::bind(&socket).with_context(|| format!("binding {}", socket.display()))?;
    listener
        .set_nonblocking(true)
        .context("making the console socket non-blocking")?;
    let serial = format!("socket,id=console,path={}", socket.display());
    let stderr_path = log.with_extension("qemu-stderr");
    let stderr = fs::File::create(&stderr_path)
        .with_context(|| format!("creating {}", stderr_path.display()))?;
    fs::write(
        dir.join("qemu.cmdline"),
        format!(
            "{} -chardev {serial} -serial chardev:console\n",
            vm.shell_line()
        ),
    )
    .context("writing qemu.cmdline")?;
    let started = Instant::now();
    let mut child = vm
        .command_for(log)
        .args(["-chardev", &serial, "-serial", "chardev:console"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .with_context(|| format!("starting {QEMU}"))?;
    let result = drive(vm, &listener, &mut child, log, started, timeout, stop);
    // The child is our own QEMU; kill it by handle, then reap it.
    let _ = child.kill();
    let status = child.wait().ok();
    let _ = fs::remove_file(&socket);
    let (mut outcome, reader) = result?;
    if let Some(reader) = reader {
        let _ = reader.join();
    }
    if outcome.status.is_none() && !outcome.stopped && !outcome.timed_out {
        outcome.status = status;
    }
    outcome.elapsed = started.elapsed();
    outcome.log = crate::qemu::collect_log(log, &stderr_path);
    Ok(outcome)
}

type Driven = (Outcome, Option<JoinHandle<()>>);

fn drive(
    vm: &Vm,
    listener: &UnixListener,
    child: &mut Child,
    log: &Path,
    started: Instant,
    timeout: Duration,
    stop: Option<&dyn Fn(&str) -> bool>,
) -> Result<Driven> {
    let mut outcome = Outcome {
        log: String::new(),
        log_path: log.to_path_buf(),
        status: None,
        timed_out: false,
        stopped: false,
        elapsed: Duration::ZERO,
    };
    let stream = loop {
        match listener.accept() {
            Ok((stream, _)) => break stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e).context("accepting QEMU's console connection"),
        }
        if let Some(status) = child.try_wait().context("waiting for qemu")? {
            outcome.status = Some(status);
            return Ok((outcome, None));
        }
        if started.elapsed() >= timeout {
            bail!("QEMU did not connect its serial port within {timeout:?}");
        }
        std::thread::sleep(POLL);
    };
    stream
        .set_nonblocking(false)
        .context("making the console stream blocking")?;
    let mut input = stream.try_clone().context("cloning the console stream")?;
    let reader = spawn_reader(stream, log)?;
    let typed_log = log.with_extension("typed");
    let mut typed = fs::File::create(&typed_log)
        .with_context(|| format!("creating {}", typed_log.display()))?;
    let mut next = 0;
    let mut from = 0;
    let mut seen_at: Option<Instant> = None;
    let mut monitor = crate::qemu::Monitor::new(vm, log)?;
    loop {
        if let Some(status) = child.try_wait().context("waiting for qemu")? {
            outcome.status = Some(status);
            break;
        }
        let text = crate::qemu::read_log(log);
        monitor.poll(&text, started)?;
        if stop.is_some_and(|stop| stop(&text)) {
            outcome.stopped = true;
            break;
        }
        if started.elapsed() >= timeout {
            outcome.timed_out = true;
            break;
        }
        if let Some(step) = vm.console.get(next) {
            match seen_at {
                None => {
                    if let Some(end) = find_after(&text, from, &step.after) {
                        from = end;
                        seen_at = Some(Instant::now());
                    }
                }
                Some(at) if at.elapsed() >= SETTLE => {
                    input
                        .write_all(step.send.as_bytes())
                        .context("typing on the console")?;
                    let _ = writeln!(
                        typed,
                        "{:.1}s after {:?}: {:?}",
                        started.elapsed().as_secs_f64(),
                        step.after,
                        step.send
                    );
                    next += 1;
                    seen_at = None;
                }
                Some(_) => {}
            }
        }
        std::thread::sleep(POLL);
    }
    // No shutdown(): the socket is shared with the reader, which must
    // drain what QEMU wrote; it sees EOF once QEMU has exited or been killed.
    drop(input);
    Ok((outcome, Some(reader)))
}

fn spawn_reader(mut stream: UnixStream, log: &Path) -> Result<JoinHandle<()>> {
    let mut file = fs::OpenOptions::new()
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let handle = std::thread::Builder::new()
        .name("console-reader".into())
        .spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if file.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
        })
        .context("starting the console reader")?;
    Ok(handle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qemu::Accel;

    #[test]
    fn triggers_are_found_after_the_previous_one() {
        let log = "Enter password for x: \nWrong password, try again.\nEnter password for x: ";
        let first = find_after(log, 0, "Enter password for").expect("first");
        let second = find_after(log, first, "Enter password for").expect("second");
        assert!(second > first);
        assert_eq!(find_after(log, second, "Enter password for"), None);
        assert_eq!(find_after(log, log.len() + 5, "x"), None);
    }

    #[test]
    fn steps_are_kept_in_order() {
        let mut vm = Vm::new(Accel::Tcg);
        vm.type_after("a", "1\n").type_after("b", "");
        assert_eq!(
            vm.console,
            vec![
                Step {
                    after: "a".into(),
                    send: "1\n".into()
                },
                Step {
                    after: "b".into(),
                    send: String::new()
                }
            ]
        );
    }

    /// A stand-in for QEMU: connects to the socket like `-chardev socket`
    /// does, prints a prompt, echoes what it reads back, then exits.
    #[test]
    fn a_fake_guest_gets_its_input() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("serial.log");
        let socket = log.with_extension("sock");
        let listener = UnixListener::bind(&socket).expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let guest_socket = socket.clone();
        let guest = std::thread::spawn(move || {
            let mut s = UnixStream::connect(&guest_socket).expect("connect");
            s.write_all(b"boot\nPassword: ").expect("prompt");
            let mut line = Vec::new();
            let mut byte = [0u8; 1];
            while s.read(&mut byte).expect("read") == 1 && byte[0] != b'\n' {
                line.push(byte[0]);
            }
            s.write_all(format!("\ngot [{}]\n", String::from_utf8_lossy(&line)).as_bytes())
                .expect("reply");
        });
        let mut vm = Vm::new(Accel::Tcg);
        vm.type_after("Password: ", "s3cret\n");
        // A child process stands in for QEMU so that try_wait has something to watch.
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep");
        fs::write(&log, b"").expect("log");
        let stop = |log: &str| log.contains("got [");
        let result = drive(
            &vm,
            &listener,
            &mut child,
            &log,
            Instant::now(),
            Duration::from_secs(20),
            Some(&stop),
        );
        let _ = child.kill();
        let _ = child.wait();
        let (outcome, reader) = result.expect("drive");
        guest.join().expect("guest");
        if let Some(r) = reader {
            r.join().expect("reader");
        }
        assert!(outcome.stopped);
        let text = crate::qemu::read_log(&log);
        assert!(text.contains("got [s3cret]"), "{text:?}");
        let typed = fs::read_to_string(log.with_extension("typed")).expect("typed");
        assert!(typed.contains("s3cret"), "{typed}");
    }
}
