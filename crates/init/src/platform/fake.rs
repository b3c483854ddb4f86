//! A recording fake of every [`super::Platform`] trait, for whole boots in
//! tests. Each call is appended to one ordered [`Ev`] log; failures are
//! injected by call kind (see the `fail_*` and `set_*` methods).

use super::{
    Clock, Console, DeviceMapper, Exec, Net, Platform, Spawn, Stdin, Sysfs, UeventStream, Uevents,
};
use crate::handover::HandoverError;
use crate::layout::Layout;
use alpinit_kmod::{Insmod, Loader};
use alpinit_net::{FetchError, FetchOptions, Lease, Links, NetError};
use alpinit_sys::{Call, MountFlags, NodeKind, Recorder, Sys};
use alpinit_uevent::{RecvError, SocketError, Uevent};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::Ipv4Addr;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// One recorded platform call, in the order the boot made them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ev {
    Sys(Call),
    Insmod(String),
    /// Parameters of the module just inserted (only when it had some).
    ModuleParams(String, String),
    Dhcp(String),
    Apply(String),
    LinkUp(String, bool),
    /// A link's MTU set.
    Mtu(String, u32),
    /// A virtual link created (name, kind).
    LinkAdd(String, String),
    /// An address added (interface, `address/prefix`).
    Address(String, String),
    Rename(String, String),
    Fetch(String),
    Spawn(Vec<String>),
    /// A program started without waiting for it.
    Started(Vec<String>),
    /// The extra environment of the spawn just before, when it had one.
    SpawnEnv(Vec<(String, String)>),
    SwitchRoot {
        init: String,
        args: Vec<String>,
    },
    /// A password prompt on the console.
    Prompt(String),
    /// `setconsole` on this device.
    SetConsole(PathBuf),
    /// Keymap entries loaded on the console.
    Keymap(Vec<crate::keymap::KbEntry>),
    /// A kernel attribute written (path, value).
    SysfsWrite(PathBuf, String),
    /// A dm-crypt mapping created (name, table parameters).
    DmCreate(String, String),
    /// The insertion of a held module ([`Fake::hold_insmod`]) returned.
    InsmodReturned(String),
    /// A host name looked up.
    Resolve(String),
    /// An NBD server attached (or tried) as `/dev/nbd{index}`.
    NbdAttach(std::net::SocketAddr, u32),
}

/// One step of the scripted uevent socket.
pub enum Step {
    Event(Uevent),
    /// The kernel dropped events: `recv` reports ENOBUFS.
    Overflow,
    /// Nothing more queued until the boot waits once.
    Pause,
    /// Changes the fake machine at this point (a device appears in sysfs).
    Run(Box<dyn FnOnce() + Send>),
}

type SpawnHook = Box<dyn Fn(&[String], Option<&[u8]>) -> io::Result<i32> + Send + Sync>;
type FetchHook = Box<dyn Fn(&str) -> Result<Vec<u8>, FetchError> + Send + Sync>;
type DmHook = Box<dyn Fn(&str) -> io::Result<(u32, u32)> + Send + Sync>;
type NbdHook =
    Box<dyn Fn(std::net::SocketAddr, u32) -> Result<u64, alpinit_nbd::NbdError> + Send + Sync>;

#[derive(Default)]
pub struct Output {
    pub console: Mutex<String>,
    pub kmsg: Mutex<Vec<String>>,
}

impl crate::log::Sink for Output {
    fn console(&self, text: &str) {
        lock(&self.console).push_str(text);
    }
    fn kmsg(&self, record: &str) {
        lock(&self.kmsg).push(record.to_owned());
    }
}

