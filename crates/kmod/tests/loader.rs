//! Loader behaviour against a fake module tree and a recording insmod.

mod common;

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use alpinit_kmod::{LoadError, Loader, ModprobeConfig, PlanError};
use common::{image_of, Fixture, Recorder, USB_STORAGE_MODALIAS, VIRTIO_BLK_MODALIAS};

/// Far enough away that only a hang reaches it; no test asserts on time.
fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

fn loader(fixture: &Fixture, config: ModprobeConfig, recorder: &Arc<Recorder>) -> Loader {
    Loader::new(
        Arc::new(fixture.index()),
        Arc::new(config),
        recorder.clone(),
    )
}

fn position(names: &[String], name: &str) -> usize {
    names
        .iter()
        .position(|n| n == name)
        .unwrap_or_else(|| panic!("{name} not loaded: {names:?}"))
}

#[test]
fn loads_softdeps_then_deps_then_module() {
    let fixture = Fixture::new();
    let recorder = Arc::new(Recorder::default());
    let loader = loader(&fixture, common::config(), &recorder);
    loader.load_now("fs-ext4").unwrap();
    assert_eq!(
        recorder.names(),
        [
            "crc32c_intel",
            "crc32c_generic",
            "jbd2",
            "mbcache",
            "crc16",
            "ext4"
        ]
    );
    assert!(loader.loaded("ext4") && loader.loaded("jbd2"));
    assert!(!loader.busy());
}

#[test]
fn compressed_modules_reach_the_kernel_decompressed() {
    let fixture = Fixture::new();
    let recorder = Arc::new(Recorder::default());
    let loader = loader(&fixture, common::config(), &recorder);
    loader.load_now("ext4").unwrap();
    // crc16 is .zst, mbcache .xz, jbd2 .gz, ext4 plain.
    for call in recorder.calls() {
        assert_eq!(call.image, image_of(&call.name), "{}", call.name);
    }
}

#[test]
fn plain_modules_reach_the_kernel_as_files_compressed_ones_as_images() {
    let fixture = Fixture::new();
    let recorder = Arc::new(Recorder::default());
    let loader = loader(&fixture, common::config(), &recorder);
    loader.load_now("ext4").unwrap();
    let via: Vec<(String, bool)> = recorder
        .calls()
        .into_iter()
        .map(|c| (c.name, c.from_file))
        .collect();
    let expect = |name: &str, from_file: bool| (name.to_owned(), from_file);
    assert_eq!(
        via,
        [
            expect("crc32c_intel", true),
            expect("crc32c_generic", true),
            expect("jbd2", false),
            expect("mbcache", false),
            expect("crc16", false),
            expect("ext4", true),
        ]
    );
}

#[test]
fn simd_crypto_module_is_inserted_with_the_kernels_requests_refused() {
    let fixture = Fixture::new();
    let recorder = Arc::new(Recorder::default());
    let loader = loader(&fixture, common::config(), &recorder);
    loader.load_now("aesni_intel").unwrap();
    loader.load_now("ext4").unwrap();
    let refused: Vec<(String, bool)> = recorder
        .calls()
        .into_iter()
        .map(|c| (c.name, c.refused))
        .filter(|(name, _)| !name.starts_with("crc") && !["jbd2", "mbcache"].contains(&&**name))
        .collect();
    let expect = |name: &str, refused: bool| (name.to_owned(), refused);
    // Only the module that depends on crypto_simd: crypto_simd and cryptd themselves make
    // no requests, and ext4 needs its own (none here, but a mount may).
    assert_eq!(
        refused,
        [
            expect("cryptd", false),
            expect("crypto_simd", false),
            expect("aesni_intel", true),
            expect("ext4", false),
        ]
    );
}

#[test]
fn nothing_is_inserted_beside_a_module_with_requests_refused() {
    let fixture = Fixture::new();
    let recorder = Arc::new(Recorder::slow(Duration::from_millis(20)));
    let loader = loader(&fixture, common::config(), &recorder);
    // Independent chains on the workers, the SIMD module among them.
    loader.request("usb-storage");
    loader.request("ext4");
    loader.request("aesni_intel");
    loader.request("virtio_blk");
    loader.request("vfat");
    assert!(loader.wait_idle(deadline()));
    let calls = recorder.calls();
    assert!(calls.iter().any(|c| c.name == "aesni_intel" && c.refused));
    assert_eq!(
        recorder.overlaps.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "{calls:?}"
    );
}

