//! The bounded cache of built TLS configurations.
//!
//! Unlike a FIFO cache, a hit freshens the entry; unlike a cache that clears itself
//! when full, an insert past capacity drops exactly one entry: the least recently used,
//! or under the TinyLFU admission filter possibly the newcomer (see [`super::policy`]).

use std::sync::Arc;

use rustls::client::ClientConfig;

use gateway_auth_api::{CacheSettings, CacheStats, Profile, ProfileExpiry, TlsError, TrustSpec};

use super::config;
use super::material::Material;
use super::policy::Entries;
use super::seen::SeenSpecs;

/// A configuration ready for connections, with its profile.
#[derive(Clone)]
pub struct Prepared {
    /// What `prepare` reports.
    pub profile: Profile,
    /// The configuration to connect with.
    pub config: Arc<ClientConfig>,
}

struct Entry {
    prepared: Prepared,
    built_at_ms: u64,
}

/// The cache. Time is passed in, so expiry is tested without waiting.
pub struct TlsCache {
    entries: Entries<[u8; 32], Entry>,
    seen: SeenSpecs,
    settings: CacheSettings,
    stats: CacheStats,
}

impl Default for TlsCache {
    fn default() -> Self {
        Self::new(CacheSettings::default())
    }
}

impl TlsCache {
    /// An empty cache with these bounds.
    pub fn new(settings: CacheSettings) -> Self {
        let settings = CacheSettings {
            capacity: settings.capacity.max(1),
            ..settings
        };
        Self {
            entries: Entries::new(settings.capacity as usize, settings.policy),
            seen: SeenSpecs::default(),
            settings,
            stats: CacheStats::default(),
        }
    }

    /// Changes the bounds and the policy; a lower capacity evicts least recently used
    /// entries. The entries kept stay valid.
    pub fn configure(&mut self, settings: CacheSettings) {
        let capacity_now = settings.capacity.max(1);
        let evicted = self
            .entries
            .configure(capacity_now as usize, settings.policy);
        self.stats.evictions += evicted.len() as u64;
        self.settings = CacheSettings {
            capacity: capacity_now,
            ..settings
        };
    }

    /// The configuration for `spec`: from the cache when present and fresh (marking it
    /// most recently used), else built, cached, and the least recently used entry
    /// evicted if the cache is full. Bad input is counted and nothing is cached.
    pub fn prepare(&mut self, spec: &TrustSpec, now_ms: u64) -> Result<Prepared, TlsError> {
        // A spec seen before, byte for byte, needs no decoding to find its key.
        let remembered = self.seen.key_of(spec);
        let (key, material) = match remembered {
            Some(key) => (key, None),
            None => {
                let material = Material::decode(spec).inspect_err(|_| self.stats.rejected += 1)?;
                (material.id(), Some(material))
            }
        };

        let ttl = self.settings.ttl_seconds;
        if let Some(entry) = self.entries.get(&key) {
            if is_fresh(ttl, entry, now_ms) {
                self.stats.hits += 1;
                let mut prepared = entry.prepared.clone();
                prepared.profile.cached = true;
                return Ok(prepared);
            }
            self.entries.remove(&key);
            self.stats.expirations += 1;
        }

        let material = match material {
            Some(material) => material,
            None => Material::decode(spec).inspect_err(|_| self.stats.rejected += 1)?,
        };
        let built = config::build(&material).inspect_err(|_| self.stats.rejected += 1)?;
        self.stats.misses += 1;
        let prepared = Prepared {
            profile: Profile {
                id: crate::digest::hex(&key),
                anchors: built.anchors,
                mutual_tls: material.identity.is_some(),
                not_after: built.not_after,
                cached: false,
            },
            config: built.config,
        };
        let entry = Entry {
            prepared: prepared.clone(),
            built_at_ms: now_ms,
        };
        if self.entries.insert(key, entry).is_some() {
            self.stats.evictions += 1;
        }
        self.seen
            .remember(spec, key, self.settings.capacity as usize);
        Ok(prepared)
    }

    /// The entry with this hex profile id: a hit that marks it most recently used, as
    /// `prepare` of its spec would. [`TlsError::UnknownProfile`] when no fresh entry
    /// has the id (an expired one is dropped and counted): the caller prepares the spec
    /// again.
    pub fn lookup(&mut self, id: &str, now_ms: u64) -> Result<Prepared, TlsError> {
        let key = parse_hex_id(id).ok_or(TlsError::UnknownProfile)?;
        let ttl = self.settings.ttl_seconds;
        let entry = self.entries.get(&key).ok_or(TlsError::UnknownProfile)?;
        if !is_fresh(ttl, entry, now_ms) {
            self.entries.remove(&key);
            self.stats.expirations += 1;
            return Err(TlsError::UnknownProfile);
        }
        self.stats.hits += 1;
        let mut prepared = entry.prepared.clone();
        prepared.profile.cached = true;
        Ok(prepared)
    }

