use super::db::parse_db;
use super::*;
use std::io::Read;

#[test]
fn base64_matches_rfc4648_vectors() {
    for (raw, enc) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64(raw.as_bytes()), enc, "{raw}");
    }
}

#[test]
fn installed_db_paragraphs_give_header_files_and_modes() {
    let text = "P:busybox-binsh\nV:1.36.1-r29\nD:busybox=1.36.1-r29\np:/bin/sh cmd:sh=1.36.1-r29\n\
F:bin\nR:sh\na:0:0:777\nZ:Q1pcfTfDNEbNKQc2s1tia7da05M8Q=\n\n\
P:musl\nV:1.2.5-r0\nF:lib\nM:0:0:755\nR:ld-musl-x86_64.so.1\na:0:0:755\nR:libc.so\n\n";
    let pkgs = parse_db(text);
    assert_eq!(pkgs.len(), 2);
    assert_eq!(pkgs[0].name(), "busybox-binsh");
    assert_eq!(pkgs[0].get('p'), Some("/bin/sh cmd:sh=1.36.1-r29"));
    assert_eq!(
        pkgs[0].entries,
        [
            Entry::Dir {
                path: "bin".into(),
                mode: 0o755
            },
            Entry::File {
                path: "bin/sh".into(),
                mode: 0o777
            }
        ]
    );
    assert_eq!(
        pkgs[1].entries[1..],
        [
            Entry::File {
                path: "lib/ld-musl-x86_64.so.1".into(),
                mode: 0o755
            },
            Entry::File {
                path: "lib/libc.so".into(),
                mode: 0o644
            }
        ]
    );
}

/// Members of a tar read as apk reads concatenated gzip streams.
fn members(streams: &[u8]) -> Vec<(String, Option<String>)> {
    let mut raw = Vec::new();
    flate2::read::MultiGzDecoder::new(streams)
        .read_to_end(&mut raw)
        .expect("gunzip");
    let mut out = Vec::new();
    let mut archive = tar::Archive::new(raw.as_slice());
    for e in archive.entries().expect("entries") {
        let mut e = e.expect("entry");
        let sum = e.pax_extensions().expect("pax").and_then(|mut exts| {
            exts.find_map(|x| {
                let x = x.ok()?;
                (x.key().ok()? == "APK-TOOLS.checksum.SHA1")
                    .then(|| x.value().ok().map(str::to_owned))?
            })
        });
        let name = e.path().expect("path").to_string_lossy().into_owned();
        out.push((name, sum));
    }
    out
}

#[test]
fn cut_streams_continue_into_the_next_one_as_apk_reads_them() {
    let a = gzip(
        &tar(
            &[Member::File {
                path: ".SIGN.RSA.k.rsa.pub".into(),
                mode: 0o644,
                data: vec![1; 10],
            }],
            0,
            false,
            true,
        )
        .expect("tar"),
    )
    .expect("gz");
    let b = gzip(
        &tar(
            &[
                Member::Dir {
                    path: "bin/".into(),
                    mode: 0o755,
                },
                Member::File {
                    path: "bin/x".into(),
                    mode: 0o755,
                    data: b"abc".to_vec(),
                },
                Member::Symlink {
                    path: "bin/y".into(),
                    target: "x".into(),
                },
            ],
            0,
            true,
            false,
        )
        .expect("tar"),
    )
    .expect("gz");
    let mut both = a.clone();
    both.extend_from_slice(&b);
    let got = members(&both);
    let sha1_abc = "a9993e364706816aba3e25717850c26c9cd0d89d";
    let sha1_x = hex(&sha1(b"x"));
    assert_eq!(
        got,
        [
            (".SIGN.RSA.k.rsa.pub".to_string(), None),
            ("bin/".to_string(), None),
            ("bin/x".to_string(), Some(sha1_abc.to_string())),
            ("bin/y".to_string(), Some(sha1_x)),
        ]
    );
    // Without the cut, the reader stops at the first stream's end marker.
    let uncut = gzip(
        &tar(
            &[Member::File {
                path: ".SIGN.RSA.k.rsa.pub".into(),
                mode: 0o644,
                data: vec![1; 10],
            }],
            0,
            false,
            false,
        )
        .expect("tar"),
    )
    .expect("gz");
    let mut stopped = uncut;
    stopped.extend_from_slice(&b);
    assert_eq!(members(&stopped).len(), 1);
}

#[test]
fn index_entry_carries_identity_size_and_dependencies() {
    let pkg = meta_package(
        "alpine-base",
        "3.20.3-r0",
        &["busybox", "musl"],
        Arch::X86_64,
    );
    let entry = index_entry(&pkg, &[0u8; 20], 1234);
    assert!(
        entry.starts_with(
            "C:Q1AAAAAAAAAAAAAAAAAAAAAAAAAAA=\nP:alpine-base\nV:3.20.3-r0\nA:x86_64\nS:1234\n"
        ),
        "{entry}"
    );
    assert!(entry.contains("\nD:busybox musl\n"), "{entry}");
    assert!(entry.ends_with("\n\n"));
}

