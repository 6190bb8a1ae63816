//! Which entry a full cache gives up, one at a time: the least recently used (LRU), or,
//! with the TinyLFU admission filter, whichever of the newcomer and the LRU victim has
//! been asked for less often.
//!
//! LRU alone hits nothing on a steady round-robin over more keys than the capacity:
//! every access evicts the key needed next. The filter (after Caffeine's W-TinyLFU)
//! keeps the newest entries in a small window; an entry leaving the window enters the
//! main cache only if a frequency sketch says it is asked for more often than the main
//! cache's LRU entry, which it would replace. A scan of one-off keys passes through
//! the window without displacing the frequently used ones.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use gateway_auth_api::EvictionPolicy;
use lru::LruCache;

/// The bounded entries of a cache under an [`EvictionPolicy`]. Every access is
/// recorded through [`Entries::get`] (hit or miss); [`Entries::insert`] returns the
/// entry that left to make room, if one did.
pub struct Entries<K: Hash + Eq, V> {
    policy: EvictionPolicy,
    capacity: usize,
    /// The newest entries (TinyLFU only; empty under LRU).
    window: LruCache<K, V>,
    /// Every entry under LRU; the admitted ones under TinyLFU.
    main: LruCache<K, V>,
    /// How often each key was asked for, approximately (TinyLFU only).
    sketch: FrequencySketch,
}

impl<K: Hash + Eq + Clone, V> Entries<K, V> {
    /// No entries, at most `capacity` (at least 1) under `policy`.
    pub fn new(capacity: usize, policy: EvictionPolicy) -> Self {
        let capacity = capacity.max(1);
        Self {
            policy,
            capacity,
            window: LruCache::unbounded(),
            main: LruCache::unbounded(),
            sketch: FrequencySketch::new(capacity),
        }
    }

    /// How many entries are held.
    pub fn len(&self) -> usize {
        self.window.len() + self.main.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records an access to `key` and returns its entry, marking it most recently used.
    pub fn get(&mut self, key: &K) -> Option<&V> {
        if self.policy == EvictionPolicy::TinyLfu {
            self.sketch.increment(key);
        }
        if self.window.contains(key) {
            return self.window.get(key);
        }
        self.main.get(key)
    }

    /// Adds `key` (or replaces its value); returns the entry that left to make room:
    /// the LRU one, or under TinyLFU possibly the one leaving the window.
    pub fn insert(&mut self, key: K, value: V) -> Option<(K, V)> {
        if self.window.contains(&key) {
            self.window.put(key, value);
            return None;
        }
        if self.main.contains(&key) {
            self.main.put(key, value);
            return None;
        }
        match self.policy {
            EvictionPolicy::Lru => {
                self.main.put(key, value);
                self.shrink_main(self.capacity).pop()
            }
            EvictionPolicy::TinyLfu => {
                self.window.put(key, value);
                if self.window.len() <= window_capacity(self.capacity) {
                    return self.shrink_main(self.capacity - self.window.len()).pop();
                }
                let candidate = self.window.pop_lru()?;
                self.admit(candidate)
            }
        }
    }

    /// Drops `key`; returns its value.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        self.window.pop(key).or_else(|| self.main.pop(key))
    }

    /// Drops every entry. Frequencies are kept: they describe the traffic, not the
    /// entries.
    pub fn clear(&mut self) {
        self.window.clear();
        self.main.clear();
    }

