//! Archives that must be rejected with the sysroot and its surroundings unchanged.

use super::*;

fn reject_cases() -> Vec<RejectCase> {
    let d = Limits::default;
    let dotdot: Check = |e| {
        matches!(
            e,
            UnpackError::Name {
                reason: NameError::DotDot,
                ..
            }
        )
    };
    let through: Check = |e| matches!(e, UnpackError::ThroughSymlink { .. });
    let hard: Check = |e| matches!(e, UnpackError::HardLink { .. });
    let gzip: Check = |e| {
        matches!(
            e,
            UnpackError::Archive(ArchiveError::Gzip(GzipError::Corrupt(_)))
        )
    };
    let good = || {
        simple(|t| {
            t.dir("etc/", 0o755)
                .file("etc/motd", &[b'm'; 5000])
                .file("etc/issue", b"hi");
        })
    };
    vec![
        (
            "A1 ../x",
            no_setup,
            Box::new(|_| {
                simple(|t| {
                    t.file("ok", b"1").file("../x", b"x");
                })
            }),
            d(),
            dotdot,
        ),
        (
            "A1 a/../../x",
            no_setup,
            Box::new(|_| {
                simple(|t| {
                    t.file("a/../../x", b"x");
                })
            }),
            d(),
            dotdot,
        ),
        (
            "A1 ./../x",
            no_setup,
            Box::new(|_| {
                simple(|t| {
                    t.file("./../x", b"x");
                })
            }),
            d(),
            dotdot,
        ),
        (
            "A1 //..//x",
            no_setup,
            Box::new(|_| {
                simple(|t| {
                    t.file("//..//x", b"x");
                })
            }),
            d(),
            dotdot,
        ),
        (
            "A5 link -> abs outside, then link/passwd",
            no_setup,
            Box::new(|c| {
                simple(|t| {
                    t.symlink("link", &c.outside_str())
                        .file("link/passwd", b"pwned");
                })
            }),
            d(),
            through,
        ),
        (
            "A5 link -> ../../.., then link/pwned",
            no_setup,
            Box::new(|_| {
                simple(|t| {
                    t.symlink("link", "../../..").file("link/pwned", b"pwned");
                })
            }),
            d(),
            through,
        ),
        (
            "A6 etc -> /etc, then etc/motd",
            no_setup,
            Box::new(|_| {
                simple(|t| {
                    t.symlink("etc", "/etc").file("etc/motd", b"pwned");
                })
            }),
            d(),
            through,
        ),
        (
            "through symlink made by a later member",
            no_setup,
            Box::new(|_| {
                simple(|t| {
                    t.file("x/foo", b"1").symlink("x", "/");
                })
            }),
            d(),
            through,
        ),
        (
            "A8 hard link to ../../init, then data",
            no_setup,
            Box::new(|_| {
                simple(|t| {
                    t.hardlink("h", "../../outside/secret").file("h", b"pwned");
                })
            }),
            d(),
            hard,
        ),
        (
            "A8 hard link to an absolute outside file",
            no_setup,
            Box::new(|c| {
                simple(|t| {
                    let target = format!("{}/secret", c.outside_str());
                    t.hardlink("h", &target).file("h", b"pwned");
                })
            }),
            d(),
            hard,
        ),
        (
            "A9 hard link to a not-yet-seen member",
            no_setup,
            Box::new(|_| {
                simple(|t| {
                    t.hardlink("h", "f").file("f", b"1");
                })
            }),
            d(),
            hard,
        ),
        (
            "A9 hard link to a directory",
            no_setup,
            Box::new(|_| {
                simple(|t| {
                    t.dir("d/", 0o755).hardlink("h", "d");
                })
            }),
            d(),
            hard,
        ),
        (
            "A9 hard link to a symlink",
            no_setup,
            Box::new(|_| {
                simple(|t| {
                    t.symlink("s", "/etc/passwd").hardlink("h", "s");
                })
            }),
            d(),
            hard,
        ),
        (
            "A9 hard link to itself",
            no_setup,
            Box::new(|_| {
                simple(|t| {
                    t.file("h", b"1").hardlink("h", "h");
                })
            }),
            d(),
            hard,
        ),
        (
            "A9 hard link to a pre-existing sysroot file",
            no_setup,
            Box::new(|_| {
                simple(|t| {
                    t.hardlink("h", "etc/hostname");
                })
            }),
            d(),
            hard,
        ),
        (
            "A10 symlink chain then hard link through it",
            no_setup,
            Box::new(|_| {
                simple(|t| {
                    t.symlink("a/b/c/up", "../..")
                        .symlink("a/b/escape", "c/up/../..")
                        .hardlink("exfil", "a/b/escape/x");
                })
            }),
            d(),
            hard,
        ),
        (
            "file then child of the file",
            no_setup,
            Box::new(|_| {
                simple(|t| {
                    t.file("x", b"1").file("x/foo", b"2");
                })
            }),
            d(),
            |e| matches!(e, UnpackError::NotADirectory { .. }),
        ),
        (
            "directory with children replaced by a file",
            no_setup,
            Box::new(|_| {
                simple(|t| {
                    t.dir("x/", 0o755).file("x/foo", b"2").file("x", b"1");
                })
            }),
            d(),
            |e| matches!(e, UnpackError::NotADirectory { .. }),
        ),
        (
            "file over an existing sysroot directory",
            |c| {
                fs::create_dir_all(c.root.join("etc/conf.d")).unwrap();
                fs::write(c.root.join("etc/conf.d/x"), b"x").unwrap();
            },
            Box::new(|_| {
                simple(|t| {
                    t.file("new/file", b"1").file("etc/conf.d", b"1");
                })
            }),
            d(),
            |e| matches!(e, UnpackError::ReplacesDirectory { .. }),
        ),
        (
            "directory over a dangling sysroot symlink",
            |c| {
                symlink("/nonexistent", c.root.join("dangling")).unwrap();
            },
            Box::new(|_| {
                simple(|t| {
                    t.file("a/b", b"1").file("dangling/x", b"1");
                })
            }),
            d(),
            |e| matches!(e, UnpackError::Blocked { .. }),
        ),
        (
            "A18 NUL in PAX path",
            no_setup,
            Box::new(|_| {
                simple(|t| {
                    t.pax(&[("path", b"etc/a\0b")]).file("placeholder", b"1");
                })
            }),
            d(),
            |e| {
                matches!(
                    e,
                    UnpackError::Name {
                        reason: NameError::Nul,
                        ..
                    }
                )
            },
        ),
        (
            "A16 256-byte component",
            no_setup,
            Box::new(|_| {
                simple(|t| {
                    t.long_name(&[b'a'; 256]).file("placeholder", b"1");
                })
            }),
            d(),
            |e| {
                matches!(
                    e,
                    UnpackError::Name {
                        reason: NameError::ComponentTooLong { .. },
                        ..
                    }
                )
            },
        ),
        (
            "A16 5000-byte path",
            no_setup,
            Box::new(|_| {
                simple(|t| {
                    t.pax(&[("path", "d/".repeat(2500).as_bytes())])
                        .file("placeholder", b"1");
                })
            }),
            d(),
            |e| {
                matches!(
                    e,
                    UnpackError::Name {
                        reason: NameError::TooLong { .. },
                        ..
                    }
                )
            },
        ),
        (
            "A20 PAX record over the cap",
            no_setup,
            Box::new(|_| {
                simple(|t| {
                    t.pax(&[("comment", &vec![b'c'; 70_000])]).file("f", b"1");
                })
            }),
            d(),
            |e| matches!(e, UnpackError::Archive(ArchiveError::Extension { .. })),
        ),
        (
            "A20 GNU long name over the cap",
            no_setup,
            Box::new(|_| {
                simple(|t| {
                    t.long_name(&vec![b'a'; 70_000]).file("f", b"1");
                })
            }),
            d(),
            |e| matches!(e, UnpackError::Archive(ArchiveError::Extension { .. })),
        ),
        (
            "A14 uid 2^32",
            no_setup,
            Box::new(|_| {
                simple(|t| {
                    t.entry(
                        &H {
                            name: b"f",
                            uid: 1 << 32,
                            ..H::default()
                        },
                        b"",
                    );
                })
            }),
            d(),
            |e| {
                matches!(
                    e,
                    UnpackError::Archive(ArchiveError::Number { field: "uid", .. })
                )
            },
        ),
        (
            "A14 PAX uid over 2^32",
            no_setup,
            Box::new(|_| {
                simple(|t| {
                    t.pax(&[("uid", b"4294967296")]).file("f", b"1");
                })
            }),
            d(),
            |e| matches!(e, UnpackError::Archive(ArchiveError::Number { .. })),
        ),
        (
            "declared size larger than the data",
            no_setup,
            Box::new(|_| {
                let mut t = Tar::default();
                t.file("ok", b"1").header(&H {
                    name: b"big",
                    size: 1 << 20,
                    ..H::default()
                });
                t.buf.extend([b'd'; 512]);
                gz(&t.buf)
            }),
            d(),
            |e| matches!(e, UnpackError::Archive(ArchiveError::Truncated { .. })),
        ),
        (
            "C6 tar truncated inside a header",
            no_setup,
            Box::new(|_| {
                let mut t = Tar::default();
                t.file("ok", b"1");
                t.buf.extend([b'x'; 100]);
                gz(&t.buf)
            }),
            d(),
            |e| matches!(e, UnpackError::Archive(ArchiveError::Truncated { .. })),
        ),
        (
            "bad tar checksum",
            no_setup,
            Box::new(|_| {
                let mut t = Tar::default();
                t.file("a", b"1").file("b", b"2");
                t.buf[512 * 2 + 10] ^= 1;
                gz(&t.finish())
            }),
            d(),
            |e| {
                matches!(
                    e,
                    UnpackError::Archive(ArchiveError::Checksum { offset: 1024 })
                )
            },
        ),
        (
            "A22 entry-count limit",
            no_setup,
            Box::new(|_| {
                simple(|t| {
                    for i in 0..6 {
                        t.file(&format!("f{i}"), b"");
                    }
                })
            }),
            Limits {
                max_entries: 5,
                ..d()
            },
            |e| matches!(e, UnpackError::TooManyEntries { limit: 5 }),
        ),
        (
            "total-bytes limit",
            no_setup,
            Box::new(|_| {
                simple(|t| {
                    t.file("a", &[1u8; 40_000]).file("b", &[2u8; 40_000]);
                })
            }),
            Limits {
                max_total_bytes: 60_000,
                ..d()
            },
            |e| {
                matches!(
                    e,
                    UnpackError::Archive(ArchiveError::TotalBytes { limit: 60_000 })
                )
            },
        ),
        (
            "C1 bomb: 2 GiB declared",
            no_setup,
            Box::new(|_| {
                let mut t = Tar::default();
                t.header(&H {
                    name: b"zeros",
                    size: 2 << 30,
                    ..H::default()
                });
                t.buf.extend(vec![0u8; 4 << 20]);
                gz(&t.buf)
            }),
            d(),
            |e| matches!(e, UnpackError::Archive(ArchiveError::TotalBytes { .. })),
        ),
        (
            "C1 bomb: many members of zeros",
            no_setup,
            Box::new(|_| {
                let mut t = Tar::default();
                for i in 0..4 {
                    t.entry(
                        &H {
                            name: format!("z{i}").as_bytes(),
                            size: 2 << 20,
                            ..H::default()
                        },
                        &vec![0u8; 2 << 20],
                    );
                }
                gz(&t.finish())
            }),
            Limits {
                max_total_bytes: 5 << 20,
                ..d()
            },
            |e| matches!(e, UnpackError::Archive(ArchiveError::TotalBytes { .. })),
        ),
        (
            "C3 corrupt CRC",
            no_setup,
            Box::new(move |_| {
                let mut g = good();
                let n = g.len();
                g[n - 8] ^= 0xff;
                g
            }),
            d(),
            gzip,
        ),
        (
            "C2 truncated gzip",
            no_setup,
            Box::new(move |_| {
                let g = good();
                g[..g.len() - 20].to_vec()
            }),
            d(),
            gzip,
        ),
        (
            "C4 trailing garbage",
            no_setup,
            Box::new(move |_| {
                let mut g = good();
                g.extend(b"garbage");
                g
            }),
            d(),
            |e| {
                matches!(
                    e,
                    UnpackError::Archive(ArchiveError::Gzip(GzipError::TrailingGarbage))
                )
            },
        ),
        (
            "C5 HTML page",
            no_setup,
            Box::new(|_| b"<html><body>login</body></html>".to_vec()),
            d(),
            |e| {
                matches!(
                    e,
                    UnpackError::Archive(ArchiveError::Gzip(GzipError::NotGzip))
                )
            },
        ),
        (
            "C5 empty file",
            no_setup,
            Box::new(|_| Vec::new()),
            d(),
            |e| {
                matches!(
                    e,
                    UnpackError::Archive(ArchiveError::Gzip(GzipError::NotGzip))
                )
            },
        ),
        (
            "compressed-size limit",
            no_setup,
            Box::new(move |_| good()),
            Limits {
                max_compressed_bytes: 64,
                ..d()
            },
            |e| {
                matches!(
                    e,
                    UnpackError::Archive(ArchiveError::Gzip(GzipError::TooLarge { limit: 64 }))
                )
            },
        ),
    ]
}

#[test]
fn hostile_archives_are_rejected_without_any_change() {
    for resolver in [Resolver::Openat2, Resolver::Walk] {
        for (name, setup, build, limits, check) in reject_cases() {
            let (tmp, _ctx, res, unchanged) = run(setup, &*build, &limits, resolver);
            match res {
                Ok(r) => panic!("{name} ({resolver:?}): accepted: {r:?}"),
                Err(e) => assert!(check(&e), "{name} ({resolver:?}): wrong error: {e}"),
            }
            assert!(unchanged, "{name} ({resolver:?}): the tree changed");
            unlock(tmp.path());
        }
    }
}
