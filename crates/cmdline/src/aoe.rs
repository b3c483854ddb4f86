//! ATA over Ethernet: `aoe=`, `aoe_iflist=`, `aoe_mtu=` (mkinitfs'
//! `initramfs-init.in`, the `KOPT_aoe` block; reference §3.4 step 17).

use crate::Cmdline;

/// What `aoe=` asks for. Alpine acts only when `aoe=` is non-empty;
/// `aoe_iflist=` and `aoe_mtu=` alone do nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aoe {
    /// Targets to wait for, as `shelf.slot` (`aoe=0.0,1.2`): each is
    /// `/dev/etherd/e<shelf>.<slot>`. Empty for `aoe=yes`.
    pub targets: Vec<String>,
    /// Targets written in another form than `shelf.slot`: reported and
    /// left out (they would name paths outside `/dev/etherd`).
    pub bad_targets: Vec<String>,
    /// `aoe_iflist=`: the interfaces AoE may use, brought up by the init.
    pub interfaces: Vec<String>,
    /// `aoe_mtu=`: set on each of `interfaces`.
    pub mtu: Option<u32>,
    /// `aoe_mtu=` when it is not a decimal number (reported, not set).
    pub bad_mtu: Option<String>,
}

impl Cmdline {
    /// ATA over Ethernet, when `aoe=` is non-empty.
    pub fn aoe(&self) -> Option<Aoe> {
        let value = self.non_empty("aoe")?;
        let (targets, bad_targets) = if value == "yes" {
            (Vec::new(), Vec::new())
        } else {
            crate::views::split_commas(value)
                .into_iter()
                .partition(|t| is_shelf_slot(t))
        };
        let interfaces = self.comma_list("aoe_iflist");
        let raw_mtu = self.non_empty("aoe_mtu");
        let mtu = raw_mtu.and_then(|v| {
            v.bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| v.parse().ok())
                .flatten()
        });
        let bad_mtu = raw_mtu.filter(|_| mtu.is_none()).map(str::to_owned);
        Some(Aoe {
            targets,
            bad_targets,
            interfaces,
            mtu,
            bad_mtu,
        })
    }
}

/// `N.N` in decimal: an AoE shelf and slot.
fn is_shelf_slot(target: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    target
        .split_once('.')
        .is_some_and(|(shelf, slot)| digits(shelf) && digits(slot))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aoe(line: &str) -> Option<Aoe> {
        Cmdline::parse(line).aoe()
    }

    #[test]
    fn aoe_options_table() {
        // (command line, targets, bad targets, interfaces, mtu, bad mtu)
        type Row = (
            &'static str,
            &'static [&'static str],
            &'static [&'static str],
            &'static [&'static str],
            Option<u32>,
            Option<&'static str>,
        );
        let rows: &[Row] = &[
            // Upstream's case `aoe`.
            (
                "aoe=yes aoe_iflist=eth0 aoe_mtu=9000",
                &[],
                &[],
                &["eth0"],
                Some(9000),
                None,
            ),
            ("aoe", &[], &[], &[], None, None),
            (
                "aoe=0.0,12.3 aoe_iflist=eth0,,eth1",
                &["0.0", "12.3"],
                &[],
                &["eth0", "eth1"],
                None,
                None,
            ),
            (
                "aoe=0.0,../x,1,a.b,2. aoe_mtu=9k",
                &["0.0"],
                &["../x", "1", "a.b", "2."],
                &[],
                None,
                Some("9k"),
            ),
            (
                "aoe=1.1 aoe_mtu=99999999999",
                &["1.1"],
                &[],
                &[],
                None,
                Some("99999999999"),
            ),
        ];
        for (line, targets, bad, interfaces, mtu, bad_mtu) in rows {
            let got = aoe(line).unwrap_or_else(|| panic!("{line}: no aoe"));
            assert_eq!(got.targets, *targets, "{line}");
            assert_eq!(got.bad_targets, *bad, "{line}");
            assert_eq!(got.interfaces, *interfaces, "{line}");
            assert_eq!(got.mtu, *mtu, "{line}");
            assert_eq!(got.bad_mtu.as_deref(), *bad_mtu, "{line}");
        }
    }

    #[test]
    fn without_aoe_the_other_two_do_nothing() {
        for line in ["aoe_iflist=eth0 aoe_mtu=9000", "aoe= aoe_iflist=eth0", ""] {
            assert_eq!(aoe(line), None, "{line}");
        }
    }
}
