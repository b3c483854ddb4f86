//! Network block devices: `nbd=SERVER:PORT[,SERVER:PORT..]` (mkinitfs'
//! `initramfs-init.in`, `setup_nbd`; reference §3.4 step 16). The n-th
//! server that connects becomes `/dev/nbdN`, counting only those that did.

use crate::Cmdline;

/// One `nbd=` entry. As Alpine's `${ops%:*}` and `${ops#*:}`, the server
/// is everything before the last colon; a bracketed IPv6 address
/// (`[fd00::1]:10809`) is also taken, without its brackets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NbdServer {
    pub host: String,
    pub port: u16,
}

/// What `nbd=` asks for, when it is non-empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nbd {
    /// In command-line order.
    pub servers: Vec<NbdServer>,
    /// Entries without a port, or whose port is not a number from 1 to
    /// 65535: reported and left out.
    pub bad: Vec<String>,
}

impl Cmdline {
    /// Network block devices, when `nbd=` is non-empty.
    pub fn nbd(&self) -> Option<Nbd> {
        let value = self.non_empty("nbd")?;
        let mut nbd = Nbd {
            servers: Vec::new(),
            bad: Vec::new(),
        };
        for entry in crate::views::split_commas(value) {
            match server(&entry) {
                Some(s) => nbd.servers.push(s),
                None => nbd.bad.push(entry),
            }
        }
        Some(nbd)
    }
}

fn server(entry: &str) -> Option<NbdServer> {
    let (host, port) = entry.rsplit_once(':')?;
    let host = match host.strip_prefix('[') {
        Some(inner) => inner.strip_suffix(']')?,
        None => host,
    };
    let port = port
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| port.parse::<u16>().ok())
        .flatten()
        .filter(|&p| p != 0)?;
    (!host.is_empty()).then(|| NbdServer {
        host: host.to_owned(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nbd_option_table() {
        // (command line, servers as host/port, bad entries)
        type Row = (
            &'static str,
            Option<(&'static [(&'static str, u16)], &'static [&'static str])>,
        );
        let rows: &[Row] = &[
            ("", None),
            ("nbd=", None),
            ("nbd=10.0.2.2:10809", Some((&[("10.0.2.2", 10809)], &[]))),
            (
                "nbd=10.0.0.1:2000,nbd.example:10809",
                Some((&[("10.0.0.1", 2000), ("nbd.example", 10809)], &[])),
            ),
            ("nbd=[fd00::2]:10809", Some((&[("fd00::2", 10809)], &[]))),
            // Alpine's split: the server is all before the last colon.
            ("nbd=fd00::2:10809", Some((&[("fd00::2", 10809)], &[]))),
            ("nbd=,10.0.0.1:1,", Some((&[("10.0.0.1", 1)], &[]))),
            (
                "nbd=10.0.0.1,10.0.0.1:0,10.0.0.1:65536,:10809,h:+1,[fd00::2:1,h:2",
                Some((
                    &[("h", 2)],
                    &[
                        "10.0.0.1",
                        "10.0.0.1:0",
                        "10.0.0.1:65536",
                        ":10809",
                        "h:+1",
                        "[fd00::2:1",
                    ],
                )),
            ),
        ];
        for &(line, want) in rows {
            let got = Cmdline::parse(line).nbd();
            let want = want.map(|(servers, bad)| Nbd {
                servers: servers
                    .iter()
                    .map(|&(host, port)| NbdServer {
                        host: host.to_owned(),
                        port,
                    })
                    .collect(),
                bad: bad.iter().map(|b| b.to_string()).collect(),
            });
            assert_eq!(got, want, "{line}");
        }
    }
}
