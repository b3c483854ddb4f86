//! nlplug-findfs' command line, parsed as its `getopt_long` does
//! (reference §2.1: `"a:b:c:hH:k:m:no:Ddf:p:t:U:"` and the long options):
//! clustered short flags (`-dn`, `-dna FILE`), values attached or in the
//! next argument, `--name=value` and `--name value`, `--` to end the
//! options, and operands anywhere (GNU getopt permutes them); the first
//! operand is the device, the rest are ignored as nlplug ignores them.
//!
//! One difference on purpose: nlplug declares `--allow-not-found` as
//! taking an argument although `-n` takes none (reference §2.11), so
//! `--allow-not-found /x` would swallow the next word; here it takes none,
//! like `-n`.

use std::path::PathBuf;

/// The LUKS options (`-c -H -k -m -o -D`), kept as given.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Crypt {
    /// `-c`: the LUKS device, a device specification.
    pub device: Option<String>,
    /// `-H`: a detached header, a file or a device specification.
    pub header: Option<String>,
    /// `-k`: a key file or device, without its `:offset:size` suffix.
    pub key: Option<String>,
    /// `-k`'s `:offset:size`, when given.
    pub key_range: Option<(u64, u64)>,
    /// `-m`: the device-mapper name.
    pub name: Option<String>,
    /// `-o`: the payload offset (with a detached header).
    pub offset: Option<u64>,
    /// `-D`: allow discards.
    pub discards: bool,
}