#[test]
fn each_module_once_under_concurrent_requests() {
    let fixture = Fixture::new();
    let recorder = Arc::new(Recorder::gated());
    let loader = Arc::new(loader(&fixture, common::config(), &recorder));
    let threads = 10;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let loader = Arc::clone(&loader);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                loader.request_alias(USB_STORAGE_MODALIAS);
                loader.request("usb-storage");
                loader.request_alias("usb:v0BC2p2100d0000dc00dsc00dp00ic08isc06ip62in00");
                if i % 2 == 0 {
                    loader.load_now("uas")
                } else {
                    loader.load_now("usb_storage")
                }
            })
        })
        .collect();
    // Every thread is blocked behind the first insmod (or queued) before any load finishes.
    recorder.wait_entered();
    recorder.open_gate();
    for handle in handles {
        handle.join().unwrap().unwrap();
    }
    assert!(loader.wait_idle(deadline()));
    let names = recorder.names();
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        names.len(),
        unique.len(),
        "a module was inserted twice: {names:?}"
    );
    assert_eq!(
        unique,
        ["scsi_mod", "uas", "usb_common", "usb_storage", "usbcore"]
    );
    // Dependencies are inserted before their users whichever thread won.
    assert!(position(&names, "usb_common") < position(&names, "usbcore"));
    assert!(position(&names, "usbcore") < position(&names, "usb_storage"));
    assert!(position(&names, "scsi_mod") < position(&names, "usb_storage"));
    assert!(position(&names, "usb_storage") < position(&names, "uas"));
}

#[test]
fn queued_alias_requests_load_all_matches_in_the_background() {
    let fixture = Fixture::new();
    let recorder = Arc::new(Recorder::default());
    let loader = loader(&fixture, common::config(), &recorder);
    loader.request_alias(VIRTIO_BLK_MODALIAS);
    loader.request_alias("pci:v00008086d00001237sv00000000sd00000000bc06sc00i00");
    assert!(loader.wait_idle(deadline()));
    assert_eq!(recorder.names(), ["virtio", "virtio_ring", "virtio_blk"]);
    let log = loader.drain_log();
    let logged: Vec<(&str, bool)> = log
        .iter()
        .map(|e| (e.name.as_str(), e.result.is_ok()))
        .collect();
    assert_eq!(
        logged,
        [
            ("virtio", true),
            ("virtio_ring", true),
            ("virtio_blk", true)
        ]
    );
    // Modaliases without a driver are not logged as missing names.
    assert!(loader.drain_log().is_empty());
}

#[test]
fn blacklist_applies_to_aliases_only() {
    let fixture = Fixture::new();
    let recorder = Arc::new(Recorder::default());
    let mut config = ModprobeConfig::default();
    config.add_cmdline(&["modprobe.blacklist=usb-storage,uas"]);
    let loader = loader(&fixture, config, &recorder);
    loader.request_alias(USB_STORAGE_MODALIAS);
    assert!(loader.wait_idle(deadline()));
    assert!(recorder.names().is_empty(), "{:?}", recorder.names());
    assert!(!loader.loaded("usb_storage"));
    loader.request("usb-storage");
    assert!(loader.wait_idle(deadline()));
    assert_eq!(
        recorder.names().last().map(String::as_str),
        Some("usb_storage")
    );
    assert!(loader.loaded("usb_storage") && loader.loaded("usb-storage") && !loader.loaded("uas"));
}

#[test]
fn options_reach_insmod() {
    let fixture = Fixture::new();
    let recorder = Arc::new(Recorder::default());
    let mut config = modprobe_d(&fixture, "options usb-storage delay_use=0\n");
    config.add_cmdline(&["usbcore.autosuspend=-1", "usb_storage.quirks=0bc2:2100:u"]);
    config.add_options("uas", "from_etc_modules=1");
    let loader = loader(&fixture, config, &recorder);
    loader.load_now("uas").unwrap();
    assert_params(
        &recorder,
        &[
            ("usb_common", ""),
            ("usbcore", "autosuspend=-1"),
            ("scsi_mod", ""),
            ("usb_storage", "delay_use=0 quirks=0bc2:2100:u"),
            ("uas", "from_etc_modules=1"),
        ],
    );
}

