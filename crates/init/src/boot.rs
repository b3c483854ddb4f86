//! The diskless boot, phase by phase (Alpine §3.4 and §3.6). Each phase lives
//! in the module named after it and returns what the next one consumes; the
//! failure policy is [`Policy::handle`], and what happens after the recovery
//! shell is written next to each phase here.

use crate::failure::{End, Failure, Policy};
use crate::layout::Layout;
use crate::platform::Platform;
use crate::switch::hand_over;
use crate::{
    bootchart, consoles, discovery, early, install, keymap, modules, nbd, network, new_root,
    options, overlay, resume, root_mode, splash, wireguard,
};
use std::time::Duration;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// PID 1's boot: never returns.
pub fn run(p: &Platform<'_>, layout: &Layout, t_start: Duration) -> ! {
    match boot(p, layout, t_start) {
        End::GaveUp => std::process::exit(1),
        End::Halted | End::SwitchedRoot => crate::emergency::halt(),
    }
}

/// The whole boot, up to the hand-over (which only the fake platform
/// returns from) or to where the failure policy stopped it.
pub fn boot(p: &Platform<'_>, layout: &Layout, t_start: Duration) -> End {
    match phases(p, layout, t_start) {
        Ok(end) | Err(end) => end,
    }
}

fn phases(p: &Platform<'_>, layout: &Layout, t_start: Duration) -> Result<End, End> {
    let mut policy = Policy::new(layout);
    // Early mounts failed: after the shell, go on with what is there.
    let early = early::run(p, layout, t_start).or_else(|f| {
        policy
            .handle(p, &f.into())
            .map(|()| early::Early::default())
    })?;
    let cmdline = options::parse(layout);
    // Before the banner, as in Alpine: the banner goes to the new console.
    consoles::setconsole(p, layout, &cmdline);
    options::announce(&cmdline);
    // Before anything can prompt (the apkovl password, the recovery shell).
    keymap::load(p, layout);
    policy.panic = cmdline.panic_on_failure();
    crate::emergency::set_panic_on_failure(policy.panic);
    let chart = bootchart::start(p, layout, &cmdline);
    let loader = modules::start(p, layout, &cmdline);
    // Before the root or the media are looked for: they may be on it.
    let nbd_net = nbd::setup(p, layout, &cmdline, &loader);

    if let Some(root) = cmdline.root() {
        root_mode::mount(p, layout, &cmdline, &loader, root, &early, &policy)?;
        // Alpine makes the tunnel before the root wait; nothing here needs
        // it before the root is mounted, and its NIC is there only now.
        if let Some(wg) = cmdline.wireguard() {
            if nbd_net.is_none() {
                network::configure(p, layout, &cmdline);
            }
            wireguard::setup(p, layout, &loader, &wg);
        }
        return hand_over(p, layout, &cmdline, &loader, &policy, &[]);
    }

    // As Alpine: before the boot media are looked for (and mounted).
    resume::from_disk(p, layout, &cmdline, &loader, &early);
    // cryptroot=: the media scan then looks inside the mapping.
    crate::crypt::diskless(p, layout, &cmdline, &loader, &early, &policy)?;
    // No boot media: after the shell, boot without an overlay.
    let mut media = policy.recover(
        p,
        discovery::find_media(p, layout, &cmdline, &loader, &early),
    )?;
    modules::request_after_discovery(&loader);
    let net = nbd_net.unwrap_or_else(|| network::start(p, layout, &cmdline));
    if let Some(wg) = cmdline.wireguard() {
        wireguard::setup(p, layout, &loader, &wg);
    }
    single(p, &policy, cmdline.single())?;
    // No tmpfs root: after the shell, go on (the user may have mounted one).
    new_root::prepare(p, layout, &cmdline).or_else(|f| policy.handle(p, &f))?;
    // Overlay rejected: after the shell, boot without it.
    let applied = policy.recover(
        p,
        overlay::apply(p, layout, &cmdline, &media, &net, &loader),
    )?;
    let packages = install::packages(layout, &cmdline, &applied, chart.running());
    let splash = splash::start(p, layout, &cmdline);
    new_root::apply_fstab(p, layout, &mut media.media);
    let repos = install::run(p, layout, &cmdline, &packages, &net, &applied);
    overlay::release(p, &applied);
    new_root::finish(layout, &repos);
    // Alpine's `[ -f "$ovl" ]`: a found apkovl turns serial detection off.
    consoles::setup_inittab(p, layout, &cmdline, applied.found());
    let wrapper = bootchart::stop(p, layout, &chart);
    splash::before_hand_over(layout, &cmdline, &splash);
    hand_over(p, layout, &cmdline, &loader, &policy, &wrapper)
}

/// `single` (diskless mode): a shell between discovery and the new root;
/// root mode opens it after the root device wait (`root_mode::mount`).
fn single(p: &Platform<'_>, policy: &Policy, single: bool) -> Result<(), End> {
    if single {
        policy.handle(p, &Failure::Single)?;
    }
    Ok(())
}
