//! The console parsing of both sides, on logs recorded from real runs of
//! this benchmark (`fixtures/`: from the kernel's `Run /init` line on; in
//! ours, the `busybox: /usr/...: No such file or directory` lines of
//! `busybox --install -s` are cut).

use super::parse::{self, Timeline};
use super::*;

const OURS_VIRTIO: &str = include_str!("fixtures/alpinit-virtio-repo.log");
const ALPINE_VIRTIO: &str = include_str!("fixtures/alpine-virtio-repo.log");
const OURS_PXE: &str = include_str!("fixtures/alpinit-pxe.log");
const ALPINE_PXE: &str = include_str!("fixtures/alpine-pxe.log");

fn close(got: f64, want: f64) -> bool {
    (got - want).abs() < 1e-6
}

fn assert_spans(t: &Timeline, want: [f64; 5]) {
    let got = t.spans();
    for (i, (g, w)) in got.iter().zip(want.iter()).enumerate() {
        assert!(close(*g, *w), "{}: {g} != {w} ({t:?})", SPANS[i]);
    }
    assert!(close(got.iter().sum::<f64>(), t.total()));
}

/// The offset is the median of (phase value - printk time) over the nine
/// phase lines (`start` is an outlier at 0.026 s and does not move it).
#[test]
fn our_boot_is_timed_from_run_init_to_the_new_roots_first_line() {
    let (t, offset) = parse::ours(OURS_VIRTIO).expect("parse");
    assert!(close(offset, 10.435799 - 10.384624), "{offset}");
    assert!(close(t.run_init, 8.623820));
    assert!(close(t.new_root, 10.514937 - offset));
    assert!(
        close(t.total(), 10.514937 - offset - 8.623820),
        "{}",
        t.total()
    );
    assert_spans(
        &t,
        [
            8.687442 - 8.623820,
            10.167727 - 8.687442,
            10.384624 - 10.167727,
            10.392050 - 10.384624,
            10.514937 - offset - 10.392050,
        ],
    );
}

#[test]
fn alpines_boot_is_timed_by_its_ebegin_eend_lines() {
    let offset = 0.051175;
    let t = parse::alpine(ALPINE_VIRTIO, offset).expect("parse");
    assert!(close(t.total(), 15.573631 - offset - 8.091805), "{t:?}");
    assert_spans(
        &t,
        [
            8.559926 - 8.091805,
            14.124447 - 8.559926,
            14.187137 - 14.124447,
            15.017737 - 14.187137,
            15.573631 - offset - 15.017737,
        ],
    );
}

/// Over the network, the download happens before `Loading user settings`:
/// it counts as finding the boot media on both sides.
#[test]
fn pxe_boots_of_both_sides_parse() {
    let (ours, offset) = parse::ours(OURS_PXE).expect("ours");
    let alpine = parse::alpine(ALPINE_PXE, offset).expect("alpine");
    assert!(close(alpine.marks[1], 19.537717), "{alpine:?}");
    assert!(close(alpine.marks[2], 19.717454), "{alpine:?}");
    assert!(
        ours.total() > 0.5 && ours.total() < alpine.total(),
        "{ours:?}"
    );
}

#[test]
fn a_boot_that_never_reached_the_new_root_is_not_timed() {
    let cut = |log: &str, at: &str| log[..log.find(at).expect("marker")].to_string();
    let err = parse::ours(&cut(OURS_VIRTIO, "ALPINIT-REPORT-BEGIN")).unwrap_err();
    assert!(format!("{err:#}").contains("no report"), "{err:#}");
    let err = parse::alpine(&cut(ALPINE_VIRTIO, "[   14.124447] Loading user"), 0.05).unwrap_err();
    assert!(format!("{err:#}").contains("found no apkovl"), "{err:#}");
    let err = parse::alpine(&cut(ALPINE_VIRTIO, "[   15.017737]"), 0.05).unwrap_err();
    assert!(
        format!("{err:#}").contains("Installing packages"),
        "{err:#}"
    );
}