#[test]
fn pax_record_length_counts_itself() {
    let r = pax_record("APK-TOOLS.checksum.SHA1", &"a".repeat(40));
    assert_eq!(r.len(), 68);
    assert!(r.starts_with("68 APK-TOOLS.checksum.SHA1="));
    assert_eq!(pax_record("k", "v"), "6 k=v\n");
    let r = pax_record("k", &"v".repeat(95));
    assert_eq!(r.len(), 102);
    assert!(r.starts_with("102 "));
}

/// The gzip streams of an `.apk`, split where each one ends.
fn streams(mut bytes: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let mut d = flate2::bufread::GzDecoder::new(bytes);
        let mut raw = Vec::new();
        d.read_to_end(&mut raw).expect("gunzip");
        let rest = d.into_inner();
        out.push((bytes[..bytes.len() - rest.len()].to_vec(), raw));
        bytes = rest;
    }
    out
}

#[test]
fn built_package_has_signed_control_identity_and_datahash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("bin")).expect("mkdir");
    std::fs::write(root.join("bin/tool"), b"#!/bin/sh\n").expect("write");
    std::os::unix::fs::symlink("tool", root.join("bin/alias")).expect("symlink");
    let db = "P:tool\nV:1.0-r0\nA:x86_64\nI:10\nt:1700000000\nD:musl\nF:bin\nR:tool\na:0:0:755\nR:alias\n\n";
    let pkg = &parse_db(db)[0];
    let key = key_in(&dir.path().join("keys"), "unit").expect("key");
    assert!(key.name.starts_with("unit-") && key.name.ends_with(".rsa.pub"));
    let built = build_package(pkg, &root, &key).expect("build");
    let parts = streams(&built.bytes);
    assert_eq!(parts.len(), 3, "signature, control, data");
    let (control_gz, control) = &parts[1];
    let (data_gz, data) = &parts[2];
    assert_eq!(built.identity, sha1(control_gz));
    let info = String::from_utf8_lossy(control);
    assert!(
        info.contains("pkgname = tool\n") && info.contains("depend = musl\n"),
        "{info}"
    );
    assert!(
        info.contains(&format!("datahash = {}\n", hex(&sha256(data_gz)))),
        "{info}"
    );
    // Only the data stream ends the archive.
    assert!(!control.ends_with(&[0u8; 1024]));
    assert!(data.ends_with(&[0u8; 1024]));
    // The signature member is named after the key and verifies the control stream.
    let sig_tar = &parts[0].1;
    let name = format!(".SIGN.RSA.{}", key.name);
    assert_eq!(&sig_tar[..name.len()], name.as_bytes());
    let size = usize::from_str_radix(
        std::str::from_utf8(&sig_tar[124..135])
            .expect("size")
            .trim_matches('\0'),
        8,
    )
    .expect("octal");
    let sig = dir.path().join("sig");
    let signed = dir.path().join("control.gz");
    std::fs::write(&sig, &sig_tar[512..512 + size]).expect("write");
    std::fs::write(&signed, control_gz).expect("write");
    let ok = std::process::Command::new("openssl")
        .args(["dgst", "-sha1", "-verify"])
        .arg(&key.public)
        .arg("-signature")
        .arg(&sig)
        .arg(&signed)
        .output()
        .expect("openssl");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    assert!(built
        .index_entry
        .starts_with(&format!("C:Q1{}\nP:tool\n", base64(&built.identity))));
    assert_eq!(
        built.cache_name(),
        format!("tool-1.0-r0.{}.apk", hex(&built.identity[..4]))
    );
}

#[test]
fn aarch64_meta_package_and_repository_are_named_for_aarch64() {
    let pkg = meta_package("alpine-base", "3.20.3-r0", &["musl"], Arch::Aarch64);
    let entry = index_entry(&pkg, &[0u8; 20], 1);
    assert!(entry.contains("\nA:aarch64\n"), "{entry}");
    let dir = tempfile::tempdir().expect("tempdir");
    let key = key_in(&dir.path().join("keys"), "t").expect("key");
    let built = build_package(&pkg, dir.path(), &key).expect("build");
    let idx = write_repository(&dir.path().join("apks"), &[&built], &key, Arch::Aarch64)
        .expect("repository");
    assert_eq!(idx, dir.path().join("apks/aarch64/APKINDEX.tar.gz"));
    assert!(dir
        .path()
        .join("apks/aarch64")
        .join(built.file_name())
        .is_file());
    assert!(!dir.path().join("apks/x86_64").exists());
}

#[test]
fn aarch64_image_carries_the_aarch64_musl_loader() {
    let paths = image_paths(Arch::Aarch64);
    assert!(
        paths.contains(&"lib/ld-musl-aarch64.so.1".to_string()),
        "{paths:?}"
    );
    assert!(
        paths.contains(&"lib/libc.musl-aarch64.so.1".to_string()),
        "{paths:?}"
    );
    assert!(paths.contains(&"sbin/apk".to_string()), "{paths:?}");
    assert!(!paths.iter().any(|p| p.contains("x86_64")), "{paths:?}");
}
