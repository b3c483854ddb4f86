//! One sort for all of the init's crates.
//!
//! Every call of `slice::sort`, `sort_by` or `sort_by_key` instantiates the
//! standard library's sort for that element type and comparator: with the
//! prebuilt std of a stable toolchain that is driftsort (or ipnsort for the
//! unstable sorts) with its helpers, several kB of machine code per call
//! site; about 70 kB of the static init were such copies (README.md, "Measured").
//! Here a call site only orders a list of indices through one non-generic
//! function, so the std sort is in the binary once, and then moves the
//! elements into that order, a loop of swaps.
//!
//! Same contract as the std sorts: stable (equal elements keep their order,
//! the index breaks ties), O(n log n) comparisons, and n machine words of
//! extra memory for the indices.

use std::cmp::Ordering;

/// `slice::sort`: ascending, stable.
pub fn sort<T: Ord>(v: &mut [T]) {
    sort_by(v, T::cmp);
}

/// `slice::sort_by`: ordered by `cmp`, stable.
pub fn sort_by<T>(v: &mut [T], mut cmp: impl FnMut(&T, &T) -> Ordering) {
    let mut order = sorted_indices(v.len(), &mut |a, b| cmp(&v[a], &v[b]));
    permute(v, &mut order);
}

/// `slice::sort_by_key`: ordered by `key`, stable.
pub fn sort_by_key<T, K: Ord>(v: &mut [T], mut key: impl FnMut(&T) -> K) {
    sort_by(v, |a, b| key(a).cmp(&key(b)));
}

/// The indices `0..n` ordered by `cmp`, ties by index (which makes the
/// unstable sort stable). Not generic: the one place a std sort is
/// instantiated.
fn sorted_indices(n: usize, cmp: &mut dyn FnMut(usize, usize) -> Ordering) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_unstable_by(|&a, &b| cmp(a, b).then(a.cmp(&b)));
    order
}

/// Puts the element `v[order[k]]` at position k for every k. Each cycle of
/// the permutation is walked once with swaps; a visited position is marked
/// by setting `order[k] = k`, so `order` ends as the identity.
fn permute<T>(v: &mut [T], order: &mut [usize]) {
    for start in 0..order.len() {
        let mut at = start;
        loop {
            let from = order[at];
            order[at] = at;
            if from == start {
                break;
            }
            v.swap(at, from);
            at = from;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator, so the tests need no crate.
    fn numbers(seed: u64, n: usize, modulo: u64) -> Vec<u64> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x % modulo
            })
            .collect()
    }

    #[test]
    fn sorts_as_std_for_every_length_up_to_64_and_larger() {
        for n in (0..=64).chain([100, 1000, 10_000]) {
            let mut ours = numbers(n as u64 + 1, n, 1 << 20);
            let mut want = ours.clone();
            want.sort();
            sort(&mut ours);
            assert_eq!(ours, want, "n = {n}");
        }
    }

    #[test]
    fn equal_keys_keep_their_order_as_std_sort_by_key() {
        // Many duplicates: (key, original position) pairs, sorted by key only.
        for n in [2, 17, 300, 5000] {
            let pairs: Vec<(u64, usize)> = numbers(7, n, 5).into_iter().zip(0..).collect();
            let mut ours = pairs.clone();
            let mut want = pairs;
            want.sort_by_key(|p| p.0);
            sort_by_key(&mut ours, |p| p.0);
            assert_eq!(ours, want, "n = {n}");
        }
    }

    #[test]
    fn sort_by_uses_the_comparator_given() {
        let mut words = vec!["b", "ccc", "a", "dd", "e"];
        sort_by(&mut words, |x, y| y.len().cmp(&x.len()));
        assert_eq!(words, ["ccc", "dd", "b", "a", "e"]);
        let mut names: Vec<String> = ["sdb", "sda", "sr0", "sda1"].map(String::from).to_vec();
        sort(&mut names);
        assert_eq!(names, ["sda", "sda1", "sdb", "sr0"]);
    }

    #[test]
    fn already_sorted_reversed_and_single_cycle_inputs() {
        let mut up: Vec<u32> = (0..500).collect();
        sort(&mut up);
        assert!(up.windows(2).all(|w| w[0] < w[1]));
        let mut down: Vec<u32> = (0..500).rev().collect();
        sort(&mut down);
        assert_eq!(down, up);
        // One cycle through every position: 1, 2, ..., n-1, 0.
        let mut rotated: Vec<u32> = (1..500).chain([0]).collect();
        sort(&mut rotated);
        assert_eq!(rotated, up);
    }
}