/// The overlay carries the scenario's name as hostname; a boot whose new
/// root says otherwise did not apply it.
#[test]
fn the_new_root_must_be_the_overlays() {
    parse::booted_with_overlay(ALPINE_VIRTIO, "virtio-repo").expect("alpine");
    parse::booted_with_overlay(OURS_PXE, "pxe").expect("ours");
    let err = parse::booted_with_overlay(ALPINE_VIRTIO, "usb").unwrap_err();
    assert!(format!("{err:#}").contains("\"virtio-repo\""), "{err:#}");
    let err = parse::booted_with_overlay("[ 1.0] Run /init as init process\n", "usb").unwrap_err();
    assert!(format!("{err:#}").contains("no report"), "{err:#}");
}

/// An offset so large that the new root would precede the last mark.
#[test]
fn marks_out_of_order_are_refused() {
    let err = parse::alpine(ALPINE_VIRTIO, 1.0).unwrap_err();
    assert!(format!("{err:#}").contains("hand-over"), "{err:#}");
}

#[test]
fn printk_times() {
    assert_eq!(
        parse::printk_time("[    8.623820] Run /init"),
        Some(8.623820)
    );
    assert_eq!(parse::printk_time("[12345.000001] x"), Some(12345.000001));
    assert_eq!(parse::printk_time(" * Mounting boot media: ok."), None);
    assert_eq!(parse::printk_time("[ nope ] x"), None);
}

#[test]
fn arguments() {
    let args = |list: &[&str]| parse_args(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    let all = args(&[]).expect("defaults");
    assert_eq!(all.runs, 3);
    assert_eq!(all.scenarios.len(), SCENARIOS.len());
    let some = args(&["usb", "-n", "5", "virtio-repo"]).expect("parse");
    let names: Vec<&str> = some.scenarios.iter().map(|s| s.name).collect();
    assert_eq!(names, ["usb", "virtio-repo"]);
    assert_eq!(some.runs, 5);
    assert!(args(&["nope"]).is_err());
    assert!(args(&["-n", "0"]).is_err());
    assert!(args(&["-n"]).is_err());
    assert!(args(&["--fast"]).is_err());
}

/// The figure "partition announced -> new root" starts at the kernel's
/// partition-table line of the medium, on both sides.
#[test]
fn the_partition_is_announced_by_the_kernels_partition_table_line() {
    assert_eq!(parse::announced(OURS_VIRTIO, "vda1"), Some(9.720047));
    assert_eq!(parse::announced(ALPINE_VIRTIO, "vda1"), Some(11.537268));
    assert_eq!(parse::announced(OURS_VIRTIO, "sda1"), None);
    assert_eq!(parse::announced(OURS_PXE, "vda1"), None);
    let line = "[    3.100000] alpinit: probe /dev/sda: type='' label=''\n[    2.904564]  sda: sda1 sda2\n";
    assert_eq!(parse::announced(line, "sda2"), Some(2.904564));
    assert_eq!(parse::announced(line, "sda"), None);
}

/// With apk in the image, Alpine's `eend` line follows the progress bar on
/// the same console line: its own `[ secs ]` is found there.
#[test]
fn a_kernel_line_after_a_progress_bar_is_timed() {
    let log = "[    6.820655] Run /init as init process\n\
[    7.085866] Loading boot drivers...\n\
[   12.341655] Loading user settings from /media/vda1/host.apkovl.tar.gz...\n \
* Loading user settings from /media/vda1/host.apkovl.tar.gz: \u{1b}7  0%   \u{1b}8\u{1b}[0K\
[   12.762745] Loading user settings from /media/vda1/host.apkovl.tar.gz: ok.\n\
[   14.854540] Installing packages to root filesystem: ok.\n\
ALPINIT-REPORT-BEGIN\nmonotonic=15.539507\nhostname=real-apk\nALPINIT-REPORT-END\n";
    let t = parse::alpine(log, 0.05).expect("parse");
    assert!(close(t.marks[1], 12.341655), "{t:?}");
    assert!(close(t.marks[2], 12.762745), "{t:?}");
    assert!(close(t.marks[3], 14.854540), "{t:?}");
}
