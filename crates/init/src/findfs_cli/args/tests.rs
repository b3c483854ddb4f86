use super::*;
use std::path::Path;

fn argv(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_owned).collect()
}

fn run(s: &str) -> Args {
    match parse(&argv(s)) {
        ParseOutcome::Run(a) => *a,
        other => panic!("{s}: {other:?}"),
    }
}

#[test]
fn alpine_diskless_invocation() {
    let a = run("-p /sbin/mdev -t 3000 -b /tmp/repositories -a /tmp/apkovls");
    assert_eq!(a.apkovls_file.as_deref(), Some(Path::new("/tmp/apkovls")));
    assert_eq!(
        a.repos_file.as_deref(),
        Some(Path::new("/tmp/repositories"))
    );
    assert_eq!(a.timeout_ms, Some(3000));
    assert_eq!(a.event_handler.as_deref(), Some("/sbin/mdev"));
    assert_eq!(a.device, None);
}

#[test]
fn alpine_root_invocation_with_device_and_inline_values() {
    let a = run("-p /sbin/mdev -d -U8388608 -n UUID=1234 extra");
    assert!(a.debug && a.allow_not_found);
    assert_eq!(a.uevent_buf_size, Some(8 << 20));
    assert_eq!(a.device.as_deref(), Some("UUID=1234"));
}

/// Alpine's init with `cryptroot=`: every LUKS option, as nlplug reads them.
#[test]
fn alpine_crypt_invocation() {
    let a = run(
        "-p /sbin/mdev -c UUID=abcd -H /boot/hdr.img -k /crypto_keyfile.bin:512:64 -m root -o 4096 -D UUID=root",
    );
    assert_eq!(
        a.crypt,
        Crypt {
            device: Some("UUID=abcd".into()),
            header: Some("/boot/hdr.img".into()),
            key: Some("/crypto_keyfile.bin".into()),
            key_range: Some((512, 64)),
            name: Some("root".into()),
            offset: Some(4096),
            discards: true,
        }
    );
    assert_eq!(a.device.as_deref(), Some("UUID=root"));
}

/// getopt's forms: clusters, attached values, long names with `=` or a
/// separate value, unambiguous prefixes, `--`, operands anywhere.
#[test]
fn getopt_forms_give_the_same_arguments() {
    let want = run("-d -n -a /tmp/a -f block sda1");
    for form in [
        "-dn -a /tmp/a -f block sda1",
        "-dna /tmp/a -fblock sda1",
        "-nda/tmp/a -f block sda1",
        "sda1 -d -n -a /tmp/a -f block",
        "--debug --allow-not-found --apkovls-file=/tmp/a --filter block sda1",
        "--deb --allow --apkovls /tmp/a --filter=block -- sda1",
        "-d -n -a /tmp/a -f block -- sda1 -x",
    ] {
        assert_eq!(run(form), want, "{form}");
    }
}

#[test]
fn key_ranges_are_only_a_trailing_pair_of_numbers() {
    for (given, key, range) in [
        ("/k.bin", "/k.bin", None),
        ("/k.bin:10:20", "/k.bin", Some((10, 20))),
        ("/dev/disk/by-id/a:b", "/dev/disk/by-id/a:b", None),
        ("UUID=x:1:2", "UUID=x", Some((1, 2))),
        ("/k:x:2", "/k:x:2", None),
        (":1:2", ":1:2", None),
    ] {
        let a = run(&format!("-k {given}"));
        assert_eq!(a.crypt.key.as_deref(), Some(key), "{given}");
        assert_eq!(a.crypt.key_range, range, "{given}");
    }
}

#[test]
fn bad_options_are_usage_errors() {
    for (bad, why) in [
        ("-Z", "invalid option -- 'Z'"),
        ("-dZ", "invalid option -- 'Z'"),
        ("-a", "option requires an argument -- 'a'"),
        ("-t abc", "-t: not a number of ms: abc"),
        ("-U x", "-U: not a size: x"),
        ("-o 12k", "12k: not an offset"),
        ("--nope", "unrecognized option '--nope'"),
        ("--crypt", "option '--crypt' is ambiguous"),
        ("--timeout", "option '--timeout' requires an argument"),
        ("--debug=1", "option '--debug' doesn't allow an argument"),
    ] {
        assert_eq!(parse(&argv(bad)), ParseOutcome::Usage(why.into()), "{bad}");
    }
    assert_eq!(parse(&argv("-h")), ParseOutcome::Help);
    assert_eq!(parse(&argv("-dh")), ParseOutcome::Help);
    assert_eq!(parse(&argv("--help")), ParseOutcome::Help);
}

/// nlplug's `--allow-not-found` takes an argument by mistake (reference
/// §2.11); here it is a flag, and a value given with `=` is tolerated.
#[test]
fn allow_not_found_long_form_is_a_flag() {
    let a = run("--allow-not-found UUID=1");
    assert!(a.allow_not_found);
    assert_eq!(a.device.as_deref(), Some("UUID=1"));
    assert!(run("--allow-not-found=yes").allow_not_found);
}

/// Regression: `-é` was sliced at byte 2, inside the `é`, and panicked.
#[test]
fn non_ascii_options_are_usage_errors_not_panics() {
    for (bad, opt) in [("-é", 'é'), ("-éx", 'é'), ("-€", '€'), ("-dé", 'é')] {
        assert_eq!(
            parse(&[bad.to_owned()]),
            ParseOutcome::Usage(format!("invalid option -- '{opt}'")),
            "{bad}"
        );
    }
    assert_eq!(run("-aé").apkovls_file.as_deref(), Some(Path::new("é")));
    assert_eq!(run("é").device.as_deref(), Some("é"));
}
