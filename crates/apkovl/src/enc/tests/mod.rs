use std::io::Write;
use std::process::{Command, Stdio};

use super::*;

/// `openssl enc` as lbu runs it; `None` (with a note) when openssl is missing.
pub(crate) fn openssl(args: &[&str], input: &[u8]) -> Option<Vec<u8>> {
    let child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        eprintln!("note: `openssl` not found, test skipped");
        return None;
    };
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "openssl {args:?} failed");
    Some(out.stdout)
}

fn md_name(d: Digest) -> &'static str {
    match d {
        Digest::Sha256 => "sha256",
        Digest::Md5 => "md5",
    }
}

const CIPHERS: [(Cipher, &str); 3] = [
    (Cipher::Aes128Cbc, "aes-128-cbc"),
    (Cipher::Aes192Cbc, "aes-192-cbc"),
    (Cipher::Aes256Cbc, "aes-256-cbc"),
];

/// Hands out at most `step` bytes per read, to exercise block boundaries.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.step).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[test]
fn suffixes() {
    let cases = [
        ("h.apkovl.tar.gz", Ok(None)),
        ("h.apkovl.tar.gz.aes-256-cbc", Ok(Some(Cipher::Aes256Cbc))),
        ("h.apkovl.tar.gz.aes256", Ok(Some(Cipher::Aes256Cbc))),
        ("h.apkovl.tar.gz.aes-192-cbc", Ok(Some(Cipher::Aes192Cbc))),
        ("h.apkovl.tar.gz.aes-128-cbc", Ok(Some(Cipher::Aes128Cbc))),
        ("h.apkovl.tar.gz.des3", Err("Cipher des3 is not supported")),
        (
            "h.apkovl.tar.gz.chacha20",
            Err("Cipher chacha20 is not supported"),
        ),
        ("h.apkovl.tar.gz.bak", Err("Cipher bak is not supported")),
    ];
    for (name, want) in cases {
        let got = cipher_from_suffix(name).map_err(|e| e.to_string());
        assert_eq!(got, want.map_err(str::to_owned), "{name}");
    }
}

#[test]
fn padding() {
    let mut b = [0u8; BLOCK];
    b[BLOCK - 1] = 1;
    assert_eq!(unpad(&b), Some(15));
    assert_eq!(unpad(&[16u8; BLOCK]), Some(0));
    assert_eq!(unpad(&[0u8; BLOCK]), None);
    assert_eq!(unpad(&[17u8; BLOCK]), None);
    b[BLOCK - 1] = 2;
    assert_eq!(unpad(&b), None);
}

#[test]
fn key_derivation_matches_openssl() {
    for (cipher, name) in CIPHERS {
        for digest in [Digest::Sha256, Digest::Md5] {
            let args = [
                "enc",
                &format!("-{name}"),
                "-P",
                "-S",
                "0102030405060708",
                "-md",
                md_name(digest),
                "-pass",
                "pass:secret",
            ];
            let Some(out) = openssl(&args, b"") else {
                return;
            };
            let out = String::from_utf8(out).unwrap();
            let field = |k: &str| {
                out.lines()
                    .find_map(|l| l.trim().strip_prefix(k))
                    .map(|v| v.trim().trim_start_matches('=').trim().to_ascii_lowercase())
                    .unwrap()
            };
            let (key, iv) = derive(digest, cipher, &[1, 2, 3, 4, 5, 6, 7, 8], b"secret");
            let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
            assert_eq!(hex(&key), field("key"), "{name} {digest:?}");
            assert_eq!(hex(&iv), field("iv"), "{name} {digest:?}");
        }
    }
}

#[test]
fn streaming_decryption_matches_openssl() {
    let mut x: u32 = 7;
    let big: Vec<u8> = (0..100_003)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (x >> 16) as u8
        })
        .collect();
    for len in [0, 1, 15, 16, 17, 70_001] {
        let plain = &big[..len];
        for (cipher, name) in CIPHERS {
            for digest in [Digest::Sha256, Digest::Md5] {
                let args = [
                    "enc",
                    &format!("-{name}"),
                    "-salt",
                    "-md",
                    md_name(digest),
                    "-pass",
                    "pass:pw",
                ];
                let Some(ct) = openssl(&args, plain) else {
                    return;
                };
                for step in [1, 16, 7000, usize::MAX] {
                    if step == 1 && len > 100 {
                        continue;
                    }
                    let src = Trickle { data: &ct, step };
                    let mut out = Vec::new();
                    decrypt_reader(src, cipher, digest, b"pw")
                        .unwrap()
                        .read_to_end(&mut out)
                        .unwrap();
                    assert_eq!(out, plain, "{name} {digest:?} len {len} step {step}");
                }
                // The wrong digest or password ends in bad padding (or garbage that the
                // gzip layer rejects); it never passes silently as the right plaintext.
                let mut out = Vec::new();
                let res = decrypt_reader(&ct[..], cipher, digest, b"wrong")
                    .unwrap()
                    .read_to_end(&mut out);
                assert!(res.is_err() || out != plain, "{name} {digest:?} len {len}");
            }
        }
    }
}

#[test]
fn broken_inputs() {
    let Some(ct) = openssl(
        &[
            "enc",
            "-aes-256-cbc",
            "-salt",
            "-md",
            "sha256",
            "-pass",
            "pass:pw",
        ],
        &[5u8; 100],
    ) else {
        return;
    };
    let read = |data: &[u8]| -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        decrypt_reader(data, Cipher::Aes256Cbc, Digest::Sha256, b"pw")
            .map_err(|e| e.to_string())?
            .read_to_end(&mut out)
            .map_err(|e| e.to_string())?;
        Ok(out)
    };
    assert_eq!(read(&ct).unwrap(), vec![5u8; 100]);
    let mut bad_pad = ct.clone();
    let n = bad_pad.len();
    bad_pad[n - 17] ^= 0x01; // flips the last plaintext byte through CBC
    let cases: [(&str, &[u8], &str); 5] = [
        ("cut mid-block", &ct[..ct.len() - 5], "truncated"),
        ("header only", &ct[..16], "truncated"),
        ("no header", b"plain data here.................", "Salted__"),
        ("short header", b"Salted__", "Salted__"),
        ("bad padding", &bad_pad, "padding"),
    ];
    for (name, data, want) in cases {
        let err = read(data).unwrap_err();
        assert!(err.contains(want), "{name}: {err}");
    }
}