pub struct Fake {
    pub recorder: Recorder,
    pub out: Arc<Output>,
    events: Arc<Mutex<Vec<Ev>>>,
    insmod: Arc<dyn Insmod>,
    /// The same insertion, for holding modules ([`Fake::hold_insmod`]).
    insmod_holds: Arc<FakeInsmod>,
    /// Mounting this source copies this directory onto the target.
    contents: Mutex<HashMap<String, PathBuf>>,
    script: Arc<Mutex<VecDeque<Step>>>,
    socket_error: Mutex<Option<i32>>,
    base: Instant,
    offset: Mutex<Duration>,
    lease: Mutex<Option<Result<Lease, i32>>>,
    fetch: Mutex<Option<FetchHook>>,
    spawn: Mutex<Option<SpawnHook>>,
    /// Device-mapper; without it, the machine has none (no control node).
    dm: Mutex<Option<DmHook>>,
    /// NBD servers; without it, every connection is refused.
    nbd: Mutex<Option<NbdHook>>,
    /// Host names the fake DNS knows.
    names: Mutex<HashMap<String, Ipv4Addr>>,
    /// What a bounded helper prints, by its arguments joined with spaces.
    outputs: Mutex<HashMap<String, Vec<u8>>>,
    passwords: Mutex<VecDeque<String>>,
    switch_errors: Mutex<usize>,
    sys: Mutex<Option<PathBuf>>,
    /// mknod of this path writes this device's data (the tree has no real nodes).
    nodes: Mutex<HashMap<PathBuf, PathBuf>>,
    /// Terminals whose `stty -g` fails (all others answer, as upstream's fake stty).
    dead_ttys: Mutex<Vec<String>>,
}

struct FakeInsmod {
    events: Arc<Mutex<Vec<Ev>>>,
    /// Modules whose insertion does not return until another module was
    /// inserted (a slow driver probing while the boot goes on), with the
    /// releasing module's name.
    holds: Mutex<Vec<(String, String)>>,
    inserted: Condvar,
}

/// How long a held insertion waits for its release at most: a boot that
/// never loads the releasing module still ends, with the order recorded.
const HOLD_LIMIT: Duration = Duration::from_secs(5);

