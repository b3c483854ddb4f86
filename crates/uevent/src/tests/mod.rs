mod parse;
mod socket;
mod sweep;

/// A kernel-style datagram: the header and each pair NUL-terminated.
pub(super) fn datagram(header: &str, pairs: &[&str]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for part in std::iter::once(header).chain(pairs.iter().copied()) {
        bytes.extend_from_slice(part.as_bytes());
        bytes.push(0);
    }
    bytes
}
