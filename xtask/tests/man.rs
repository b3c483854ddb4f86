//! The man pages in `docs/`: they render without a warning with the tools
//! that show them (man-db/groff on Debian, mandoc on Alpine when present)
//! and they cannot drift from the code: every option of
//! `alpinit_cmdline::OPTIONS` has an entry in `alpinit-bootparam.7`, the
//! "not acted on" section is exactly `alpinit::options::NOT_ACTED_ON`, and
//! every `nlplug-findfs` option of `alpinit.8` is one the parser accepts.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use alpinit::findfs_cli::{self, ParseOutcome};

fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs")
}

fn page(name: &str) -> String {
    let path = docs().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

const PAGES: [&str; 2] = ["alpinit.8", "alpinit-bootparam.7"];

fn has_tool(name: &str) -> bool {
    Command::new(name).arg("--version").output().is_ok()
}

/// Runs a renderer; returns its stderr, failing on a non-zero exit.
fn render(cmd: &mut Command) -> String {
    let shown = format!("{cmd:?}");
    let out = cmd
        .env("LC_ALL", "C.UTF-8")
        .env("MANWIDTH", "80")
        .output()
        .unwrap_or_else(|e| panic!("running {shown}: {e}"));
    assert!(out.status.success(), "{shown}: {}", out.status);
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn man_pages_render_without_warnings() {
    let (man, groff, mandoc) = (has_tool("man"), has_tool("groff"), has_tool("mandoc"));
    if !man && !groff && !mandoc {
        eprintln!(
            "SKIPPED: neither man, groff nor mandoc is installed \
             (cargo xtask deps installs man-db and groff-base)"
        );
        return;
    }
    for name in PAGES {
        let path = docs().join(name);
        if man {
            let out = Command::new("man")
                .args(["--warnings", "-l"])
                .arg(&path)
                .env("LC_ALL", "C.UTF-8")
                .env("MANWIDTH", "80")
                .output()
                .expect("running man");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success() && stderr.is_empty(),
                "man -l {name}: {stderr}"
            );
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.contains("NAME") && text.contains("SEE ALSO"), "{text}");
        }
        if groff {
            let warnings = render(
                Command::new("groff")
                    .args(["-mandoc", "-ww", "-z"])
                    .arg(&path),
            );
            assert!(warnings.is_empty(), "groff {name}: {warnings}");
        }
        if mandoc {
            // Warnings and errors; "style" notes about pages not installed
            // here (lbu(1), mkinitfs(1)) are not counted.
            let out = Command::new("mandoc")
                .args(["-Tlint", "-W", "warning"])
                .arg(&path)
                .output()
                .expect("running mandoc");
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success() && text.is_empty(),
                "mandoc {name}: {text}"
            );
        }
    }
}

/// The names a page gives entries to: every `Cm` argument of an `.It`
/// line, `Ns = ...` and punctuation dropped.
fn entries(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines().filter(|l| l.starts_with(".It ")) {
        let words: Vec<&str> = line.split_whitespace().collect();
        for pair in words.windows(2) {
            if pair[0] == "Cm" {
                names.insert(pair[1].to_string());
            }
        }
    }
    names
}

/// The options of `OPTIONS` without an entry in `text`.
fn undocumented(text: &str) -> Vec<&'static str> {
    let names = entries(text);
    alpinit_cmdline::OPTIONS
        .iter()
        .copied()
        .filter(|o| !names.contains(*o))
        .collect()
}

/// `text` between `.Ss TITLE` and the next `.Ss` or `.Sh`.
fn subsection<'a>(text: &'a str, title: &str) -> &'a str {
    let head = format!(".Ss {title}\n");
    let start = text
        .find(&head)
        .unwrap_or_else(|| panic!("no subsection {title}"))
        + head.len();
    let rest = &text[start..];
    let end = ["\n.Ss ", "\n.Sh "]
        .iter()
        .filter_map(|m| rest.find(m))
        .min()
        .unwrap_or(rest.len());
    &rest[..end]
}

#[test]
fn every_cmdline_option_has_an_entry_in_bootparam_7() {
    let missing = undocumented(&page("alpinit-bootparam.7"));
    assert!(missing.is_empty(), "alpinit-bootparam.7 lacks {missing:?}");
}

/// The check itself: a page missing `ds` (a substring of many words) is
/// caught, so a name found only inside prose does not count.
#[test]
fn an_option_mentioned_only_in_prose_is_undocumented() {
    let text = page("alpinit-bootparam.7").replace(
        ".It Cm ds Ns = Ns Ar source , Cm tinycloud",
        ".It Cm tinycloud",
    );
    assert!(text.contains("words"));
    assert_eq!(undocumented(&text), ["ds"]);
}

#[test]
fn bootparam_7_not_acted_on_section_is_exactly_the_ignored_options() {
    let text = page("alpinit-bootparam.7");
    let section = entries(subsection(&text, "Parsed but not acted on"));
    let ignored: BTreeSet<String> = alpinit::options::NOT_ACTED_ON
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(section, ignored);
    // And none of them is described as acted on elsewhere in the page.
    let elsewhere = entries(&text.replace(subsection(&text, "Parsed but not acted on"), ""));
    let both: Vec<_> = elsewhere.intersection(&ignored).collect();
    assert!(both.is_empty(), "described as acted on: {both:?}");
}

#[test]
fn every_nlplug_findfs_option_in_alpinit_8_is_accepted() {
    let text = page("alpinit.8");
    let section = subsection(&text, "nlplug-findfs mode");
    let mut flags = Vec::new();
    for line in section.lines().filter(|l| l.starts_with(".It Fl ")) {
        // `.It Fl c , H , k` documents -c, -H and -k.
        let words: Vec<&str> = line.split_whitespace().skip(2).collect();
        let takes_value = words.contains(&"Ar");
        for w in words.iter().take_while(|w| **w != "Ar") {
            if *w != "," {
                flags.push((format!("-{w}"), takes_value));
            }
        }
    }
    assert!(flags.len() >= 10, "{flags:?}");
    for (flag, takes_value) in flags {
        let mut argv = vec![flag.clone()];
        if takes_value || ["-c", "-H", "-k", "-m", "-o"].contains(&flag.as_str()) {
            argv.push("1".into());
        }
        let outcome = findfs_cli::parse(&argv);
        assert!(
            !matches!(outcome, ParseOutcome::Usage(_)),
            "{flag} is documented but refused: {outcome:?}"
        );
    }
}
