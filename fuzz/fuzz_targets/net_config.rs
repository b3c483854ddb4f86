//! The small network configuration parsers. The low three bits of the first
//! byte pick the parser (`'0'`..`'7'` in the seeds); the rest is its input,
//! read lossily as UTF-8:
//!
//! | selector | parser | input |
//! | --- | --- | --- |
//! | 0 | `alpinit_net::parse_mactab` | the overlay's `/etc/mactab` |
//! | 1 | `alpinit_kmod::parse_etc_modules` | the overlay's `/etc/modules` |
//! | 2 | `alpinit_net::parse_ip` | an `ip=` value |
//! | 3 | `alpinit_net::parse_bootif` | a `BOOTIF=` value |
//! | 4 | `alpinit_net::Url::parse` | an `apkovl=` / `alpine_repo=` URL |
//! | 5 | `alpinit_net::parse_mac` | a MAC address |
//! | 6 | `Url::parse`, then `Url::join` | base URL NUL `Location` header |
//! | 7 | all of 0 to 5 | the same text for each |
//!
//! Invariants besides "no panic" are listed on each check below.
#![no_main]

use std::net::Ipv4Addr;

use alpinit_net::{parse_bootif, parse_ip, parse_mac, parse_mactab, IpConfig, NetError, Url};
use libfuzzer_sys::fuzz_target;

