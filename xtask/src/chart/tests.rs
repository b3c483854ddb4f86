use super::parse::{parse, timestamped, Event, Kind};
use super::svg::render;
use super::*;

/// A small debug_init boot of a USB stick that has to be waited for.
const SAMPLE: &str = "\
[    0.000000] Linux version 6.1.0
[    1.000000] Run /init as init process
[    1.050000] alpinit: phase start 1.020000
[    1.060000] alpinit: phase early-mounts 1.050000
 * Mounting boot media: [    1.100000] alpinit: coldplug: 40 devices swept in 9 ms, 12 modaliases requested
[    1.200000] alpinit: module LoadEvent { name: \"xhci_pci\", result: Ok(()) }
[    1.210000] alpinit: module LoadEvent { name: \"bogus\", result: Err(\"No such device\") }
[    1.300000] alpinit: waiting: usb-storage interface /sys/x has no disk yet
[    1.400000] alpinit: waiting: usb-storage interface /sys/x has no disk yet
[    1.500000] sd 0:0:0:0: [sda] 2048 512-byte logical blocks: (1.05 MB/1.00 MiB)
[    1.510000]  sda: sda1
[    1.520000] alpinit: uevent: action='Add' subsystem='block' devname='sda1' devpath='/devices/x/sda/sda1'
[    1.530000] alpinit: uevent: action='Add' subsystem='usb' devname='' devpath='/devices/x'
[    1.540000] alpinit: phase first-block 1.530000
[    1.550000] alpinit: probe /dev/sda1: type='vfat' label='A<B' uuid='1234' partuuid=''
[    1.560000] alpinit: found apkovl /media/sda1/h.apkovl.tar.gz
[    1.570000] alpinit: phase coldplug-done 1.560000
[    1.580000] alpinit: phase media-found 1.570000
[    1.590000] alpinit: apkovl chosen: /media/sda1/h.apkovl.tar.gz
[    1.600000] alpinit: phase apkovl-chosen 1.590000
[    1.700000] alpinit: unpacked 6 entries, 1000 bytes from /media/sda1/h.apkovl.tar.gz
[    1.710000] alpinit: phase unpacked 1.700000
[    1.720000] alpinit: running apk add --root /sysroot alpine-base
[    2.010000] alpinit: phase packages 2.000000
[    2.020000] alpinit: peak memory 3000 kB
[    2.030000] alpinit: phase switch-root 2.020000
ALPINIT-REPORT-BEGIN
monotonic=2.100000
ALPINIT-REPORT-END
";

fn labels(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.label.as_str()).collect()
}

#[test]
fn timestamps_are_found_behind_console_text() {
    assert_eq!(timestamped("[    3.756250] x"), Some((3.75625, "x")));
    assert_eq!(
        timestamped(" * Mounting: [    2.5] alpinit: ok"),
        Some((2.5, "alpinit: ok"))
    );
    assert_eq!(timestamped("[sda] no time"), None);
    assert_eq!(timestamped("monotonic=2.1"), None);
}

#[test]
fn phases_keep_log_order_and_are_moved_onto_the_kernel_clock() {
    let t = parse(SAMPLE);
    let names: Vec<&str> = t.phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "start",
            "early-mounts",
            "first-block",
            "coldplug-done",
            "media-found",
            "apkovl-chosen",
            "unpacked",
            "packages",
            "switch-root"
        ]
    );
    // Smallest (kernel - monotonic) is 0.01 s (early-mounts and others).
    assert!((t.clock_offset - 0.01).abs() < 1e-9, "{}", t.clock_offset);
    assert!((t.phases[0].secs - 1.02).abs() < 1e-9);
    assert!((t.phases[0].at - 1.03).abs() < 1e-9);
    // The hand-over ends at the report's monotonic value plus the offset.
    assert!((t.end - 2.11).abs() < 1e-9, "{}", t.end);
}

