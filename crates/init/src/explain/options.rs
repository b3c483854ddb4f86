//! The kernel options part of the report: what the boot acts on, what it
//! parses and ignores (`crate::options::NOT_ACTED_ON`, said in the boot log
//! too), and the words left to the kernel and to modules.

use alpinit_cmdline::Cmdline;

pub fn report(cmdline: &Cmdline, out: &mut String) {
    out.push_str("\nKernel options (/proc/cmdline, Alpine's rules):\n");
    let mut in_effect = Vec::new();
    let mut ignored = Vec::new();
    for (name, value) in cmdline.options() {
        // A bare `name` is Alpine's `name=yes`: shown as it is written.
        let word = match value {
            "yes" => name.to_owned(),
            _ => format!("{name}={value}"),
        };
        if crate::options::NOT_ACTED_ON.contains(&name) {
            ignored.push(word);
        } else {
            in_effect.push(word);
        }
    }
    // `console=` is collected apart; the boot hands over to the last one.
    for c in cmdline.consoles().iter().rev() {
        in_effect.push(format!("console={c}"));
    }
    if cmdline.single() {
        in_effect.push("single".to_owned());
    }
    line(out, "in effect", &in_effect, "none (defaults)");
    line(
        out,
        "ignored (parsed, not supported by this version)",
        &ignored,
        "none",
    );
    let (modules, kernel): (Vec<String>, Vec<String>) = cmdline
        .other_words()
        .iter()
        .cloned()
        .partition(|w| is_module_parameter(w));
    line(out, "module parameters", &modules, "none");
    line(out, "for the kernel only", &kernel, "none");
}

/// `MOD.param=value` and `modprobe.blacklist=`: what the module loader takes.
fn is_module_parameter(word: &str) -> bool {
    word.split_once('=')
        .is_some_and(|(name, _)| name.contains('.') && !name.starts_with('.'))
}

fn line(out: &mut String, what: &str, words: &[String], none: &str) {
    if words.is_empty() {
        out.push_str(&format!("  {what}: {none}\n"));
    } else {
        out.push_str(&format!("  {what}: {}\n", words.join(" ")));
    }
}
