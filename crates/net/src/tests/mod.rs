#[cfg(feature = "https")]
mod deadline;
mod dhcp;
mod dns;
pub(super) mod http;
mod interface;
mod ipconfig;
mod location;
mod netlink;
#[cfg(feature = "https")]
mod tls;