fn mac_text(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// `parse_mac` accepts exactly six colon-separated pairs of hex digits
/// (surrounding whitespace trimmed), any case, and returns those bytes.
fn check_mac(text: &str) {
    if let Some(mac) = parse_mac(text) {
        assert_eq!(mac_text(mac), text.trim().to_ascii_lowercase(), "{text:?}");
        assert_eq!(parse_mac(&mac_text(mac).to_ascii_uppercase()), Some(mac));
    }
    // Every canonical spelling is accepted: the first six bytes of the input.
    let mut raw = [0u8; 6];
    for (r, b) in raw.iter_mut().zip(text.bytes()) {
        *r = b;
    }
    assert_eq!(parse_mac(&mac_text(raw)), Some(raw));
    assert_eq!(parse_mac(&format!(" {}\n", mac_text(raw))), Some(raw));
}

/// `/etc/mactab`: one pair per line that has a name and a MAC before any `#`,
/// in order; the name is usable as an interface name (1 to 15 printable ASCII
/// bytes, not `.` or `..`, no `/`, `:` or `#`) and the MAC is lowercase and in
/// `parse_mac`'s form.
fn check_mactab(text: &str) {
    let pairs = parse_mactab(text);
    assert!(pairs.len() <= text.lines().count());
    let mut candidates = text.lines().filter_map(|l| {
        let mut words = l.split('#').next().unwrap_or("").split_whitespace();
        Some((words.next()?, words.next()?))
    });
    for (name, mac) in &pairs {
        assert!((1..=15).contains(&name.len()), "{name:?}");
        assert!(name != "." && name != "..");
        // The interface-name rule: printable ASCII only (no NUL for netlink).
        assert!(name.bytes().all(|b| b.is_ascii_graphic()), "{name:?}");
        assert!(!name.contains(['/', ':', '#']) && !name.contains(char::is_whitespace));
        let bytes = parse_mac(mac).expect("mactab MAC parses");
        assert_eq!(*mac, mac_text(bytes), "{mac:?}");
        // The pair is one of the remaining lines' first two words.
        assert!(
            candidates.any(|(n, m)| n == name && m.to_ascii_lowercase() == *mac),
            "{name} {mac}"
        );
    }
}

/// `/etc/modules`: one entry per line with a word before any `#`, in order;
/// the name is that word and the arguments are the line's other words joined
/// by single spaces.
fn check_etc_modules(text: &str) {
    let modules = alpinit_kmod::parse_etc_modules(text);
    let lines = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>();
    assert_eq!(modules.len(), lines.len());
    for ((name, args), line) in modules.iter().zip(lines) {
        assert!(!name.is_empty() && !name.contains(char::is_whitespace) && !name.contains('#'));
        assert!(!args.contains('#'));
        if !args.is_empty() {
            assert!(args
                .split(' ')
                .all(|w| !w.is_empty() && !w.contains(char::is_whitespace)));
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(name, words[0]);
        assert_eq!(*args, words[1..].join(" "));
    }
}

fn contiguous(mask: Ipv4Addr) -> bool {
    let bits = u32::from(mask);
    bits != 0 && bits.leading_ones() + bits.trailing_zeros() == 32
}

/// `ip=client:server:gw:netmask:hostname:device:autoconf:dns0:dns1`, each
/// field trimmed. Checked: `off`/`none` clients, DHCP versus static, the
/// device, and that every address of a static result is the field it came
/// from (Rust's IPv4 parser only takes the canonical dotted quad, so the
/// address prints back as the field).
fn check_ip(value: &str) {
    let fields: Vec<&str> = value.split(':').collect();
    let field = |i: usize| fields.get(i).copied().unwrap_or("").trim();
    let (client, gateway, netmask, hostname, device, autoconf) =
        (field(0), field(2), field(3), field(4), field(5), field(6));
    let valid_device = !device.is_empty()
        && device.len() <= 15
        && device != "."
        && device != ".."
        && device
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':');
    let device_ok = device.is_empty() || valid_device;
    let want_device = valid_device.then(|| device.to_owned());
    let result = parse_ip(value);
    if client == "off" || client == "none" {
        assert_eq!(result.as_ref().ok(), Some(&IpConfig::Off), "{value:?}");
        return;
    }
    if !device_ok {
        assert!(result.is_err(), "{value:?}");
    }
    if (client == "dhcp" || autoconf == "dhcp") && device_ok {
        assert_eq!(
            result.as_ref().ok(),
            Some(&IpConfig::Dhcp {
                device: want_device.clone()
            }),
            "{value:?}"
        );
    }
    match result {
        Err(NetError::BadIp { value: v, .. }) => assert_eq!(v, value),
        Err(e) => panic!("ip={value:?}: unexpected error {e}"),
        Ok(IpConfig::Off) => {
            assert!(client.is_empty() && netmask.is_empty(), "{value:?}");
            assert!(autoconf == "off" || autoconf == "none", "{value:?}");
        }
        Ok(IpConfig::Dhcp { device: d }) => {
            assert_eq!(d, want_device, "{value:?}");
            assert!(
                client == "dhcp"
                    || autoconf == "dhcp"
                    || (client.is_empty()
                        && netmask.is_empty()
                        && ["", "on", "any", "both", "bootp"].contains(&autoconf)),
                "{value:?}"
            );
        }
        Ok(IpConfig::Static {
            client: c,
            netmask: m,
            gateway: g,
            hostname: h,
            device: d,
            dns,
        }) => {
            assert!(client != "dhcp" && autoconf != "dhcp");
            assert_eq!(d, want_device, "{value:?}");
            assert_eq!(c.to_string(), client, "{value:?}");
            assert!(!c.is_unspecified() && !c.is_broadcast() && !c.is_multicast());
            assert!(contiguous(m), "{m}");
            if netmask.is_empty() {
                let class = match c.octets()[0] {
                    0..=127 => 8,
                    128..=191 => 16,
                    _ => 24,
                };
                assert_eq!(u32::from(m).leading_ones(), class);
            } else {
                assert_eq!(m.to_string(), netmask, "{value:?}");
            }
            let optional = |text: &str| -> Option<Ipv4Addr> {
                if text.is_empty() {
                    return None;
                }
                let a: Ipv4Addr = text.parse().expect("accepted address parses");
                assert_eq!(a.to_string(), text);
                Some(a).filter(|a| !a.is_unspecified())
            };
            assert_eq!(g, optional(gateway), "{value:?}");
            let want_dns: Vec<Ipv4Addr> = [field(7), field(8)]
                .into_iter()
                .filter_map(optional)
                .collect();
            assert_eq!(dns, want_dns, "{value:?}");
            assert_eq!(h.as_deref(), Some(hostname).filter(|h| !h.is_empty()));
        }
    }
}

/// `BOOTIF=`: six hex octets separated by `-` or `:`, optionally after `01-`
/// (Ethernet), of a unicast address; the result is the MAC in `parse_mac`'s
/// lowercase form, and feeding it back (with or without `01-`) gives it again.
fn check_bootif(value: &str) {
    let Some(mac) = parse_bootif(value) else {
        return;
    };
    let t = value.trim().as_bytes();
    let octets = match t.len() {
        17 => t,
        20 => {
            assert!(&t[..3] == b"01-" || &t[..3] == b"01:", "{value:?}");
            &t[3..]
        }
        _ => panic!("BOOTIF={value:?} gave {mac}"),
    };
    let want = String::from_utf8(octets.to_ascii_lowercase())
        .unwrap()
        .replace('-', ":");
    assert_eq!(mac, want, "{value:?}");
    let bytes = parse_mac(&mac).expect("BOOTIF result is a MAC");
    assert_eq!(mac_text(bytes), mac);
    assert_eq!(bytes[0] & 1, 0, "multicast {mac}");
    assert_eq!(parse_bootif(&mac).as_ref(), Some(&mac));
    assert_eq!(
        parse_bootif(&format!(
            "01-{}",
            mac.replace(':', "-").to_ascii_uppercase()
        ))
        .as_ref(),
        Some(&mac)
    );
}

/// Properties of every accepted URL: no spaces or control characters were in
/// it, the target starts with `/` and has no fragment, the host is non-empty,
/// lowercase and free of userinfo, brackets and colons, the port is not zero, and
/// the URL rebuilt from scheme, `authority()` and target parses to itself
/// (what `join` and the `Host` header rely on).
fn check_url(url: &Url) {
    assert!(
        url.target.starts_with('/') && !url.target.contains('#'),
        "{url:?}"
    );
    assert!(!url.host.is_empty(), "{url:?}");
    assert_eq!(url.host, url.host.to_ascii_lowercase());
    // No `:` either: an unbracketed IPv6 literal or a second port is refused
    // (regressions/net_config/url-host-with-colon).
    assert!(
        !url.host.contains(['/', '?', '#', '@', '[', ']', ':']),
        "{url:?}"
    );
    assert_ne!(url.port, 0);
    for text in [&url.host, &url.target] {
        assert!(
            !text.contains(|c: char| c.is_control() || c == ' '),
            "{url:?}"
        );
    }
    let scheme = if url.https { "https" } else { "http" };
    let again = format!("{scheme}://{}{}", url.authority(), url.target);
    assert_eq!(Url::parse(&again).as_ref(), Ok(url), "{again:?}");
}

/// `Url::parse` of the input, checked against a split of the text: scheme,
/// host (lowercased), port (explicit or the scheme's default) and target
/// (path and query up to any `#`).
fn check_url_text(text: &str) -> Option<Url> {
    let url = Url::parse(text).ok()?;
    assert!(!text.contains(|c: char| c.is_control() || c == ' '));
    let (scheme, rest) = text.split_once("://").unwrap();
    assert_eq!(url.https, scheme.eq_ignore_ascii_case("https"), "{text:?}");
    assert!(url.https || scheme.eq_ignore_ascii_case("http"), "{text:?}");
    let rest = rest.split('#').next().unwrap();
    let (authority, target) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    assert!(
        url.target == target || url.target == format!("/{target}"),
        "{text:?}"
    );
    let default = if url.https { 443 } else { 80 };
    match authority.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() => {
            assert!(port.bytes().all(|b| b.is_ascii_digit()), "{text:?}");
            assert_eq!(url.host, host.to_ascii_lowercase());
            assert_eq!(port.parse::<u16>(), Ok(url.port));
        }
        Some((host, _)) => assert_eq!(
            (&*url.host, url.port),
            (&*host.to_ascii_lowercase(), default)
        ),
        None => assert_eq!(
            (&*url.host, url.port),
            (&*authority.to_ascii_lowercase(), default)
        ),
    }
    check_url(&url);
    Some(url)
}

