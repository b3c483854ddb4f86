//! Devices named on the command line (`apkovl=DEV:..`, `root=`,
//! `cryptroot=`): by name, UUID, label or partition UUID.

use crate::devices::Identity;

/// A device named on the command line (`apkovl=DEV:..`, later `root=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSpec {
    Name(String),
    Uuid(String),
    Label(String),
    PartUuid(String),
}

impl DeviceSpec {
    pub fn parse(s: &str) -> Self {
        if let Some(v) = s.strip_prefix("UUID=") {
            Self::Uuid(v.to_owned())
        } else if let Some(v) = s.strip_prefix("LABEL=") {
            Self::Label(v.to_owned())
        } else if let Some(v) = s.strip_prefix("PARTUUID=") {
            Self::PartUuid(v.to_owned())
        } else {
            Self::Name(s.strip_prefix("/dev/").unwrap_or(s).to_owned())
        }
    }

    /// The path a `Name` specification names (`/dev/mapper/x`, `sda1` as
    /// `/dev/sda1`), for matching by device number.
    pub fn path(&self) -> Option<String> {
        match self {
            Self::Name(n) if n.starts_with('/') => Some(n.clone()),
            Self::Name(n) => Some(format!("/dev/{n}")),
            _ => None,
        }
    }

    pub fn matches(&self, devname: &str, id: &Identity) -> bool {
        match self {
            Self::Name(n) => n == devname,
            Self::Uuid(u) => id.uuid.as_deref() == Some(u),
            Self::Label(l) => id.label.as_deref() == Some(l),
            Self::PartUuid(p) => id
                .partuuid
                .as_deref()
                .is_some_and(|x| x.eq_ignore_ascii_case(p)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_spec_table() {
        let id = Identity {
            uuid: Some("1234-ABCD".into()),
            label: Some("ALPINE".into()),
            partuuid: Some("0a0b0c0d-01".into()),
        };
        for (spec, want) in [
            ("/dev/sda1", true),
            ("sda1", true),
            ("/dev/sdb1", false),
            ("UUID=1234-ABCD", true),
            ("UUID=1234-abcd", false),
            ("LABEL=ALPINE", true),
            ("PARTUUID=0A0B0C0D-01", true),
        ] {
            assert_eq!(DeviceSpec::parse(spec).matches("sda1", &id), want, "{spec}");
        }
    }
}