/// The configuration of one modprobe.d file with TEXT in the fixture.
fn modprobe_d(fixture: &Fixture, text: &str) -> ModprobeConfig {
    let conf = fixture.dir.path().join("etc/modprobe.d");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(conf.join("test.conf"), text).unwrap();
    ModprobeConfig::load_dirs(&[&conf]).unwrap()
}

/// Each insertion the recorder saw, by module name with its parameters.
fn assert_params(recorder: &Recorder, want: &[(&str, &str)]) {
    let params: Vec<(String, String)> = recorder
        .calls()
        .into_iter()
        .map(|c| (c.name, c.params))
        .collect();
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(n, p)| (n.to_string(), p.to_string()))
        .collect();
    assert_eq!(params, want);
}

#[test]
fn builtin_modules_succeed_without_insmod() {
    let fixture = Fixture::new();
    let recorder = Arc::new(Recorder::default());
    let loader = loader(&fixture, common::config(), &recorder);
    for name in ["squashfs", "loop"] {
        loader.load_now(name).unwrap();
        assert!(!loader.loaded(name), "built-in modules are not inserted");
    }
    assert!(recorder.names().is_empty());
    assert!(loader.drain_log().is_empty());
}

#[test]
fn failing_dependency_fails_the_dependent_and_is_not_retried() {
    let fixture = Fixture::new();
    let recorder = Arc::new(Recorder::failing(&["jbd2"]));
    let loader = loader(&fixture, common::config(), &recorder);
    let err = loader.load_now("ext4").unwrap_err();
    assert_eq!(
        err,
        LoadError::Dependency {
            module: "ext4".into(),
            dependency: "jbd2".into()
        }
    );
    assert!(
        err.to_string().contains("jbd2") && err.to_string().contains("ext4"),
        "{err}"
    );
    assert!(!recorder.names().contains(&"ext4".to_string()));
    // Again, by alias and by name: jbd2 is not tried a second time.
    assert!(loader.load_now("fs-ext4").is_err());
    loader.request("ext4");
    assert!(loader.wait_idle(deadline()));
    let jbd2_calls = recorder.names().iter().filter(|n| *n == "jbd2").count();
    assert_eq!(jbd2_calls, 1);
    let log = loader.drain_log();
    let logged: Vec<(&str, bool)> = log
        .iter()
        .map(|e| (e.name.as_str(), e.result.is_ok()))
        .collect();
    assert_eq!(
        logged,
        [
            ("crc32c_intel", true),
            ("crc32c_generic", true),
            ("jbd2", false),
            ("ext4", false)
        ]
    );
    let jbd2 = log.iter().find(|e| e.name == "jbd2").unwrap();
    assert!(
        jbd2.result.as_ref().unwrap_err().contains("jbd2.ko.gz"),
        "{jbd2:?}"
    );
}