impl Insmod for FakeInsmod {
    fn insmod(&self, name: &str, _image: &[u8], params: &str) -> io::Result<()> {
        let mut events = lock(&self.events);
        events.push(Ev::Insmod(name.to_owned()));
        if !params.is_empty() {
            events.push(Ev::ModuleParams(name.to_owned(), params.to_owned()));
        }
        self.inserted.notify_all();
        let until = lock(&self.holds)
            .iter()
            .find(|(held, _)| held == name)
            .map(|(_, until)| until.clone());
        if let Some(until) = until {
            let released = |evs: &Vec<Ev>| evs.iter().any(|e| *e == Ev::Insmod(until.clone()));
            let (mut events, _) = self
                .inserted
                .wait_timeout_while(events, HOLD_LIMIT, |evs| !released(evs))
                .unwrap_or_else(|p| p.into_inner());
            events.push(Ev::InsmodReturned(name.to_owned()));
        }
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Default for Fake {
    fn default() -> Self {
        let events = Arc::new(Mutex::new(Vec::new()));
        let insmod = Arc::new(FakeInsmod {
            events: Arc::clone(&events),
            holds: Mutex::default(),
            inserted: Condvar::new(),
        });
        Self {
            recorder: Recorder::new(),
            out: Arc::default(),
            insmod: Arc::clone(&insmod) as Arc<dyn Insmod>,
            insmod_holds: insmod,
            events,
            contents: Mutex::default(),
            script: Arc::default(),
            socket_error: Mutex::default(),
            base: Instant::now(),
            offset: Mutex::default(),
            lease: Mutex::default(),
            fetch: Mutex::default(),
            spawn: Mutex::default(),
            dm: Mutex::default(),
            nbd: Mutex::default(),
            names: Mutex::default(),
            outputs: Mutex::default(),
            passwords: Mutex::default(),
            switch_errors: Mutex::default(),
            sys: Mutex::default(),
            nodes: Mutex::default(),
            dead_ttys: Mutex::default(),
        }
    }
}

impl Fake {
    /// The insertion of `module` returns only once `until` was inserted
    /// (at most [`HOLD_LIMIT`]), then records [`Ev::InsmodReturned`]: a
    /// driver still probing while the boot should go on without it.
    pub fn hold_insmod(&self, module: &str, until: &str) {
        lock(&self.insmod_holds.holds).push((module.to_owned(), until.to_owned()));
    }

    pub fn platform(&self) -> Platform<'_> {
        Platform {
            fs: self,
            insmod: &self.insmod,
            uevents: self,
            net: self,
            spawn: self,
            console: self,
            exec: self,
            clock: self,
            sysfs: self,
            dm: self,
        }
    }

    pub fn events(&self) -> Vec<Ev> {
        lock(&self.events).clone()
    }
    fn push(&self, ev: Ev) {
        lock(&self.events).push(ev);
    }

    /// Mounting `source` shows the files of `dir` at the mount point.
    pub fn set_contents(&self, source: &str, dir: &Path) {
        lock(&self.contents).insert(source.to_owned(), dir.to_owned());
    }
    pub fn script(&self, steps: impl IntoIterator<Item = Step>) {
        lock(&self.script).extend(steps);
    }
    /// Appends to the script from elsewhere (a spawn hook: the device a
    /// helper made announces itself only once the helper ran).
    pub fn script_sender(&self) -> impl Fn(Step) + Send + Sync + 'static {
        let script = Arc::clone(&self.script);
        move |step| lock(&script).push_back(step)
    }
    /// Binding the uevent socket fails with `errno`.
    pub fn fail_socket(&self, errno: i32) {
        *lock(&self.socket_error) = Some(errno);
    }
    pub fn set_lease(&self, lease: Result<Lease, i32>) {
        *lock(&self.lease) = Some(lease);
    }
    pub fn on_fetch(
        &self,
        f: impl Fn(&str) -> Result<Vec<u8>, FetchError> + Send + Sync + 'static,
    ) {
        *lock(&self.fetch) = Some(Box::new(f));
    }
    /// `f(argv, stdin)` runs instead of each spawned program and returns its exit code.
    pub fn on_spawn(
        &self,
        f: impl Fn(&[String], Option<&[u8]>) -> io::Result<i32> + Send + Sync + 'static,
    ) {
        *lock(&self.spawn) = Some(Box::new(f));
    }
    /// NBD attaches: `f` gets the server and the device index and returns
    /// the export's size (and may make the device appear).
    pub fn on_nbd_attach(
        &self,
        f: impl Fn(std::net::SocketAddr, u32) -> Result<u64, alpinit_nbd::NbdError>
            + Send
            + Sync
            + 'static,
    ) {
        *lock(&self.nbd) = Some(Box::new(f));
    }
    /// The fake DNS answers `host` with `ip`.
    pub fn name(&self, host: &str, ip: Ipv4Addr) {
        lock(&self.names).insert(host.to_owned(), ip);
    }
    /// Device-mapper creates mappings: `f` gets the name and returns the
    /// device number (and may make the device appear).
    pub fn on_dm_create(&self, f: impl Fn(&str) -> io::Result<(u32, u32)> + Send + Sync + 'static) {
        *lock(&self.dm) = Some(Box::new(f));
    }
    /// A bounded helper run with `args` (joined with spaces) prints `out`.
    pub fn set_spawn_output(&self, args: &str, out: &str) {
        lock(&self.outputs).insert(args.to_owned(), out.as_bytes().to_vec());
    }
    pub fn type_passwords(&self, pw: &[&str]) {
        lock(&self.passwords).extend(pw.iter().map(|p| (*p).to_owned()));
    }
    /// The first `n` switch_root attempts fail with EINVAL.
    pub fn fail_switch_root(&self, n: usize) {
        *lock(&self.switch_errors) = n;
    }
    /// A mknod of `node` copies `data` there (a block device's contents).
    pub fn set_node_data(&self, node: &Path, data: &Path) {
        lock(&self.nodes).insert(node.to_owned(), data.to_owned());
    }
    /// The sysfs tree in which interface renames take effect.
    pub fn set_sys(&self, sys: &Path) {
        *lock(&self.sys) = Some(sys.to_owned());
    }
    /// `stty -g` fails on `/dev/NAME` (an I/O error on the line).
    pub fn dead_tty(&self, name: &str) {
        lock(&self.dead_ttys).push(name.to_owned());
    }
    /// Virtual time elapsed since the boot began.
    pub fn elapsed(&self) -> Duration {
        *lock(&self.offset)
    }
}

fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let ft = e.file_type()?;
        if ft.is_dir() {
            copy_tree(&src, &dst)?;
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dst)?;
        } else {
            std::fs::copy(&src, &dst)?;
        }
    }
    Ok(())
}

impl Sys for Fake {
    fn mount(
        &self,
        source: &str,
        target: &Path,
        fstype: Option<&str>,
        flags: MountFlags,
        data: Option<&str>,
    ) -> io::Result<()> {
        let call = Call::Mount {
            source: source.to_owned(),
            target: target.to_owned(),
            fstype: fstype.map(str::to_owned),
            flags,
            data: data.map(str::to_owned),
        };
        self.push(Ev::Sys(call.clone()));
        self.recorder.record(call)?;
        let shown = lock(&self.contents).get(source).cloned();
        if let Some(dir) = shown {
            copy_tree(&dir, target)?;
        }
        Ok(())
    }
    fn umount(&self, target: &Path, lazy: bool) -> io::Result<()> {
        let call = Call::Umount {
            target: target.to_owned(),
            lazy,
        };
        self.push(Ev::Sys(call.clone()));
        self.recorder.record(call)
    }
    fn mknod(
        &self,
        path: &Path,
        kind: NodeKind,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> io::Result<()> {
        let call = Call::Mknod {
            path: path.to_owned(),
            kind,
            mode,
            major,
            minor,
        };
        self.push(Ev::Sys(call.clone()));
        self.recorder.record(call)?;
        let data = lock(&self.nodes).get(path).cloned();
        if let Some(data) = data {
            std::fs::copy(data, path)?;
        }
        Ok(())
    }
    fn chroot_here(&self) -> io::Result<()> {
        self.push(Ev::Sys(Call::ChrootHere));
        self.recorder.record(Call::ChrootHere)
    }
    fn btrfs_scan_dev(&self, _control: &Path, device: &Path) -> io::Result<()> {
        let call = Call::BtrfsScan {
            device: device.to_owned(),
        };
        self.push(Ev::Sys(call.clone()));
        self.recorder.record(call)
    }
}

struct Scripted<'a>(&'a Fake);

impl UeventStream for Scripted<'_> {
    fn recv(&self) -> Result<Option<Uevent>, RecvError> {
        loop {
            let step = lock(&self.0.script).pop_front();
            match step {
                None | Some(Step::Pause) => return Ok(None),
                Some(Step::Event(ev)) => return Ok(Some(ev)),
                Some(Step::Overflow) => return Err(RecvError::Overflow),
                Some(Step::Run(f)) => f(),
            }
        }
    }
    fn fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        None
    }
}

impl Uevents for Fake {
    fn open(&self, _buf: usize) -> Result<Box<dyn UeventStream + '_>, SocketError> {
        if let Some(errno) = *lock(&self.socket_error) {
            return Err(SocketError::Create(io::Error::from_raw_os_error(errno)));
        }
        Ok(Box::new(Scripted(self)))
    }
    fn wait(&self, stream: Option<&dyn UeventStream>, loader: &Loader, dur: Duration) {
        if stream.is_none() {
            // No socket: the script still changes the machine as time
            // passes, but its events are never delivered.
            let step = lock(&self.script).pop_front();
            if let Some(Step::Run(f)) = step {
                f();
            }
        }
        // Module loads are real threads over the fake insmod: let them
        // finish (in real time, briefly) so a decision never races them.
        loader.wait_idle(Instant::now() + Duration::from_secs(5));
        *lock(&self.offset) += dur.max(Duration::from_millis(1));
    }
}