impl Crypt {
    pub fn is_empty(&self) -> bool {
        *self == Crypt::default()
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Args {
    pub apkovls_file: Option<PathBuf>,
    pub repos_file: Option<PathBuf>,
    pub allow_not_found: bool,
    pub debug: bool,
    pub timeout_ms: Option<u64>,
    pub uevent_buf_size: Option<usize>,
    /// `-f`: keep only uevents of this subsystem (or without one), as
    /// nlplug's code does (its man page says the opposite; the code wins).
    pub filter: Option<String>,
    /// `-p`: accepted, never run (see the module above).
    pub event_handler: Option<String>,
    pub crypt: Crypt,
    pub device: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum ParseOutcome {
    Run(Box<Args>),
    Help,
    Usage(String),
}

/// The short options and whether each takes a value.
const SHORT: &[(char, bool)] = &[
    ('a', true),
    ('b', true),
    ('c', true),
    ('h', false),
    ('H', true),
    ('k', true),
    ('m', true),
    ('n', false),
    ('o', true),
    ('D', false),
    ('d', false),
    ('f', true),
    ('p', true),
    ('t', true),
    ('U', true),
];

/// Long name, its short option.
const LONG: &[(&str, char)] = &[
    ("apkovls-file", 'a'),
    ("boot-repositories-file", 'b'),
    ("crypt-device", 'c'),
    ("crypt-header", 'H'),
    ("crypt-key", 'k'),
    ("crypt-name", 'm'),
    ("crypt-offset", 'o'),
    ("crypt-discards", 'D'),
    ("allow-not-found", 'n'),
    ("debug", 'd'),
    ("filter", 'f'),
    ("event-handler", 'p'),
    ("timeout", 't'),
    ("uevent-buffer-size", 'U'),
    ("help", 'h'),
];

fn takes_value(opt: char) -> Option<bool> {
    SHORT.iter().find(|(c, _)| *c == opt).map(|(_, v)| *v)
}

pub fn parse(argv: &[String]) -> ParseOutcome {
    let mut a = Args::default();
    let mut it = argv.iter();
    let mut options_done = false;
    while let Some(arg) = it.next() {
        if options_done || arg == "-" || !arg.starts_with('-') {
            if a.device.is_none() {
                a.device = Some(arg.clone());
            }
            continue;
        }
        if arg == "--" {
            options_done = true;
            continue;
        }
        if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (long, None),
            };
            // getopt_long accepts any unambiguous prefix of a long name.
            let matches: Vec<&(&str, char)> =
                LONG.iter().filter(|(l, _)| l.starts_with(name)).collect();
            let opt = match (LONG.iter().find(|(l, _)| *l == name), matches.as_slice()) {
                (Some((_, c)), _) | (None, [(_, c)]) => *c,
                (None, []) => {
                    return ParseOutcome::Usage(format!("unrecognized option '--{name}'"))
                }
                (None, _) => return ParseOutcome::Usage(format!("option '--{name}' is ambiguous")),
            };
            let value = match (takes_value(opt), inline) {
                (Some(true), Some(v)) => Some(v),
                (Some(true), None) => match it.next() {
                    Some(v) => Some(v.clone()),
                    None => {
                        return ParseOutcome::Usage(format!(
                            "option '--{name}' requires an argument"
                        ))
                    }
                },
                (_, Some(_)) if opt != 'n' => {
                    return ParseOutcome::Usage(format!(
                        "option '--{name}' doesn't allow an argument"
                    ))
                }
                _ => None,
            };
            match apply(&mut a, opt, value) {
                Ok(true) => {}
                Ok(false) => return ParseOutcome::Help,
                Err(why) => return ParseOutcome::Usage(why),
            }
            continue;
        }
        // A cluster of short options: `-dn`, `-dna FILE`, `-aFILE`.
        let cluster = &arg[1..];
        for (at, opt) in cluster.char_indices() {
            let Some(wants_value) = takes_value(opt) else {
                return ParseOutcome::Usage(format!("invalid option -- '{opt}'"));
            };
            let value = if wants_value {
                let rest = &cluster[at + opt.len_utf8()..];
                let v = if rest.is_empty() {
                    match it.next() {
                        Some(v) => v.clone(),
                        None => {
                            return ParseOutcome::Usage(format!(
                                "option requires an argument -- '{opt}'"
                            ))
                        }
                    }
                } else {
                    rest.to_owned()
                };
                Some(v)
            } else {
                None
            };
            match apply(&mut a, opt, value) {
                Ok(true) => {}
                Ok(false) => return ParseOutcome::Help,
                Err(why) => return ParseOutcome::Usage(why),
            }
            if wants_value {
                break;
            }
        }
    }
    ParseOutcome::Run(Box::new(a))
}

/// Applies one option; `Ok(false)` for `-h`.
fn apply(a: &mut Args, opt: char, value: Option<String>) -> Result<bool, String> {
    let v = value.unwrap_or_default();
    match opt {
        'a' => a.apkovls_file = Some(v.into()),
        'b' => a.repos_file = Some(v.into()),
        'c' => a.crypt.device = Some(v),
        'H' => a.crypt.header = Some(v),
        'k' => {
            let (key, range) = split_key_range(&v);
            a.crypt.key = Some(key);
            a.crypt.key_range = range;
        }
        'm' => a.crypt.name = Some(v),
        'o' => a.crypt.offset = Some(v.parse().map_err(|_| format!("{v}: not an offset"))?),
        'D' => a.crypt.discards = true,
        'n' => a.allow_not_found = true,
        'd' => a.debug = true,
        'f' => a.filter = Some(v),
        'p' => a.event_handler = Some(v),
        't' => {
            a.timeout_ms = Some(
                v.parse()
                    .map_err(|_| format!("-t: not a number of ms: {v}"))?,
            )
        }
        'U' => a.uevent_buf_size = Some(v.parse().map_err(|_| format!("-U: not a size: {v}"))?),
        'h' => return Ok(false),
        _ => return Err(format!("invalid option -- '{opt}'")),
    }
    Ok(true)
}

/// `-k FILE:OFFSET:SIZE`: a trailing pair of numbers is the byte range of
/// the key inside FILE (nlplug 1338-1363); anything else is all path.
fn split_key_range(v: &str) -> (String, Option<(u64, u64)>) {
    let mut parts = v.rsplitn(3, ':');
    if let (Some(size), Some(offset), Some(path)) = (parts.next(), parts.next(), parts.next()) {
        if let (Ok(o), Ok(s)) = (offset.parse(), size.parse()) {
            if !path.is_empty() {
                return (path.to_owned(), Some((o, s)));
            }
        }
    }
    (v.to_owned(), None)
}

#[cfg(test)]
mod tests;
