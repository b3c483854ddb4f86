//! Archives that must unpack, with what they must produce.

use super::*;

fn mode_of(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

fn accept_cases() -> Vec<AcceptCase> {
    let usr_merge_build = |_: &Ctx| {
        simple(|t| {
            t.dir("bin/", 0o755).file("bin/foo", b"foo");
        })
    };
    let usr_merge_check: Verify = |c, r| {
        assert!(fs::symlink_metadata(c.root.join("bin"))
            .unwrap()
            .file_type()
            .is_symlink());
        let m = fs::symlink_metadata(c.root.join("usr/bin/foo")).unwrap();
        assert!(m.file_type().is_file());
        assert_eq!(fs::read(c.root.join("usr/bin/foo")).unwrap(), b"foo");
        assert_eq!(r.members, ["bin/", "bin/foo"]);
    };
    vec![
        (
            "typical lbu overlay",
            no_setup,
            Box::new(|_| {
                simple(|t| {
                    t.dir("etc/", 0o755)
                        .entry(
                            &H {
                                name: b"etc/hostname",
                                size: 4,
                                mtime: 1_234_567_890,
                                ..H::default()
                            },
                            b"box\n",
                        )
                        .entry(
                            &H {
                                name: b"etc/shadow",
                                size: 6,
                                mode: 0o640,
                                gid: 42,
                                ..H::default()
                            },
                            b"root::",
                        )
                        .dir("etc/apk/", 0o755)
                        .symlink("etc/apk/cache", "/media/usb/cache")
                        .symlink("etc/runlevels/default/sshd", "/etc/init.d/sshd");
                })
            }),
            |c, r| {
                assert_eq!(fs::read(c.root.join("etc/hostname")).unwrap(), b"box\n");
                assert_eq!(
                    fs::metadata(c.root.join("etc/hostname")).unwrap().mtime(),
                    1_234_567_890
                );
                assert_eq!(mode_of(&c.root.join("etc/shadow")), 0o640);
                assert_eq!(
                    fs::read_link(c.root.join("etc/apk/cache")).unwrap(),
                    Path::new("/media/usb/cache")
                );
                assert_eq!(
                    fs::read_link(c.root.join("etc/runlevels/default/sshd")).unwrap(),
                    Path::new("/etc/init.d/sshd")
                );
                assert_eq!(
                    r.members,
                    [
                        "etc/",
                        "etc/hostname",
                        "etc/shadow",
                        "etc/apk/",
                        "etc/apk/cache",
                        "etc/runlevels/default/sshd",
                    ]
                );
                assert_eq!((r.entries, r.bytes), (6, 10));
                assert!(r.warnings.is_empty(), "{:?}", r.warnings);
                if nix::unistd::geteuid().is_root() {
                    assert_eq!(fs::metadata(c.root.join("etc/shadow")).unwrap().gid(), 42);
                }
            },
        ),
        (
            "A2 absolute names are stripped",
            no_setup,
            Box::new(|_| {
                simple(|t| {
                    t.file("/etc/motd", b"m").file("/etc/issue", b"i");
                })
            }),
            |c, r| {
                assert_eq!(fs::read(c.root.join("etc/motd")).unwrap(), b"m");
                assert_eq!(r.members, ["etc/motd", "etc/issue"]);
                assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
            },
        ),
        (
            "A3 redundant separators",
            no_setup,
            Box::new(|_| {
                simple(|t| {
                    t.file("etc//hosts", b"1").file("./etc/./hosts", b"2");
                })
            }),
            |c, _| {
                assert_eq!(fs::read(c.root.join("etc/hosts")).unwrap(), b"2");
            },
        ),
        (
            "A3 old-style directory name",
            no_setup,
            Box::new(|_| {
                simple(|t| {
                    t.header(&H {
                        name: b"olddir/",
                        mode: 0o750,
                        ..H::default()
                    })
                    .file("olddir/f", b"1");
                })
            }),
            |c, _| {
                assert!(c.root.join("olddir").is_dir());
                assert_eq!(mode_of(&c.root.join("olddir")), 0o750);
            },
        ),
        (
            "A12 device nodes, FIFO and unknown types are skipped",
            no_setup,
            Box::new(|_| {
                simple(|t| {
                    t.header(&H {
                        name: b"dev/mem",
                        flag: b'3',
                        mode: 0o666,
                        ..H::default()
                    })
                    .header(&H {
                        name: b"dev/sda",
                        flag: b'4',
                        ..H::default()
                    })
                    .header(&H {
                        name: b"fifo",
                        flag: b'6',
                        ..H::default()
                    })
                    .entry(
                        &H {
                            name: b"odd",
                            flag: b'Z',
                            size: 3,
                            ..H::default()
                        },
                        b"zzz",
                    )
                    .file("etc/after", b"ok");
                })
            }),
            |c, r| {
                assert!(
                    !c.root.join("dev").exists()
                        && !c.root.join("fifo").exists()
                        && !c.root.join("odd").exists()
                );
                assert_eq!(fs::read(c.root.join("etc/after")).unwrap(), b"ok");
                assert_eq!(r.warnings.len(), 4, "{:?}", r.warnings);
                assert!(
                    r.warnings[0].contains("character device") && r.warnings[0].contains("dev/mem")
                );
                assert_eq!(r.members, ["etc/after"]);
            },
        ),
        (
            "A13 setuid kept for uid 0, dropped for uid 1000",
            no_setup,
            Box::new(|_| {
                simple(|t| {
                    t.entry(
                        &H {
                            name: b"usr/bin/rootsuid",
                            mode: 0o4755,
                            size: 1,
                            ..H::default()
                        },
                        b"x",
                    )
                    .entry(
                        &H {
                            name: b"usr/bin/usersuid",
                            mode: 0o6755,
                            uid: 1000,
                            gid: 1000,
                            size: 1,
                            ..H::default()
                        },
                        b"x",
                    )
                    .dir("tmp/", 0o1777);
                })
            }),
            |c, _| {
                assert_eq!(mode_of(&c.root.join("usr/bin/rootsuid")), 0o4755);
                assert_eq!(mode_of(&c.root.join("usr/bin/usersuid")), 0o755);
                assert_eq!(mode_of(&c.root.join("tmp")), 0o1777);
            },
        ),
        (
            "A11 duplicates: last wins",
            no_setup,
            Box::new(|_| {
                simple(|t| {
                    t.file("x", b"one")
                        .dir("x/", 0o755)
                        .symlink("x", "/etc")
                        .file("x", b"last")
                        .file("y", b"first")
                        .file("y", b"second");
                })
            }),
            |c, r| {
                assert!(fs::symlink_metadata(c.root.join("x")).unwrap().is_file());
                assert_eq!(fs::read(c.root.join("x")).unwrap(), b"last");
                assert_eq!(fs::read(c.root.join("y")).unwrap(), b"second");
                assert_eq!(r.members.len(), 6);
            },
        ),
        (
            "A7 symlink to / then directory with the same name",
            no_setup,
            Box::new(|_| {
                simple(|t| {
                    t.symlink("d", "/").dir("d/", 0o777);
                })
            }),
            |c, _| {
                assert!(fs::symlink_metadata(c.root.join("d")).unwrap().is_dir());
                assert_eq!(mode_of(&c.root.join("d")), 0o777);
            },
        ),
        (
            "long names via GNU long name and PAX path",
            no_setup,
            Box::new(|_| {
                simple(|t| {
                    let long = format!("etc/{}/gnu", "g".repeat(150));
                    let pax = format!("etc/{}/pax", "p".repeat(200));
                    t.long_name(long.as_bytes())
                        .file("placeholder1", b"g")
                        .pax(&[
                            ("path", pax.as_bytes()),
                            ("SCHILY.xattr.security.capability", b"\x01\x02"),
                        ])
                        .file("placeholder2", b"p");
                })
            }),
            |c, r| {
                assert_eq!(
                    fs::read(c.root.join(format!("etc/{}/gnu", "g".repeat(150)))).unwrap(),
                    b"g"
                );
                assert_eq!(
                    fs::read(c.root.join(format!("etc/{}/pax", "p".repeat(200)))).unwrap(),
                    b"p"
                );
                assert!(
                    !c.root.join("placeholder1").exists() && !c.root.join("placeholder2").exists()
                );
                assert_eq!(r.members.len(), 2);
            },
        ),
        (
            "A19 PAX size wins over the ustar size",
            no_setup,
            Box::new(|_| {
                simple(|t| {
                    t.pax(&[("size", b"5")])
                        .header(&H {
                            name: b"f",
                            size: 0,
                            ..H::default()
                        })
                        .data(b"12345")
                        .file("g", b"after");
                })
            }),
            |c, _| {
                assert_eq!(fs::read(c.root.join("f")).unwrap(), b"12345");
                assert_eq!(fs::read(c.root.join("g")).unwrap(), b"after");
            },
        ),
        (
            "empty archive",
            no_setup,
            Box::new(|_| gz(&[0u8; 1024])),
            |c, r| {
                assert_eq!(r, &UnpackReport::default());
                assert_eq!(fs::read_dir(&c.root).unwrap().count(), 2);
            },
        ),
        (
            "empty tar stream without end blocks",
            no_setup,
            Box::new(|_| gz(b"")),
            |_, r| {
                assert!(r.members.is_empty());
            },
        ),
        (
            "end blocks are optional",
            no_setup,
            Box::new(|_| {
                let mut t = Tar::default();
                t.file("a", b"1");
                gz(&t.buf)
            }),
            |c, _| assert_eq!(fs::read(c.root.join("a")).unwrap(), b"1"),
        ),
        (
            "multi-member gzip with zero padding",
            no_setup,
            Box::new(|_| {
                let mut t = Tar::default();
                t.file("a", b"1");
                let mut data = gz(&t.buf);
                let mut u = Tar::default();
                u.file("b", b"2");
                data.extend(gz(&u.finish()));
                data.extend([0u8; 4096]);
                data
            }),
            |c, _| {
                assert_eq!(fs::read(c.root.join("a")).unwrap(), b"1");
                assert_eq!(fs::read(c.root.join("b")).unwrap(), b"2");
            },
        ),
        (
            "A15 directory mode 0000 before its children",
            no_setup,
            Box::new(|_| {
                simple(|t| {
                    t.dir("locked/", 0o000)
                        .dir("locked/sub/", 0o000)
                        .file("locked/sub/f", b"inside");
                })
            }),
            |c, _| {
                assert_eq!(mode_of(&c.root.join("locked")), 0);
                unlock(&c.root);
                assert_eq!(fs::read(c.root.join("locked/sub/f")).unwrap(), b"inside");
            },
        ),
        (
            "usr-merge with a relative symlink",
            |c| {
                fs::create_dir_all(c.root.join("usr/bin")).unwrap();
                symlink("usr/bin", c.root.join("bin")).unwrap();
            },
            Box::new(usr_merge_build),
            usr_merge_check,
        ),
        (
            "usr-merge with an absolute symlink",
            |c| {
                fs::create_dir_all(c.root.join("usr/bin")).unwrap();
                symlink("/usr/bin", c.root.join("bin")).unwrap();
            },
            Box::new(usr_merge_build),
            usr_merge_check,
        ),
        (
            "hard link to an earlier file",
            no_setup,
            Box::new(|_| {
                simple(|t| {
                    t.file("a", b"data")
                        .hardlink("dir/h", "a")
                        .hardlink("h2", "dir/h");
                })
            }),
            |c, _| {
                let ino = |p: &str| fs::metadata(c.root.join(p)).unwrap().ino();
                assert_eq!(ino("a"), ino("dir/h"));
                assert_eq!(ino("a"), ino("h2"));
                assert_eq!(fs::read(c.root.join("h2")).unwrap(), b"data");
            },
        ),
        (
            "existing file and symlink are replaced, not written through",
            |c| {
                symlink(c.outside.join("secret"), c.root.join("etc/motd")).unwrap();
            },
            Box::new(|_| {
                simple(|t| {
                    t.file("etc/hostname", b"new").file("etc/motd", b"motd");
                })
            }),
            |c, _| {
                assert_eq!(fs::read(c.root.join("etc/hostname")).unwrap(), b"new");
                assert!(fs::symlink_metadata(c.root.join("etc/motd"))
                    .unwrap()
                    .is_file());
                assert_eq!(fs::read(c.outside.join("secret")).unwrap(), b"secret");
            },
        ),
    ]
}

#[test]
fn ordinary_and_odd_archives_unpack_as_documented() {
    for resolver in [Resolver::Openat2, Resolver::Walk] {
        for (name, setup, build, verify) in accept_cases() {
            let (tmp, ctx, res, _) = run(setup, &*build, &Limits::default(), resolver);
            match res {
                Ok(r) => verify(&ctx, &r),
                Err(e) => panic!("{name} ({resolver:?}): rejected: {e}"),
            }
            let left: Vec<_> = snapshot(tmp.path())
                .into_keys()
                .filter(|k| k.contains(".apkovl-"))
                .collect();
            assert!(left.is_empty(), "{name}: temporary files left: {left:?}");
            assert_eq!(
                fs::read(ctx.outside.join("etc/passwd")).unwrap(),
                b"root:x:0:0"
            );
            unlock(tmp.path());
        }
    }
}