    /// The entries, most recently used first (the window's before the main cache's).
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.window.iter().chain(self.main.iter())
    }

    /// Changes the bound and the policy; returns the entries evicted to fit, least
    /// recently used first. The entries kept stay valid and keep their recency order.
    pub fn configure(&mut self, capacity: usize, policy: EvictionPolicy) -> Vec<(K, V)> {
        let capacity = capacity.max(1);
        if policy != self.policy || capacity != self.capacity {
            // One recency list, most recent first, then split again under the new
            // policy: the most recent entries form the window.
            let mut all: Vec<(K, V)> = Vec::with_capacity(self.len());
            while let Some(entry) = self.main.pop_lru() {
                all.push(entry);
            }
            while let Some(entry) = self.window.pop_lru() {
                all.push(entry);
            }
            // `all` is least recent first.
            let mut evicted = Vec::new();
            let excess = all.len().saturating_sub(capacity);
            evicted.extend(all.drain(..excess));
            let window = match policy {
                EvictionPolicy::Lru => 0,
                EvictionPolicy::TinyLfu => window_capacity(capacity).min(all.len()),
            };
            let split = all.len() - window;
            let newest = all.split_off(split);
            for (k, v) in all {
                self.main.put(k, v);
            }
            for (k, v) in newest {
                self.window.put(k, v);
            }
            if capacity != self.capacity {
                self.sketch = FrequencySketch::new(capacity);
            }
            self.capacity = capacity;
            self.policy = policy;
            return evicted;
        }
        Vec::new()
    }

    /// The window's LRU entry `candidate` enters the main cache if there is room, or
    /// if it is asked for more often than the main cache's LRU entry, which then
    /// leaves; otherwise the candidate leaves.
    fn admit(&mut self, candidate: (K, V)) -> Option<(K, V)> {
        let room = self.capacity - self.window.len();
        if self.main.len() < room {
            self.main.put(candidate.0, candidate.1);
            return None;
        }
        let Some((victim, _)) = self.main.peek_lru() else {
            return Some(candidate);
        };
        if self.sketch.frequency(&candidate.0) > self.sketch.frequency(victim) {
            let evicted = self.main.pop_lru();
            self.main.put(candidate.0, candidate.1);
            evicted
        } else {
            Some(candidate)
        }
    }

    /// Evicts the main cache's LRU entries until it holds at most `bound`.
    fn shrink_main(&mut self, bound: usize) -> Vec<(K, V)> {
        let mut evicted = Vec::new();
        while self.main.len() > bound {
            match self.main.pop_lru() {
                Some(entry) => evicted.push(entry),
                None => break,
            }
        }
        evicted
    }
}

/// The window's share of the capacity under TinyLFU: 1 %, at least one entry.
fn window_capacity(capacity: usize) -> usize {
    (capacity / 100).max(1)
}

/// A count-min sketch of small counters (saturating at 15) in four rows, halved after
/// ten additions per counter of a row so that old popularity fades.
struct FrequencySketch {
    rows: [Vec<u8>; 4],
    mask: usize,
    additions: usize,
    sample: usize,
}

const MAX_COUNT: u8 = 15;

impl FrequencySketch {
    fn new(capacity: usize) -> Self {
        // Sixteen counters per entry of capacity in each row (64 bytes per entry in
        // all): with fewer, the distinct keys of a round-robin ten times the capacity
        // collide until the newcomer often looks more popular than the entry it would
        // replace, and the filter churns.
        let width = capacity.saturating_mul(16).max(16).next_power_of_two();
        Self {
            rows: std::array::from_fn(|_| vec![0; width]),
            mask: width - 1,
            additions: 0,
            sample: width.saturating_mul(10),
        }
    }

    fn slots<K: Hash>(&self, key: &K) -> [usize; 4] {
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        let hash = hasher.finish();
        // Double hashing: four indices from the two halves of one 64-bit hash.
        let (a, b) = (hash as u32 as usize, (hash >> 32) as usize | 1);
        std::array::from_fn(|i| a.wrapping_add(i.wrapping_mul(b)) & self.mask)
    }

    fn increment<K: Hash>(&mut self, key: &K) {
        let slots = self.slots(key);
        let mut added = false;
        for (row, slot) in self.rows.iter_mut().zip(slots) {
            if row[slot] < MAX_COUNT {
                row[slot] += 1;
                added = true;
            }
        }
        if added {
            self.additions += 1;
            if self.additions >= self.sample {
                self.age();
            }
        }
    }

    fn frequency<K: Hash>(&self, key: &K) -> u8 {
        let slots = self.slots(key);
        self.rows
            .iter()
            .zip(slots)
            .map(|(row, slot)| row[slot])
            .min()
            .unwrap_or(0)
    }

