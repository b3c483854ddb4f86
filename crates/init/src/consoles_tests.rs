use super::*;

/// Upstream's `fake_serial_devices` /proc/tty/driver/serial, plus the
/// header line the kernel writes first.
const SERIAL: &str = "serinfo:1.0 driver revision:\n\
0: uart:16550A port:000003F8 irq:4 tx:0 rx:0 CTS|DSR\n\
1: uart:16550A port:000002F8 irq:3 tx:103 rx:0 RTS|DTR\n\
2: uart:unknown port:000003E8 irq:4\n\
3: uart:unknown port:000002E8 irq:3\n";

#[test]
fn serial_detection_reads_the_seventh_field() {
    let cases: &[(&str, &[&str])] = &[
        (SERIAL, &["ttyS0"]),
        ("", &[]),
        ("1: uart:16550A port:000002F8 irq:3 tx:0 rx:0 DSR\n", &["ttyS1"]),
        // CTS in another field does not count.
        ("1: uart:CTS port:000002F8 irq:3 tx:0 rx:0 RTS\n", &[]),
        // Alpine glues two matches into one broken name; both are kept.
        (
            "0: uart:16550A port:000003F8 irq:4 tx:0 rx:0 CTS\n1: uart:16550A port:000002F8 irq:3 tx:0 rx:0 DSR\n",
            &["ttyS0", "ttyS1"],
        ),
    ];
    for (text, want) in cases {
        assert_eq!(serial_lines_with_peer(text), *want, "{text:?}");
    }
}

#[test]
fn securetty_word_match_is_grep_w() {
    let cases = [
        ("console\ntty1\nttyS0\n", "ttyS0", true),
        ("ttyS01\n", "ttyS0", false),
        ("xttyS0\n", "ttyS0", false),
        ("# ttyS0 is serial\n", "ttyS0", true),
        ("", "ttyS0", false),
    ];
    for (text, word, want) in cases {
        assert_eq!(has_word(text, word), want, "{text:?} {word}");
    }
}

#[test]
fn console_names_that_cannot_be_a_tty_are_refused() {
    for bad in ["", ".", "..", "a/b", "ttyS0:x", "tty 1", "#c", "t\u{1}"] {
        assert!(!plain_name(bad), "{bad:?}");
    }
    for good in ["ttyS0", "tty1", "hvc0", "ttyAMA0", "console"] {
        assert!(plain_name(good), "{good}");
    }
}

#[test]
fn console_aliases_resolve_through_active() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path());
    let put = |name: &str, active: &str| {
        let dir = tmp.path().join("sys/class/tty").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("active"), active).unwrap();
    };
    put("console", "tty0 ttyS0\n");
    put("tty0", "tty1\n");
    assert_eq!(resolve(&layout, "console"), ["tty1", "ttyS0"]);
    assert_eq!(resolve(&layout, "ttyS0"), ["ttyS0"]);
    // A loop in a broken tree ends instead of recursing forever.
    put("loop", "loop\n");
    assert_eq!(resolve(&layout, "loop"), ["loop"]);
}
