//! Timing, table and rounds of `bench root`, on console logs recorded from
//! a real run of it (`root_fixtures/`: from the kernel's `Run /init` line
//! on; in ours, busybox's `--install -s` complaints are cut).

use std::cell::RefCell;

use super::parse::{self, Column, Target};
use super::*;

const OURS: &str = include_str!("root_fixtures/ext4-alpinit.log");
const ITOOLS: &str = include_str!("root_fixtures/ext4-initramfs-tools.log");
const DRACUT: &str = include_str!("root_fixtures/ext4-dracut.log");
const TINY: &str = include_str!("root_fixtures/ext4-tiny-initramfs.log");

/// Median of our six phase lines' (monotonic - printk): `start` is printed
/// late (-0.003 s) and does not move it.
const OFFSET: f64 = (0.039207 + 0.039221) / 2.0;

fn close(got: f64, want: f64) -> bool {
    (got - want).abs() < 1e-6
}

#[test]
fn our_boot_is_timed_from_run_init_to_the_roots_init_with_its_own_clock_offset() {
    let (secs, offset) = parse::ours(OURS).expect("parse");
    assert!(close(offset, OFFSET), "{offset}");
    assert!(close(secs, 10.270301 - OFFSET - 7.385333), "{secs}");
}

#[test]
fn peers_are_timed_with_the_offset_borrowed_from_our_boot() {
    for (log, run_init, monotonic) in [
        (ITOOLS, 8.587977, 28.015481),
        (DRACUT, 12.465717, 46.023105),
        (TINY, 4.835984, 7.185695),
    ] {
        let secs = parse::to_new_root(log, OFFSET).expect("parse");
        assert!(close(secs, monotonic - OFFSET - run_init), "{secs}");
    }
}

/// dracut's systemd status lines start with `[` and an escape sequence:
/// they are not kernel lines and must not be taken for `Run /init`.
#[test]
fn systemd_status_lines_are_not_kernel_times() {
    assert!(close(parse::run_init(DRACUT).expect("run"), 12.465717));
    let status = "\u{1b}[0;32m  OK  \u{1b}[0m] Reached target";
    assert_eq!(
        crate::bench::vs_alpine::parse::printk_time(&format!("[{status}")),
        None
    );
}

#[test]
fn a_boot_that_did_not_reach_the_benchmark_root_is_not_timed() {
    // The report names another root device: not the LUKS mapping.
    let err = parse::booted_root(OURS, HOSTNAME, Variant::Luks2.sources()).unwrap_err();
    assert!(format!("{err:#}").contains("/dev/vda1"), "{err:#}");
    let err = parse::booted_root(TINY, "other-host", Variant::Ext4.sources()).unwrap_err();
    assert!(format!("{err:#}").contains("alpinit-bench-root"), "{err:#}");
    // Cut before the report: the init never started.
    let cut = &TINY[..TINY.find("ALPINIT-REPORT-BEGIN").expect("report")];
    assert!(parse::booted_root(cut, HOSTNAME, Variant::Ext4.sources()).is_err());
    assert!(parse::to_new_root(cut, OFFSET).is_err());
    assert!(parse::booted_root(TINY, HOSTNAME, Variant::Ext4.sources()).is_ok());
}

#[test]
fn a_root_init_before_run_init_is_refused() {
    // An offset so large the root's init would predate the kernel's line.
    let err = parse::to_new_root(TINY, 5.0).unwrap_err();
    assert!(format!("{err:#}").contains("before `Run /init`"), "{err:#}");
}

#[test]
fn our_boot_without_phase_lines_has_no_clock_offset() {
    let err = parse::ours(TINY).unwrap_err();
    assert!(format!("{err:#}").contains("alpinit: phase"), "{err:#}");
}

#[test]
fn span_runs_from_the_first_mark_to_the_next_end_after_it() {
    let log = "[    1.000000] EXT4-fs (dm-0): mounted filesystem early\n\
               [    2.500000] device-mapper: ioctl: 4.47.0-ioctl initialised\n\
               [    3.000000] alpinit: /dev/vda unlocked (key slot 0), mapped as /dev/mapper/root\n\
               [    3.250000] EXT4-fs (dm-0): mounted filesystem with ordered data mode.\n";
    let s = parse::span(log, root_luks::DM_LOADED, root_luks::DM_MOUNTED).expect("span");
    assert!(close(s, 0.75), "{s}");
    let s = parse::span(log, root_luks::DM_LOADED, root_luks::OURS_UNLOCKED).expect("span");
    assert!(close(s, 0.5), "{s}");
    assert!(parse::span(OURS, root_luks::DM_LOADED, root_luks::DM_MOUNTED).is_err());
}