impl Links for Fake {
    fn set_up(&self, ifname: &str, up: bool) -> io::Result<()> {
        self.push(Ev::LinkUp(ifname.to_owned(), up));
        Ok(())
    }
    fn ifindex(&self, ifname: &str) -> io::Result<u32> {
        let sys = lock(&self.sys).clone();
        let text = sys
            .map(|s| s.join("class/net").join(ifname).join("ifindex"))
            .and_then(|p| std::fs::read_to_string(p).ok());
        Ok(text.and_then(|t| t.trim().parse().ok()).unwrap_or(2))
    }
    fn set_mtu(&self, ifname: &str, mtu: u32) -> io::Result<()> {
        self.push(Ev::Mtu(ifname.to_owned(), mtu));
        Ok(())
    }
    fn add_link(&self, name: &str, kind: &str) -> io::Result<()> {
        self.push(Ev::LinkAdd(name.to_owned(), kind.to_owned()));
        Ok(())
    }
    fn add_address(&self, ifname: &str, address: std::net::IpAddr, prefix: u8) -> io::Result<()> {
        self.push(Ev::Address(
            ifname.to_owned(),
            format!("{address}/{prefix}"),
        ));
        Ok(())
    }
    fn rename(&self, ifname: &str, new_name: &str) -> io::Result<()> {
        self.push(Ev::Rename(ifname.to_owned(), new_name.to_owned()));
        if let Some(sys) = lock(&self.sys).clone() {
            let net = sys.join("class/net");
            std::fs::rename(net.join(ifname), net.join(new_name))?;
        }
        Ok(())
    }
}

impl Net for Fake {
    fn links(&self) -> &dyn Links {
        self
    }
    fn dhcp(&self, iface: &str, _mac: [u8; 6], _deadline: Instant) -> Result<Lease, NetError> {
        self.push(Ev::Dhcp(iface.to_owned()));
        match lock(&self.lease).clone() {
            Some(Ok(l)) => Ok(l),
            Some(Err(errno)) => Err(NetError::DhcpIo {
                iface: iface.to_owned(),
                source: io::Error::from_raw_os_error(errno),
            }),
            None => Err(NetError::DhcpTimeout {
                iface: iface.to_owned(),
                attempts: 4,
            }),
        }
    }
    fn apply(&self, lease: &Lease) -> Result<(), NetError> {
        self.push(Ev::Apply(format!(
            "{} {}/{}",
            lease.iface, lease.address, lease.prefix_len
        )));
        Ok(())
    }
    fn fetch(
        &self,
        url: &str,
        _resolvers: &[Ipv4Addr],
        _opts: &FetchOptions,
        sink: &mut dyn io::Write,
    ) -> Result<u64, FetchError> {
        self.push(Ev::Fetch(url.to_owned()));
        let body = match lock(&self.fetch).as_ref() {
            Some(f) => f(url)?,
            None => {
                return Err(FetchError::Status {
                    url: url.to_owned(),
                    status: 404,
                    reason: "Not Found".into(),
                })
            }
        };
        sink.write_all(&body).map_err(|source| FetchError::Io {
            url: url.to_owned(),
            phase: "writing",
            source,
        })?;
        Ok(body.len() as u64)
    }
    fn resolve(
        &self,
        host: &str,
        _resolvers: &[Ipv4Addr],
        _deadline: Instant,
    ) -> Result<Ipv4Addr, alpinit_net::DnsError> {
        self.push(Ev::Resolve(host.to_owned()));
        lock(&self.names)
            .get(host)
            .copied()
            .ok_or_else(|| alpinit_net::DnsError::NotFound {
                host: host.to_owned(),
            })
    }
    fn nbd_attach(
        &self,
        server: std::net::SocketAddr,
        index: u32,
        _timeout: Duration,
    ) -> Result<u64, alpinit_nbd::NbdError> {
        self.push(Ev::NbdAttach(server, index));
        match lock(&self.nbd).as_ref() {
            Some(f) => f(server, index),
            None => Err(alpinit_nbd::NbdError::Connect {
                addr: server,
                source: io::Error::from(io::ErrorKind::ConnectionRefused),
            }),
        }
    }
}