#[test]
fn failing_module_reports_its_own_error() {
    let fixture = Fixture::new();
    let recorder = Arc::new(Recorder::failing(&["virtio_blk"]));
    let loader = loader(&fixture, common::config(), &recorder);
    match loader.load_now("virtio_blk") {
        Err(LoadError::Failed { module, message }) => {
            assert_eq!(module, "virtio_blk");
            assert!(message.contains("virtio_blk.ko"), "{message}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(loader.loaded("virtio") && !loader.loaded("virtio_blk"));
}

#[test]
fn failing_softdep_does_not_stop_the_module() {
    let fixture = Fixture::new();
    let recorder = Arc::new(Recorder::failing(&["crc32c_intel"]));
    let loader = loader(&fixture, common::config(), &recorder);
    loader.load_now("ext4").unwrap();
    assert!(loader.loaded("ext4") && loader.loaded("crc32c_generic"));
    assert!(!loader.loaded("crc32c_intel"));
}

#[test]
fn missing_module_file_is_a_load_failure() {
    let fixture = Fixture::new();
    let recorder = Arc::new(Recorder::default());
    let loader = loader(&fixture, common::config(), &recorder);
    let err = loader.load_now("gone").unwrap_err();
    assert!(
        matches!(&err, LoadError::Failed { module, message } if module == "gone" && message.contains("gone.ko")),
        "{err:?}"
    );
    assert!(recorder.names().is_empty());
}

#[test]
fn unknown_names_are_recorded_as_missing() {
    let fixture = Fixture::new();
    let recorder = Arc::new(Recorder::default());
    let loader = loader(&fixture, common::config(), &recorder);
    assert_eq!(
        loader.load_now("no-such-module"),
        Err(LoadError::Plan(PlanError::Unknown {
            name: "no-such-module".into()
        }))
    );
    loader.request("no-such-module");
    loader.request("also-missing");
    assert!(loader.wait_idle(deadline()));
    let log = loader.drain_log();
    let names: Vec<&str> = log.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        ["no-such-module", "also-missing"],
        "one log line per missing name"
    );
    assert!(log.iter().all(|e| e.result.is_err()));
}

#[test]
fn busy_wait_idle_and_event_fd() {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

    let fixture = Fixture::new();
    let recorder = Arc::new(Recorder::gated());
    let loader = loader(&fixture, common::config(), &recorder);
    let readable = |loader: &Loader| {
        let mut fds = [PollFd::new(loader.event_fd(), PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::ZERO).unwrap() == 1
    };
    assert!(!loader.busy());
    assert!(!readable(&loader));
    loader.request("virtio_blk");
    assert!(loader.busy());
    recorder.wait_entered();
    assert!(loader.busy());
    assert!(!loader.wait_idle(Instant::now()), "still held at the gate");
    recorder.open_gate();
    assert!(loader.wait_idle(deadline()));
    assert!(!loader.busy());
    assert!(readable(&loader));
    loader.reset_event();
    assert!(!readable(&loader));
    assert!(loader.loaded("virtio_blk"));
}

/// A panic inside a worker job (here in insmod): the job is marked failed
/// with an error naming the module, busy() returns to false, wait_idle
/// returns, and the module is not left "loading" for later requests.
#[test]
fn panicking_job_fails_the_module_and_releases_busy() {
    let fixture = Fixture::new();
    let recorder = Arc::new(Recorder::panicking(&["virtio_blk"]));
    let loader = loader(&fixture, common::config(), &recorder);
    loader.request("virtio_blk");
    assert!(loader.wait_idle(deadline()), "wait_idle hung after a panic");
    assert!(!loader.busy());
    let log = loader.drain_log();
    let failed = log
        .iter()
        .find(|e| e.name == "virtio_blk")
        .unwrap_or_else(|| panic!("no event for virtio_blk: {log:?}"));
    let message = failed.result.clone().unwrap_err();
    assert!(
        message.contains("virtio_blk") && message.contains("panicked"),
        "{message}"
    );
    assert!(!loader.loaded("virtio_blk"));
    // A later synchronous request sees the failure instead of waiting on it.
    let err = loader.load_now("virtio_blk").unwrap_err();
    assert!(err.to_string().contains("virtio_blk"), "{err}");
    assert!(!loader.busy());
}

/// Coldplug's table: each modalias either loads now (ahead of the rest
/// when on the way to boot media) or is left to the new root, by the
/// paths of its modules in modules.dep.
#[test]
fn coldplug_requests_load_or_defer_by_module_kind() {
    use alpinit_kmod::{Deferral, Kind, Requested};

    let local = Deferral {
        enabled: true,
        network: false,
    };
    let network = Deferral {
        enabled: true,
        network: true,
    };
    let now = |critical| Requested::Queued { critical };
    let deferred = |kind, module: &str| Requested::Deferred {
        kind,
        modules: vec![module.to_owned()],
    };
    let cases: [(&str, Deferral, Requested); 16] = [
        (VIRTIO_BLK_MODALIAS, local, now(true)),
        (USB_STORAGE_MODALIAS, local, now(true)),
        (
            "pci:v00008086d00007010sv00001AF4sd00001100bc01sc01i80",
            local,
            now(true),
        ),
        (
            "pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00",
            local,
            deferred(Kind::Network, "e1000"),
        ),
        (
            "pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00",
            network,
            now(true),
        ),
        (
            "pci:v00001274d00005000sv00001AF4sd00001100bc04sc01i00",
            local,
            deferred(Kind::Sound, "snd_ens1370"),
        ),
        // GPUs stay: an image has them only for an early screen (kms).
        (
            "pci:v00001234d00001111sv00001AF4sd00001100bc03sc00i00",
            local,
            now(false),
        ),
        (
            "serio:ty01pr00id00ex00",
            local,
            deferred(Kind::Pointer, "psmouse"),
        ),
        (
            "input:b0011v0001p0001eAB41-e0,1,4,11,14,k71,72,ramlsfw",
            local,
            deferred(Kind::Pointer, "evdev"),
        ),
        // Keyboards stay: a passphrase or the recovery shell may need one.
        ("hid:b0003g0001v00000627p00000001", local, now(false)),
        (
            "pci:v00008086d00007113sv00001AF4sd00001100bc06sc80i00",
            local,
            deferred(Kind::Platform, "i2c_piix4"),
        ),
        (
            "pci:v00008086d000025ABsv00001AF4sd00001100bc08sc80i00",
            local,
            deferred(Kind::Platform, "i6300esb"),
        ),
        (
            "cpu:type:x86,ven0000fam0006mod003F:feature:,0054,0099",
            local,
            Requested::Deferred {
                kind: Kind::CpuFeature,
                modules: vec!["coretemp".into(), "aesni_intel".into()],
            },
        ),
        // One module on the way to boot media among the matches: all load.
        ("sound-mixed:x", local, now(true)),
        // Nothing in the image matches.
        (
            "pci:v0000FFFFd0000FFFFsv0sd0bc00sc00i00",
            local,
            Requested::Nothing,
        ),
        // Without a deferral (nlplug-findfs' tests, explicit loaders) the
        // same sound card loads.
        (
            "pci:v00001274d00005000sv00001AF4sd00001100bc04sc01i00",
            Deferral::default(),
            now(false),
        ),
    ];
    for (alias, deferral, want) in cases {
        let fixture = Fixture::new();
        let recorder = Arc::new(Recorder::default());
        let loader = loader(&fixture, common::config(), &recorder).with_deferral(deferral);
        let got = loader.request_alias(alias);
        assert_eq!(got, want, "{alias} with {deferral:?}");
        assert!(loader.wait_idle(deadline()));
        let inserted = !recorder.names().is_empty();
        assert_eq!(
            inserted,
            matches!(want, Requested::Queued { .. }),
            "{alias}: {:?}",
            recorder.names()
        );
    }
}

/// Explicit names are never deferred (`modules=`, `/etc/modules`, a file
/// system's module): a sound module asked for by name loads.
#[test]
fn requests_by_name_are_never_deferred() {
    let fixture = Fixture::new();
    let recorder = Arc::new(Recorder::default());
    let loader =
        loader(&fixture, common::config(), &recorder).with_deferral(alpinit_kmod::Deferral {
            enabled: true,
            network: false,
        });
    loader.request("snd-ens1370");
    loader.request("e1000");
    assert!(loader.wait_idle(deadline()));
    let mut names = recorder.names();
    names.sort();
    assert_eq!(names, ["e1000", "snd_ens1370"]);
}

/// Regression: ext4's chain waited out libata's probe of empty IDE ports
/// (`do_init_module` waits for all asynchronous work unless the module was
/// given `async_probe`), 50 ms of an idle CPU on the way to the boot medium.
#[test]
fn modules_that_drive_no_device_skip_the_wait_for_asynchronous_probes() {
    let fixture = Fixture::new();
    let recorder = Arc::new(Recorder::default());
    let config = modprobe_d(
        &fixture,
        "options ext4 debug_want_extra_isize=0\noptions jbd2 async_probe=0\n",
    );
    let loader = loader(&fixture, config, &recorder);
    loader.load_now("fs-ext4").unwrap();
    loader.load_now("uas").unwrap();
    assert_params(
        &recorder,
        &[
            ("crc32c_intel", "async_probe=1"),
            ("crc32c_generic", "async_probe=1"),
            ("jbd2", "async_probe=0"),
            ("mbcache", "async_probe=1"),
            ("crc16", "async_probe=1"),
            ("ext4", "debug_want_extra_isize=0 async_probe=1"),
            ("usb_common", ""),
            ("usbcore", ""),
            ("scsi_mod", ""),
            ("usb_storage", ""),
            ("uas", ""),
        ],
    );
}