/// RFC 3986 scheme prefix (`ALPHA *( ALPHA / DIGIT / + / - / . ) :`).
fn has_scheme(reference: &str) -> bool {
    reference.split_once(':').is_some_and(|(s, _)| {
        s.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    })
}

/// `Url::join` with a `Location` value: any result is a valid URL; a relative
/// reference keeps the base's scheme, host and port, and one with a path has
/// no `.` or `..` segment left in it.
fn check_join(base: &str, location: &str) {
    let Some(base) = check_url_text(base) else {
        return;
    };
    let Ok(joined) = base.join(location) else {
        return;
    };
    check_url(&joined);
    let location = location.trim();
    if has_scheme(location) || location.starts_with("//") {
        return;
    }
    assert_eq!(
        (joined.https, &joined.host, joined.port),
        (base.https, &base.host, base.port),
        "{base:?} + {location:?}"
    );
    let reference = location.split('#').next().unwrap();
    let ref_path = reference.split('?').next().unwrap();
    if !ref_path.is_empty() {
        let path = joined.target.split('?').next().unwrap();
        assert!(
            path.split('/').all(|s| s != "." && s != ".."),
            "{base:?} + {location:?} = {joined:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match selector & 7 {
        0 => check_mactab(&text),
        1 => check_etc_modules(&text),
        2 => check_ip(&text),
        3 => check_bootif(&text),
        4 => {
            check_url_text(&text);
        }
        5 => check_mac(&text),
        6 => {
            let (base, location) = text.split_once('\0').unwrap_or((&text, ""));
            check_join(base, location);
        }
        _ => {
            check_mactab(&text);
            check_etc_modules(&text);
            check_ip(&text);
            check_bootif(&text);
            check_url_text(&text);
            check_mac(&text);
        }
    }
});
