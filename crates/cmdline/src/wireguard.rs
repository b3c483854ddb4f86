//! `wireguard=IF;ADDR[,ADDR..][;CONF]` (mkinitfs' `initramfs-init.in`,
//! `setup_wireguard`; reference §3.4 step 15).

use crate::Cmdline;

/// Alpine's configuration file when `wireguard=` names none
/// (mkinitfs' `features.d/wireguard.files`).
pub const DEFAULT_WIREGUARD_CONFIG: &str = "/etc/wireguard/initrd.conf";

/// What `wireguard=` asks for, split as the script splits it (fields on
/// `;`, addresses on `,`, empty entries dropped); nothing validated here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wireguard {
    pub device: String,
    /// `ADDR/PREFIX` (or a bare address) as `ip addr add` takes them.
    pub addresses: Vec<String>,
    /// The `wg setconf` file: the third field, else
    /// [`DEFAULT_WIREGUARD_CONFIG`].
    pub config: String,
}

impl Cmdline {
    /// The tunnel `wireguard=` asks for, when it is non-empty.
    pub fn wireguard(&self) -> Option<Wireguard> {
        let value = self.non_empty("wireguard")?;
        let mut fields = value.split(';');
        let device = fields.next().unwrap_or_default().to_owned();
        let addresses = fields
            .next()
            .map(crate::views::split_commas)
            .unwrap_or_default();
        let config = fields
            .next()
            .filter(|c| !c.is_empty())
            .unwrap_or(DEFAULT_WIREGUARD_CONFIG)
            .to_owned();
        Some(Wireguard {
            device,
            addresses,
            config,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The command line, and the device, addresses and file it gives.
    type Row = (
        &'static str,
        Option<(&'static str, &'static [&'static str], &'static str)>,
    );

    #[test]
    fn wireguard_option_table() {
        let rows: &[Row] = &[
            // Upstream's case `wireguard`.
            (
                "wireguard=wg0;192.168.0.1/24",
                Some(("wg0", &["192.168.0.1/24"], DEFAULT_WIREGUARD_CONFIG)),
            ),
            (
                "wireguard=wg1;10.0.0.2/24,,fd00::2/64;/etc/wireguard/wg1.conf",
                Some((
                    "wg1",
                    &["10.0.0.2/24", "fd00::2/64"],
                    "/etc/wireguard/wg1.conf",
                )),
            ),
            (
                "wireguard=wg0",
                Some(("wg0", &[], DEFAULT_WIREGUARD_CONFIG)),
            ),
            (
                "wireguard=wg0;;",
                Some(("wg0", &[], DEFAULT_WIREGUARD_CONFIG)),
            ),
            ("wireguard=", None),
            ("ip=dhcp", None),
        ];
        for (line, want) in rows {
            let got = Cmdline::parse(line).wireguard();
            let want = want.map(|(device, addresses, config)| Wireguard {
                device: device.to_owned(),
                addresses: addresses.iter().map(|a| a.to_string()).collect(),
                config: config.to_owned(),
            });
            assert_eq!(got, want, "{line}");
        }
    }

    /// Who configures the network and who needs the NIC drivers: `wireguard=`
    /// configures it without being a network boot; `aoe=` only needs the links.
    #[test]
    fn network_users_table() {
        // (command line, needs_network, configures_network, uses_nics)
        let cases = [
            ("ip=dhcp", true, true, true),
            ("wireguard=wg0;10.0.0.1/24", false, true, true),
            ("aoe=yes aoe_iflist=eth0", false, false, true),
            ("aoe_iflist=eth0 wireguard=", false, false, false),
            ("root=/dev/vda1", false, false, false),
        ];
        for (text, needs, configures, nics) in cases {
            let c = Cmdline::parse(text);
            assert_eq!(
                (c.needs_network(), c.configures_network(), c.uses_nics()),
                (needs, configures, nics),
                "{text:?}"
            );
        }
    }
}