    /// The configuration of the profile with this hex id, for an upstream session
    /// (see [`Self::lookup`]).
    pub fn config_for(&mut self, id: &str, now_ms: u64) -> Result<Arc<ClientConfig>, TlsError> {
        self.lookup(id, now_ms).map(|prepared| prepared.config)
    }

    /// Drops the entry with this hex id; returns whether there was one.
    pub fn invalidate(&mut self, id: &str) -> bool {
        let Some(key) = parse_hex_id(id) else {
            return false;
        };
        self.entries.remove(&key).is_some()
    }

    /// Drops every entry (a certificate reload). Counters are kept.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.seen.clear();
    }

    /// The expiry of every entry held that has one (web roots alone have none), most
    /// recently used first. Expired entries not yet looked up are still held, and so
    /// listed: their certificates' dates are what a monitor wants to see.
    pub fn profiles(&self) -> Vec<ProfileExpiry> {
        self.entries
            .iter()
            .filter_map(|(_, entry)| {
                let profile = &entry.prepared.profile;
                Some(ProfileExpiry {
                    id: profile.id.clone(),
                    not_after: profile.not_after?,
                })
            })
            .collect()
    }

    /// The counters and current size.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            size: self.entries.len() as u32,
            capacity: self.settings.capacity,
            ..self.stats
        }
    }
}

fn is_fresh(ttl_seconds: Option<u64>, entry: &Entry, now_ms: u64) -> bool {
    match ttl_seconds {
        None => true,
        Some(ttl) => now_ms.saturating_sub(entry.built_at_ms) < ttl.saturating_mul(1000),
    }
}

