use super::*;

fn matches(pattern: &str, text: &str) -> bool {
    Ere::new(pattern)
        .unwrap_or_else(|e| panic!("{pattern:?}: {e}"))
        .is_match(text)
}

const MODALIAS: &str = "dmi:bvnSeaBIOS:bvr1.16.3-debian-1.16.3-2:bd04/01/2014:br0.0:svnQEMU:pnStandardPC(i440FX+PIIX,1996):pvrpc-i440fx-9.2:cvnQEMU:ct1:cvrpc-i440fx-9.2:sku:";

#[test]
fn setconsole_patterns_match_dmi_modalias_as_grep_e() {
    for (pattern, want) in [
        ("svnQEMU", true),
        ("svnqemu", false),
        (":pnStandardPC\\(i440FX", true),
        ("^dmi:bvn", true),
        ("^bvn", false),
        ("sku:$", true),
        ("sku$", false),
        ("svn(QEMU|Dell|LENOVO):", true),
        ("svn(Dell|LENOVO):", false),
        ("pvrpc-i440fx-[0-9]+\\.[0-9]", true),
        ("pvrpc-q35", false),
        ("bd[0-9]{2}/[0-9]{2}/[0-9]{4}", true),
        ("bd[0-9]{3}/", false),
        ("svn[[:upper:]]+:pn", true),
        ("svn[^Q]", false),
        ("cvn.*ct1", true),
        ("", true),
    ] {
        assert_eq!(matches(pattern, MODALIAS), want, "{pattern:?}");
    }
}

/// regex-lite was the engine before; on the syntax both accept, both answer alike.
#[test]
fn answers_as_regex_lite_on_the_common_syntax() {
    let patterns = [
        "a",
        "ab",
        "a|b",
        "a|",
        "(ab)*c",
        "(a|b)+c",
        "a?b?c",
        "a{2}",
        "a{2,}",
        "a{1,3}b",
        "^a",
        "b$",
        "^$",
        "^a*$",
        ".",
        "a.c",
        "[abc]+",
        "[^abc]",
        "[a-c]{2}",
        "[-a]",
        "[a-]",
        "[]a]",
        "[^]a]",
        "x*",
        "(a*)*b",
        "(a|ab)(c|bcd)",
        "\\.",
        "a\\+",
        "\\d+",
        "\\w+\\s",
        "\\bfoo\\b",
        "\\Bo",
        "\\D",
        "\\W",
        "\\S",
        "(((a)))",
        "a{0}b",
        "a{0,0}b",
        "(a?){3}a{3}",
        "[[:digit:]][[:alpha:]]",
        "[[:space:]]",
        "[[:punct:]]",
        "[[:xdigit:]]{2}",
    ];
    let texts = [
        "",
        "a",
        "b",
        "ab",
        "abc",
        "aab",
        "aaab",
        "c",
        "abcd",
        "xyz",
        "foo bar",
        "foobar",
        "a.c",
        "a+",
        "12ab",
        "-",
        "]",
        "aaa",
        "aaaaaa",
        "1f",
        "x_y z",
        "tab\there",
        "A9",
    ];
    for p in patterns {
        let ours = Ere::new(p).unwrap_or_else(|e| panic!("{p:?}: {e}"));
        let theirs = regex_lite::Regex::new(p).unwrap_or_else(|e| panic!("{p:?}: {e}"));
        for t in texts {
            assert_eq!(ours.is_match(t), theirs.is_match(t), "{p:?} on {t:?}");
        }
    }
}

#[test]
fn malformed_patterns_are_named_errors() {
    for (pattern, want) in [
        ("(ab", EreError::UnclosedGroup(0)),
        ("a(b(c)", EreError::UnclosedGroup(1)),
        ("ab)", EreError::UnopenedGroup(2)),
        ("[ab", EreError::UnclosedBracket(0)),
        ("x[]", EreError::UnclosedBracket(1)),
        ("[[:nope:]]", EreError::UnknownClass("nope".into())),
        ("[z-a]", EreError::BadRange('z', 'a')),
        ("*a", EreError::NothingToRepeat('*', 0)),
        ("a|+", EreError::NothingToRepeat('+', 2)),
        ("(?a)", EreError::NothingToRepeat('?', 1)),
        ("a{3,2}", EreError::BadBound(1)),
        ("a{256}", EreError::BadBound(1)),
        ("a{x}", EreError::BadBound(1)),
        ("a{2", EreError::BadBound(1)),
        ("a\\", EreError::TrailingBackslash),
    ] {
        assert_eq!(Ere::new(pattern).unwrap_err(), want, "{pattern:?}");
    }
}

#[test]
fn huge_repetitions_are_refused_and_matching_stays_linear() {
    assert_eq!(Ere::new("(a{255}){255}").unwrap_err(), EreError::TooLarge);
    // The classic backtracking killer: answered at once by the state-set simulation.
    let evil = Ere::new("(a*)*(a|aa)*b").unwrap();
    let text = "a".repeat(5_000);
    let start = std::time::Instant::now();
    assert!(!evil.is_match(&text));
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
    assert!(evil.is_match(&format!("{text}b")));
}
