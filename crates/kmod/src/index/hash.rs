//! A small multiply-rotate hasher (the "Fx" scheme of rustc's own maps) for the index's
//! internal maps. std's default SipHash resists collision flooding by untrusted keys, at
//! several times the cost per byte; the keys here are module names and alias bus prefixes
//! from the image's own depmod files, which come with the init and are as trusted as it is.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// Odd multiplier with well-mixed bits (from the Fx scheme); any odd constant keeps the map
/// correct, this one keeps the buckets even.
const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

/// See the module documentation.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FxHasher {
    hash: u64,
}

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            // The length keeps "a" and "a\0" apart within one write.
            self.add(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

pub(crate) type FxBuild = BuildHasherDefault<FxHasher>;
pub(crate) type FxHashMap<K, V> = HashMap<K, V, FxBuild>;
pub(crate) type FxHashSet<K> = HashSet<K, FxBuild>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, Hash};

    fn hash<T: Hash + ?Sized>(value: &T) -> u64 {
        FxBuild::default().hash_one(value)
    }

    #[test]
    fn equal_keys_hash_equal_and_near_keys_differ() {
        // Pairs that differ in one byte, in the tail, in length or only in a trailing NUL: a
        // hasher that dropped the tail or the length would give them the same value.
        let pairs = [
            ("pci", "usb"),
            ("acpi", "acpj"),
            ("usb_storage", "usb_storagf"),
            ("a", "a\0"),
            ("", "\0"),
            ("12345678", "123456789"),
            ("abcdefgh", "abcdefgi"),
            ("crc32c_intel", "crc32c_inte"),
        ];
        for (a, b) in pairs {
            assert_eq!(hash(a), hash(&a.to_owned()), "{a:?}");
            assert_ne!(hash(a), hash(b), "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn maps_find_what_was_inserted() {
        let names: Vec<String> = (0..2000).map(|i| format!("mod_{i}")).collect();
        let mut map = FxHashMap::default();
        for (i, name) in names.iter().enumerate() {
            map.insert(name.clone(), i);
        }
        assert_eq!(map.len(), names.len());
        for (i, name) in names.iter().enumerate() {
            assert_eq!(map.get(name.as_str()), Some(&i), "{name}");
        }
        assert_eq!(map.get("mod_2000"), None);
        let set: FxHashSet<&str> = ["ext4", "vfat", "ext4"].into_iter().collect();
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn distinct_short_keys_spread_over_values() {
        // 10 000 distinct names must not collapse onto a few hash values (a broken mix step
        // would make every map lookup a linear scan).
        let mut seen: FxHashSet<u64> = FxHashSet::default();
        for i in 0..10_000 {
            seen.insert(hash(&format!("m{i}")));
        }
        assert!(seen.len() > 9_990, "{} distinct hashes", seen.len());
    }
}