impl Spawn for Fake {
    fn run(
        &self,
        prog: &Path,
        args: &[String],
        env: &[(&str, &str)],
        stdin: Stdin<'_>,
    ) -> io::Result<ExitStatus> {
        let argv: Vec<String> = std::iter::once(prog.display().to_string())
            .chain(args.iter().cloned())
            .collect();
        self.push(Ev::Spawn(argv.clone()));
        if !env.is_empty() {
            let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
            self.push(Ev::SpawnEnv(env.collect()));
        }
        let input = match stdin {
            Stdin::Bytes(b) => Some(b),
            _ => None,
        };
        let code = match lock(&self.spawn).as_ref() {
            Some(f) => f(&argv, input)?,
            None => 0,
        };
        Ok(ExitStatus::from_raw(code << 8))
    }
    fn start(&self, prog: &Path, args: &[String]) -> io::Result<()> {
        let argv = std::iter::once(prog.display().to_string())
            .chain(args.iter().cloned())
            .collect();
        self.push(Ev::Started(argv));
        Ok(())
    }
    fn reap(&self) {}
    fn run_bounded(
        &self,
        prog: &Path,
        args: &[String],
        _limit: Duration,
    ) -> io::Result<super::Bounded> {
        let status = self.run(prog, args, &[], Stdin::Null)?;
        let key = args.join(" ");
        let stdout = lock(&self.outputs).get(&key).cloned().unwrap_or_default();
        // Exit code 137 from the hook stands for a helper killed at its limit.
        let killed = status.code() == Some(137);
        Ok(super::Bounded {
            status: (!killed).then_some(status),
            stdout,
        })
    }
}

impl Console for Fake {
    fn read_secret(&self, prompt: &str) -> Option<Vec<u8>> {
        self.push(Ev::Prompt(prompt.to_owned()));
        crate::log::console(prompt);
        crate::log::console("\n");
        lock(&self.passwords).pop_front().map(String::into_bytes)
    }
    fn probe_tty(&self, dev: &Path) -> io::Result<()> {
        let name = dev.file_name().unwrap_or_default().to_string_lossy();
        if lock(&self.dead_ttys).iter().any(|d| *d == name) {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        Ok(())
    }
    fn set_console(&self, dev: &Path) -> io::Result<()> {
        self.push(Ev::SetConsole(dev.to_owned()));
        Ok(())
    }
    fn load_keymap(&self, entries: &[crate::keymap::KbEntry]) -> io::Result<usize> {
        self.push(Ev::Keymap(entries.to_vec()));
        Ok(0)
    }
}

impl Exec for Fake {
    fn switch_root(
        &self,
        _sys: &dyn Sys,
        _layout: &Layout,
        init: &str,
        args: &[String],
        _console: Option<&str>,
    ) -> Result<(), HandoverError> {
        self.push(Ev::SwitchRoot {
            init: init.to_owned(),
            args: args.to_vec(),
        });
        let mut left = lock(&self.switch_errors);
        if *left > 0 {
            *left -= 1;
            return Err(HandoverError::Switch {
                step: "exec",
                source: io::Error::from_raw_os_error(libc::EINVAL),
            });
        }
        Ok(())
    }
    fn sync(&self) {}
}

impl Clock for Fake {
    fn now(&self) -> Instant {
        self.base + *lock(&self.offset)
    }
}

impl Sysfs for Fake {
    /// Recorded, then written to the tree's file when it exists (as the
    /// kernel's attribute would be), so tests can read it back.
    fn write_attr(&self, path: &Path, value: &str) -> io::Result<()> {
        self.push(Ev::SysfsWrite(path.to_owned(), value.to_owned()));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(path)?;
        io::Write::write_all(&mut f, value.as_bytes())
    }
}

impl DeviceMapper for Fake {
    fn create_crypt(
        &self,
        control: &Path,
        name: &str,
        _uuid: &str,
        table: &alpinit_luks::dm::CryptTable,
    ) -> Result<(u32, u32), alpinit_luks::dm::DmError> {
        self.push(Ev::DmCreate(name.to_owned(), table.params.to_string()));
        let result = match lock(&self.dm).as_ref() {
            Some(hook) => hook(name),
            None => Err(io::Error::from_raw_os_error(libc::ENOENT)),
        };
        result.map_err(|source| alpinit_luks::dm::DmError::Open {
            path: control.to_owned(),
            source,
        })
    }
}