#[test]
fn events_are_the_records_the_init_and_kernel_write_in_time_order() {
    let t = parse(SAMPLE);
    assert_eq!(
        labels(&t.events),
        [
            "kernel runs /init",
            "coldplug: 40 devices swept in 9 ms, 12 modaliases requested",
            "module xhci_pci",
            "module bogus failed",
            "waiting: usb-storage interface /sys/x has no disk yet (0.280 s)",
            "disk sda (sd 0:0:0:0)",
            "partitions sda: sda1",
            "uevent add sda1",
            "probe /dev/sda1: vfat",
            "found apkovl /media/sda1/h.apkovl.tar.gz",
            "wait over: found apkovl /media/sda1/h.apkovl.tar.gz",
            "unpacked 6 entries, 1000 bytes from /media/sda1/h.apkovl.tar.gz (0.110 s)",
            "apk add (0.290 s)",
            "peak memory 3000 kB",
            "switch_root -> new root's init (0.080 s)",
        ]
    );
    let kinds: Vec<Kind> = t.events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds[2], Kind::Module);
    assert_eq!(kinds[3], Kind::ModuleFailed);
    // The wait runs from its first line to media-found (1.57 + 0.01).
    let wait = &t.events[4];
    assert_eq!(wait.kind, Kind::Wait);
    assert!((wait.at - 1.3).abs() < 1e-9);
    assert!((wait.to.unwrap_or(0.0) - 1.58).abs() < 1e-9);
}

#[test]
fn a_wait_for_another_reason_ends_the_one_before() {
    let log = "\
[    1.0] alpinit: phase start 1.0
[    1.1] alpinit: waiting: SCSI device /sys/a has no driver yet
[    1.2] alpinit: module LoadEvent { name: \"sd_mod\", result: Ok(()) }
[    1.3] alpinit: waiting: SCSI device /sys/a has no block device yet
[    1.4] alpinit: probe /dev/sda: type='' label='' uuid='' partuuid=''
[    1.5] alpinit: phase media-found 1.5
";
    let t = parse(log);
    let waits: Vec<(&str, f64, Option<f64>)> = t
        .events
        .iter()
        .filter(|e| e.kind == Kind::Wait)
        .map(|e| (e.label.as_str(), e.at, e.to))
        .collect();
    assert_eq!(
        waits,
        [
            (
                "waiting: SCSI device /sys/a has no driver yet (0.200 s)",
                1.1,
                Some(1.3)
            ),
            ("wait over: module sd_mod", 1.3, None),
            (
                "waiting: SCSI device /sys/a has no block device yet (0.200 s)",
                1.3,
                Some(1.5)
            ),
            ("wait over: probe /dev/sda: no file system", 1.5, None),
        ]
    );
}

/// Positions of `needles` in `hay`, failing on a missing one.
fn positions(hay: &str, needles: &[&str]) -> Vec<usize> {
    needles
        .iter()
        .map(|n| {
            hay.find(n)
                .unwrap_or_else(|| panic!("{n:?} missing from the SVG"))
        })
        .collect()
}

fn assert_increasing(pos: &[usize]) {
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "out of order: {pos:?}");
}

#[test]
fn svg_has_the_phase_labels_in_order_an_axis_and_escaped_text() {
    let t = parse(SAMPLE);
    let svg = render(&t, "sample <log>");
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(svg.ends_with("</svg>\n"));
    assert!(svg.contains("sample &lt;log&gt;"));
    let pos = positions(
        &svg,
        &[
            ">kernel: start -&gt; init start (1.030 s)<",
            ">phase start ",
            ">phase early-mounts ",
            ">phase first-block ",
            ">phase coldplug-done ",
            ">phase media-found ",
            ">phase apkovl-chosen ",
            ">phase unpacked ",
            ">phase packages ",
            ">phase switch-root ",
        ],
    );
    assert_increasing(&pos);
    // Axis: the kernel's first 0.976 s compressed with 0.25 s ticks, then
    // 0.1 s ticks from 1.0 s to the first one past the end (2.11 s).
    assert!(svg.contains(">0.00 s<"));
    assert!(svg.contains(">0.75 s<"));
    assert!(svg.contains("the scale changes at 0.98 s"));
    assert!(svg.contains(">1.0 s<"));
    assert!(svg.contains(">2.2 s<"));
    assert!(!svg.contains(">2.3 s<"));
    // No external reference: no scripts, images, links or style sheets.
    for bad in ["<script", "<image", "href", "@import", "url("] {
        assert!(!svg.contains(bad), "{bad} in the SVG");
    }
    // Same log, same bytes.
    assert_eq!(svg, render(&parse(SAMPLE), "sample <log>"));
}

/// The serial log of a real `virtio-ext4` QEMU boot (`cargo xtask test
/// --qemu-only virtio-ext4`), cut down: the kernel's first three lines, then
/// everything from `Run /init` on, with the busybox `--install` noise after
/// its first two lines left out.
const REAL: &str = include_str!("fixtures/virtio-ext4.serial.log");