fn column(name: &str, secs: &[f64], target: Option<f64>) -> Column {
    Column {
        name: name.into(),
        secs: secs.to_vec(),
        runs: 3,
        target: target.map(|max_ratio| Target { max_ratio }),
    }
}

#[test]
fn table_gives_medians_ratios_and_whether_each_target_is_met() {
    let ours = column("alpinit", &[3.0, 2.0, 2.5], None);
    let itools = column("initramfs-tools", &[20.0, 19.0], Some(0.3));
    let tiny = column("tiny-initramfs", &[2.0, 2.4, 2.2], Some(1.0));
    let dracut = column("dracut", &[], Some(0.3));
    assert_eq!(ours.median(), Some(2.5));
    assert_eq!(itools.median(), Some(19.5));
    assert_eq!(ours.best(), Some(2.0));
    assert_eq!(parse::verdict(&ours, &itools), "met");
    assert_eq!(parse::verdict(&ours, &tiny), "MISSED");
    assert_eq!(parse::verdict(&ours, &dracut), "-");
    let table = parse::table("t", &ours, &[itools, tiny, dracut]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 6, "{table}");
    assert!(
        lines[2].contains("2.500s") && lines[2].contains("3/3"),
        "{table}"
    );
    let itools_line = lines[3].split_whitespace().collect::<Vec<_>>();
    assert_eq!(
        itools_line,
        [
            "initramfs-tools",
            "19.500s",
            "19.000s",
            "2/3",
            "0.13",
            "<=",
            "0.3",
            "met"
        ]
    );
    assert!(
        lines[4].contains("1.14") && lines[4].ends_with("MISSED"),
        "{table}"
    );
    assert!(
        lines[5].contains("0/3") && lines[5].contains(" - "),
        "{table}"
    );
}

#[test]
fn the_minimal_image_is_held_to_tiny_initramfs_and_the_default_one_to_the_others() {
    let columns = vec![
        column("alpinit", &[1.0, 1.2, 1.1], None),
        column(MIN_NAME, &[0.5, 0.6, 0.55], None),
        column("initramfs-tools", &[5.0], Some(0.3)),
        column("tiny-initramfs", &[0.6, 0.5, 0.52], Some(1.0)),
    ];
    let (main, min) = tables_of("t", columns);
    assert!(!main.contains(MIN_NAME), "{main}");
    let tiny_row = main.lines().find(|l| l.contains("tiny-initramfs")).unwrap();
    assert!(
        tiny_row.ends_with(" -"),
        "no target for the default image: {main}"
    );
    let min = min.expect("a table for the minimal image");
    let lines: Vec<&str> = min.lines().collect();
    assert!(
        lines[3].contains(MIN_NAME) && lines[3].contains("0.550s"),
        "{min}"
    );
    assert!(
        lines[4].contains("1.06") && lines[4].ends_with("MISSED"),
        "{min}"
    );
}

#[test]
fn without_the_minimal_image_tiny_initramfs_keeps_its_target() {
    let columns = vec![
        column("alpinit", &[0.5], None),
        column("tiny-initramfs", &[0.6], Some(1.0)),
    ];
    let (main, min) = tables_of("t", columns);
    assert!(min.is_none());
    assert!(main.contains("<= 1.0 met"), "{main}");
}

#[test]
fn targets_follow_the_issue() {
    assert_eq!(target(Peer::TinyInitramfs).max_ratio, 1.0);
    assert_eq!(target(Peer::InitramfsTools).max_ratio, 0.3);
    assert_eq!(target(Peer::Dracut).max_ratio, 0.3);
}

