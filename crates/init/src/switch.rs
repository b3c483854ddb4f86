//! The hand-over phase: check `init=`, let module loads finish, move the
//! mounts into the new root and switch_root.

use crate::failure::{End, Failure, Policy};
use crate::handover;
use crate::layout::Layout;
use crate::log;
use crate::platform::Platform;
use alpinit_cmdline::Cmdline;
use alpinit_kmod::Loader;

/// Returns only when the boot ended: `SwitchedRoot` with the fake platform,
/// or where the failure policy stopped. `wrapper` (bootchartd
/// `start-rootfs`) is exec'd instead of `init=`, with it as arguments.
pub fn hand_over(
    p: &Platform<'_>,
    layout: &Layout,
    cmdline: &Cmdline,
    loader: &Loader,
    policy: &Policy,
    wrapper: &[String],
) -> Result<End, End> {
    let init = cmdline.init().to_owned();
    let (exec, args) = match wrapper.split_first() {
        Some((prog, rest)) => {
            let mut args = rest.to_vec();
            args.push(init.clone());
            args.extend(cmdline.init_args());
            (prog.clone(), args)
        }
        None => (init.clone(), cmdline.init_args()),
    };
    // init= missing: after the shell, try the hand-over anyway.
    if let Err(source) = handover::check_init(layout, &init) {
        policy.handle(p, &Failure::Init { source })?;
    }
    if !loader.wait_idle(std::time::Instant::now() + handover::MODULES_IDLE_LIMIT) {
        log::warn("modules still loading at switch_root");
    }
    handover::move_mounts(p.fs, layout);
    p.exec.sync();
    // switch_root failed: the boot cannot continue; the shell, again.
    while let Err(source) =
        p.exec
            .switch_root(p.fs, layout, &exec, &args, cmdline.switch_root_console())
    {
        policy.handle(p, &Failure::SwitchRoot { source })?;
    }
    Ok(End::SwitchedRoot)
}