fn parse_hex_id(id: &str) -> Option<[u8; 32]> {
    let bytes = id.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let text = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::testing::ca;

    fn spec_of(name: &str) -> TrustSpec {
        TrustSpec {
            ca_bundle: ca(name).pem,
            ..TrustSpec::default()
        }
    }

    fn cache(capacity: u32) -> TlsCache {
        TlsCache::new(CacheSettings {
            capacity,
            ttl_seconds: None,
            ..Default::default()
        })
    }

    #[test]
    fn evicts_least_recently_used() {
        let mut c = cache(3);
        let [a, b, cc, d] = ["a", "b", "c", "d"].map(spec_of);
        for s in [&a, &b, &cc] {
            assert!(!c.prepare(s, 0).unwrap().profile.cached);
        }
        assert!(c.prepare(&a, 0).unwrap().profile.cached);
        c.prepare(&d, 0).unwrap();
        assert_eq!(c.stats().evictions, 1);
        assert!(
            c.prepare(&a, 0).unwrap().profile.cached,
            "A was used recently and stays"
        );
        assert!(c.prepare(&cc, 0).unwrap().profile.cached);
        assert!(c.prepare(&d, 0).unwrap().profile.cached);
        assert!(
            !c.prepare(&b, 0).unwrap().profile.cached,
            "B was the least recently used"
        );
    }

    #[test]
    fn a_lookup_by_id_is_a_hit_that_freshens_and_ends_with_eviction_or_expiry() {
        let mut c = TlsCache::new(CacheSettings {
            capacity: 2,
            ttl_seconds: Some(60),
            ..Default::default()
        });
        let [a, b, d] = ["a", "b", "d"].map(spec_of);
        let built = c.prepare(&a, 0).unwrap().profile;
        c.prepare(&b, 0).unwrap();
        let found = c.lookup(&built.id, 1_000).unwrap().profile;
        assert_eq!(
            found,
            Profile {
                cached: true,
                ..built.clone()
            }
        );
        // The lookup made A the most recently used: D evicts B.
        c.prepare(&d, 1_000).unwrap();
        assert!(c.prepare(&a, 1_000).unwrap().profile.cached);
        assert_eq!(c.stats().hits, 2);
        assert_eq!(
            c.lookup(&built.id, 60_000).map(|p| p.profile.id),
            Err(TlsError::UnknownProfile),
            "expired"
        );
        assert_eq!(c.stats().expirations, 1);
        for unknown in ["", "zz", &"0".repeat(64)] {
            assert_eq!(
                c.lookup(unknown, 0).map(|p| p.profile.id),
                Err(TlsError::UnknownProfile)
            );
        }
    }

    #[test]
    fn overflow_evicts_one_entry_never_all() {
        let specs: Vec<TrustSpec> = (0..11).map(|i| spec_of(&format!("ca{i}"))).collect();
        let mut c = cache(10);
        for s in &specs {
            c.prepare(s, 0).unwrap();
        }
        for s in &specs[1..] {
            assert!(c.prepare(s, 0).unwrap().profile.cached);
        }
        let stats = c.stats();
        assert_eq!(
            (stats.hits, stats.misses, stats.evictions, stats.size),
            (10, 11, 1, 10)
        );
    }

    #[test]
    fn an_entry_older_than_the_ttl_is_rebuilt_and_counted() {
        let mut c = TlsCache::new(CacheSettings {
            capacity: 4,
            ttl_seconds: Some(60),
            ..Default::default()
        });
        let a = spec_of("a");
        c.prepare(&a, 1_000).unwrap();
        assert!(c.prepare(&a, 60_999).unwrap().profile.cached);
        assert!(!c.prepare(&a, 61_000).unwrap().profile.cached);
        let stats = c.stats();
        assert_eq!((stats.hits, stats.misses, stats.expirations), (1, 2, 1));
        assert!(
            c.prepare(&a, 61_001).unwrap().profile.cached,
            "the rebuilt entry is fresh again"
        );
    }

    #[test]
    fn bad_input_is_counted_and_cached_entries_keep_serving() {
        let mut c = cache(4);
        let a = spec_of("a");
        let id = c.prepare(&a, 0).unwrap().profile.id;
        assert!(c.prepare(&spec_of_text("nope"), 0).is_err());
        assert!(c.prepare(&spec_of_text(""), 0).is_err());
        let not_x509 = "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n";
        assert!(c.prepare(&spec_of_text(not_x509), 0).is_err());
        let stats = c.stats();
        assert_eq!((stats.rejected, stats.size, stats.misses), (3, 1, 1));
        let again = c.prepare(&a, 0).unwrap();
        assert!(again.profile.cached);
        assert_eq!(again.profile.id, id);
    }

    #[test]
    fn a_rejected_spec_is_rejected_every_time_and_an_evicted_one_is_built_again() {
        let mut c = cache(1);
        let not_x509 =
            spec_of_text("-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n");
        for _ in 0..3 {
            assert!(c.prepare(&not_x509, 0).is_err());
        }
        assert_eq!(c.stats().rejected, 3);
        let (a, b) = (spec_of("a"), spec_of("b"));
        let first = c.prepare(&a, 0).unwrap().profile;
        c.prepare(&b, 0).unwrap();
        let again = c.prepare(&a, 0).unwrap().profile;
        assert!(!again.cached, "a was evicted: built again");
        assert_eq!(again.id, first.id);
        assert_eq!((c.stats().misses, c.stats().hits), (3, 0));
    }

    fn spec_of_text(text: &str) -> TrustSpec {
        TrustSpec {
            ca_bundle: text.into(),
            ..TrustSpec::default()
        }
    }

    #[test]
    fn invalidate_and_clear_drop_entries_and_keep_counters() {
        let mut c = cache(4);
        let id = c.prepare(&spec_of("a"), 0).unwrap().profile.id;
        c.prepare(&spec_of("b"), 0).unwrap();
        assert!(c.invalidate(&id));
        assert!(!c.invalidate(&id));
        assert!(!c.invalidate("not-hex"));
        assert_eq!(c.stats().size, 1);
        c.clear();
        let stats = c.stats();
        assert_eq!((stats.size, stats.misses), (0, 2));
        assert!(!c.prepare(&spec_of("b"), 0).unwrap().profile.cached);
    }

    #[test]
    fn lowering_the_capacity_evicts_the_least_recently_used() {
        let mut c = cache(4);
        let specs: Vec<TrustSpec> = ["a", "b", "c"].into_iter().map(spec_of).collect();
        for s in &specs {
            c.prepare(s, 0).unwrap();
        }
        c.prepare(&specs[0], 0).unwrap();
        c.configure(CacheSettings {
            capacity: 2,
            ttl_seconds: None,
            ..Default::default()
        });
        let stats = c.stats();
        assert_eq!((stats.size, stats.capacity, stats.evictions), (2, 2, 1));
        assert!(c.prepare(&specs[0], 0).unwrap().profile.cached);
        assert!(c.prepare(&specs[2], 0).unwrap().profile.cached);
    }

    #[test]
    fn every_held_profile_is_listed_with_its_expiry_and_a_dropped_one_is_not() {
        let mut c = cache(4);
        let a = c.prepare(&spec_of("a"), 0).unwrap().profile;
        let b = c.prepare(&spec_of("b"), 0).unwrap().profile;
        let listed = c.profiles();
        assert_eq!(listed.len(), 2);
        for profile in [&a, &b] {
            let expiry = listed.iter().find(|p| p.id == profile.id).unwrap();
            assert_eq!(Some(expiry.not_after), profile.not_after);
        }
        c.invalidate(&a.id);
        let ids: Vec<String> = c.profiles().into_iter().map(|p| p.id).collect();
        assert_eq!(ids, vec![b.id]);
    }

    #[test]
    fn a_zero_capacity_is_treated_as_one() {
        let c = cache(0);
        assert_eq!(c.stats().capacity, 1);
    }
}