#[test]
fn real_virtio_ext4_log_gives_every_phase_and_the_disk() {
    let t = parse(REAL);
    let names: Vec<&str> = t.phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "start",
            "early-mounts",
            "first-block",
            "coldplug-done",
            "media-found",
            "apkovl-chosen",
            "unpacked",
            "packages",
            "switch-root"
        ]
    );
    let l = labels(&t.events);
    let pos = positions(
        &l.join("\n"),
        &[
            "kernel runs /init",
            "coldplug: ",
            "disk vda (virtio_blk virtio",
            "partitions vda: vda1",
            "probe /dev/vda: no file system",
            "probe /dev/vda1: ext4",
            "kernel mounts vda1",
            "found apkovl /media/vda1/host.apkovl.tar.gz",
            "unpacked ",
            "peak memory ",
            "switch_root -> new root's init",
        ],
    );
    assert_increasing(&pos);
    // On this boot CLOCK_MONOTONIC ran 39 ms ahead of the kernel's log
    // clock: the offset is negative, the smallest (kernel - monotonic) of
    // the phase lines (apkovl-chosen: 6.875256 - 6.914516).
    assert!(
        (t.clock_offset - (6.875256 - 6.914516)).abs() < 1e-9,
        "{}",
        t.clock_offset
    );
    // Every phase then lands at or before the record that announced it.
    let announced = [
        4.832211, 4.832510, 6.477627, 6.857676, 6.864357, 6.875256, 7.155722, 7.183321, 7.278611,
    ];
    for (p, at) in t.phases.iter().zip(announced) {
        assert!(p.at <= at + 1e-9, "{} at {} after {at}", p.name, p.at);
    }
    let svg = render(&t, "virtio-ext4");
    let pos = positions(
        &svg,
        &[
            ">phase start ",
            ">phase early-mounts ",
            ">phase first-block ",
            ">phase media-found ",
            ">phase unpacked ",
            ">phase switch-root ",
        ],
    );
    assert_increasing(&pos);
}

#[test]
fn command_writes_beside_the_log_and_names_a_missing_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("serial.log");
    std::fs::write(&log, SAMPLE).expect("write log");
    command(&[log.display().to_string()]).expect("chart");
    let svg = std::fs::read_to_string(dir.path().join("serial.svg")).expect("svg written");
    assert!(svg.contains(">phase switch-root "));

    let out = dir.path().join("other.svg");
    command(&[
        log.display().to_string(),
        "-o".into(),
        out.display().to_string(),
    ])
    .expect("-o");
    assert!(out.is_file());

    let missing = dir.path().join("nope.log");
    let err = command(&[missing.display().to_string()]).expect_err("missing log");
    assert!(matches!(&err, ChartError::Read { path, .. } if *path == missing));

    std::fs::write(&log, "no timestamps here\n").expect("write");
    let err = command(&[log.display().to_string()]).expect_err("not a log");
    assert!(matches!(err, ChartError::NoTimestamps { .. }));
    assert!(matches!(command(&[]), Err(ChartError::Usage)));
    assert!(matches!(
        command(&["x".into(), "--bogus".into()]),
        Err(ChartError::UnknownOption(_))
    ));
}

#[test]
fn short_kernel_part_keeps_one_linear_scale() {
    let log = "\
[    0.100000] alpinit: phase start 0.100000
[    0.900000] alpinit: phase switch-root 0.900000
";
    let svg = render(&parse(log), "short");
    assert!(!svg.contains("scale changes"));
    // 0.9 s with 0.1 s ticks: 0.0 .. 0.9, one scale.
    assert!(svg.contains(">0.0 s<"));
    assert!(svg.contains(">0.5 s<"));
    assert!(svg.contains(">0.9 s<"));
    assert!(!svg.contains(">1.0 s<"));
}

#[test]
fn a_label_too_long_for_either_side_is_cut_and_kept_whole_in_the_tooltip() {
    let reason = "x".repeat(300);
    let log = format!(
        "[    1.0] alpinit: phase start 1.0\n[    1.1] alpinit: waiting: {reason}\n[    2.0] alpinit: phase media-found 2.0\n"
    );
    let svg = render(&parse(&log), "long");
    assert!(svg.contains(&format!("<title>1.100 waiting: {reason} (0.900 s)</title>")));
    let cut = svg
        .lines()
        .find(|l| l.starts_with("<text") && l.contains("1.100 waiting: xxx"))
        .expect("the wait's label");
    assert!(cut.contains("x…</text>"), "{cut}");
    assert!(!cut.contains(&reason), "{cut}");
}