fn args(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn arguments_default_to_five_rounds_of_both_variants() {
    let a = parse_args(&[]).expect("parse");
    assert_eq!(a.runs, 5);
    assert_eq!(a.variants, [Variant::Ext4, Variant::Luks2]);
    let a = parse_args(&args(&["luks2", "-n", "3"])).expect("parse");
    assert_eq!((a.runs, a.variants), (3, vec![Variant::Luks2]));
    assert!(parse_args(&args(&["-n", "0"])).is_err());
    assert!(parse_args(&args(&["-n"])).is_err());
    assert!(parse_args(&args(&["xfs"])).is_err());
}

fn side(name: &str, peer: Option<Peer>) -> Side {
    Side {
        name: name.into(),
        image: PathBuf::from(format!("{name}.img")),
        peer,
        cmdline: CMDLINE.into(),
    }
}

/// The order rotates every round; ours is parsed first so the peers of the
/// round borrow its offset; a peer whose boot failed gets no time but the
/// others of the round keep theirs.
#[test]
fn rounds_rotate_the_order_and_keep_the_boots_that_reached_the_root() {
    let sides = vec![
        side("alpinit", None),
        side("initramfs-tools", Some(Peer::InitramfsTools)),
        side("tiny-initramfs", Some(Peer::TinyInitramfs)),
    ];
    let order = RefCell::new(Vec::new());
    let dir = std::env::temp_dir();
    let columns = rounds(&sides, 3, &dir, Variant::Ext4, |side, _log| {
        order.borrow_mut().push(side.name.clone());
        let round = order.borrow().len().div_ceil(3);
        Ok(match side.name.as_str() {
            "alpinit" => OURS.to_string(),
            "initramfs-tools" => ITOOLS.to_string(),
            // Round 2's tiny-initramfs boot never reached the root.
            _ if round == 2 => "[    4.835984] Run /init as init process\n".to_string(),
            _ => TINY.to_string(),
        })
    })
    .expect("rounds");
    let order = order.into_inner();
    assert_eq!(
        order,
        [
            "alpinit",
            "initramfs-tools",
            "tiny-initramfs",
            "initramfs-tools",
            "tiny-initramfs",
            "alpinit",
            "tiny-initramfs",
            "alpinit",
            "initramfs-tools"
        ]
    );
    assert_eq!(columns.len(), 3);
    assert_eq!(columns[0].secs.len(), 3);
    assert_eq!(columns[1].secs.len(), 3);
    assert_eq!(columns[2].secs.len(), 2);
    assert!(close(columns[2].secs[0], 7.185695 - OFFSET - 4.835984));
    assert_eq!(columns[0].target, None);
    assert_eq!(columns[2].target, Some(target(Peer::TinyInitramfs)));
}

const OURS_LUKS: &str = include_str!("root_fixtures/luks2-alpinit.log");
const ITOOLS_LUKS: &str = include_str!("root_fixtures/luks2-initramfs-tools.log");

/// Our init rings the bell before the unlock; the kernel line after it
/// (`^G[   14.905574] alpinit: /dev/vda unlocked ...`) keeps its time.
#[test]
fn a_bell_before_the_unlocked_line_does_not_hide_its_time() {
    let s = parse::span(OURS_LUKS, root_luks::DM_LOADED, root_luks::OURS_UNLOCKED).expect("span");
    assert!(close(s, 14.905574 - 7.088002), "{s}");
}

#[test]
fn the_unlock_is_timed_from_dm_mod_to_the_mapping_mounted_on_every_image() {
    let s = parse::span(OURS_LUKS, root_luks::DM_LOADED, root_luks::DM_MOUNTED).expect("span");
    assert!(close(s, 15.313822 - 7.088002), "{s}");
    let s = parse::span(ITOOLS_LUKS, root_luks::DM_LOADED, root_luks::DM_MOUNTED).expect("span");
    assert!(close(s, 30.401237 - 18.318738), "{s}");
    // Both reached the LUKS root, not a plain partition.
    for log in [OURS_LUKS, ITOOLS_LUKS] {
        assert!(parse::booted_root(log, HOSTNAME, Variant::Luks2.sources()).is_ok());
        assert!(parse::booted_root(log, HOSTNAME, Variant::Ext4.sources()).is_err());
    }
}

/// The typed command echoes the marks' text on the console without a
/// printk time; only the kernel's lines from /dev/kmsg count.
#[test]
fn cryptsetup_is_timed_between_its_kmsg_marks_not_the_echoed_command() {
    let log = format!(
        "[   20.000000] Run /init as init process\n\
         (initramfs) {}\
         [   21.250000] bench-cryptsetup-start\n\
         [   30.000000] bench-cryptsetup-end 0\n",
        root_luks::TEST_PASSPHRASE
    );
    let sides = vec![
        side("alpinit", None),
        side("initramfs-tools", Some(Peer::InitramfsTools)),
    ];
    let booted = RefCell::new(Vec::new());
    let spans = cryptsetup_unlocks(&sides, 2, &std::env::temp_dir(), |side, _| {
        booted.borrow_mut().push(side.name.clone());
        Ok(log.clone())
    })
    .expect("unlocks");
    assert_eq!(booted.into_inner(), ["initramfs-tools", "initramfs-tools"]);
    assert_eq!(spans.len(), 2);
    assert!(close(spans[0], 8.75), "{spans:?}");
    // A failed cryptsetup (`end 2`) is not timed.
    let failed = log.replace("bench-cryptsetup-end 0", "bench-cryptsetup-end 2");
    let spans = cryptsetup_unlocks(&sides, 1, &std::env::temp_dir(), |_, _| Ok(failed.clone()))
        .expect("unlocks");
    assert!(spans.is_empty());
    // Without initramfs-tools there is nothing to boot.
    let spans = cryptsetup_unlocks(&sides[..1], 1, &std::env::temp_dir(), |_, _| {
        panic!("no boot expected")
    })
    .expect("unlocks");
    assert!(spans.is_empty());
}