    /// Halves every counter: popularity decays, so a formerly hot key does not keep its
    /// place forever.
    fn age(&mut self) {
        for row in &mut self.rows {
            for count in row.iter_mut() {
                *count /= 2;
            }
        }
        self.additions /= 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hit rate of `trace` under `policy` with `capacity`.
    fn hit_rate(trace: &[u32], capacity: usize, policy: EvictionPolicy) -> f64 {
        let mut entries = Entries::new(capacity, policy);
        let mut hits = 0;
        for key in trace {
            if entries.get(key).is_some() {
                hits += 1;
            } else {
                entries.insert(*key, ());
            }
        }
        hits as f64 / trace.len() as f64
    }

    fn round_robin(keys: u32, rounds: u32) -> Vec<u32> {
        (0..rounds).flat_map(|_| 0..keys).collect()
    }

    #[test]
    fn lru_evicts_exactly_the_least_recently_used_entry() {
        let mut entries = Entries::new(3, EvictionPolicy::Lru);
        for key in [1, 2, 3] {
            assert!(entries.insert(key, key * 10).is_none());
        }
        entries.get(&1);
        assert_eq!(entries.insert(4, 40), Some((2, 20)));
        assert_eq!(entries.len(), 3);
        let order: Vec<u32> = entries.iter().map(|(k, _)| *k).collect();
        assert_eq!(order, [4, 1, 3]);
    }

    #[test]
    fn lru_hits_nothing_on_a_round_robin_just_over_capacity_and_the_filter_hits_almost_everything()
    {
        let trace = round_robin(101, 30);
        assert_eq!(hit_rate(&trace, 100, EvictionPolicy::Lru), 0.0);
        let filtered = hit_rate(&trace, 100, EvictionPolicy::TinyLfu);
        assert!(filtered > 0.9, "{filtered}");
    }

    #[test]
    fn the_filter_keeps_a_hot_set_through_a_scan_of_one_off_keys() {
        // 90 hot keys, each round followed by 30 keys never seen again.
        let mut trace = Vec::new();
        let mut one_off = 1_000;
        for _ in 0..50 {
            trace.extend(0..90);
            trace.extend(one_off..one_off + 30);
            one_off += 30;
        }
        let lru = hit_rate(&trace, 100, EvictionPolicy::Lru);
        let filtered = hit_rate(&trace, 100, EvictionPolicy::TinyLfu);
        assert!(lru < 0.1, "{lru}");
        assert!(filtered > 0.7, "{filtered}");
    }

    #[test]
    fn under_the_filter_one_entry_leaves_at_a_time_and_the_newest_is_always_held() {
        let mut entries = Entries::new(10, EvictionPolicy::TinyLfu);
        for key in 0..1_000u32 {
            let before = entries.len();
            let evicted = entries.insert(key, ());
            assert!(
                entries.get(&key).is_some(),
                "the entry just inserted is held"
            );
            assert_eq!(entries.len(), before + 1 - usize::from(evicted.is_some()));
            assert!(entries.len() <= 10);
        }
        assert_eq!(entries.len(), 10);
    }

    #[test]
    fn switching_the_policy_keeps_the_entries_and_their_order() {
        let mut entries = Entries::new(5, EvictionPolicy::Lru);
        for key in 0..5u32 {
            entries.insert(key, key);
        }
        entries.get(&0);
        let order = |e: &Entries<u32, u32>| e.iter().map(|(k, v)| (*k, *v)).collect::<Vec<_>>();
        let before = order(&entries);
        assert!(entries.configure(5, EvictionPolicy::TinyLfu).is_empty());
        assert_eq!(order(&entries), before);
        assert!(entries.configure(5, EvictionPolicy::Lru).is_empty());
        assert_eq!(order(&entries), before);
        // Lowering the bound evicts the least recently used.
        let evicted: Vec<u32> = entries
            .configure(3, EvictionPolicy::TinyLfu)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(evicted, [1, 2]);
        assert_eq!(order(&entries), before[..3]);
    }

    #[test]
    fn a_value_replaced_under_its_key_evicts_nothing() {
        for policy in [EvictionPolicy::Lru, EvictionPolicy::TinyLfu] {
            let mut entries = Entries::new(2, policy);
            entries.insert(1, "a");
            entries.insert(2, "b");
            assert_eq!(entries.insert(1, "c"), None);
            assert_eq!(entries.get(&1), Some(&"c"));
            assert_eq!(entries.len(), 2);
        }
    }

    #[test]
    fn a_capacity_of_one_holds_the_newest_entry_under_both_policies() {
        for policy in [EvictionPolicy::Lru, EvictionPolicy::TinyLfu] {
            let mut entries = Entries::new(1, policy);
            entries.insert(1, ());
            assert_eq!(entries.insert(2, ()).map(|(k, _)| k), Some(1));
            assert!(entries.get(&2).is_some());
            assert_eq!(entries.len(), 1);
        }
    }
}
