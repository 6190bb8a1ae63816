//! The profile keys of trust specs seen before, so that a cache hit on the same text
//! costs a cheap hash and a comparison instead of a base64 decode and a SHA-256.
//!
//! The key of a spec is a function of its text alone, so a remembered key never goes
//! stale; it is looked for in the cache as if it had just been computed. A spec is
//! matched byte for byte (the hash only picks the slot): two specs with colliding
//! hashes never share a key.

use std::hash::{BuildHasherDefault, Hasher};

use gateway_auth_api::TrustSpec;
use lru::LruCache;

/// Specs seen, by a hash of their text, with their profile keys; bounded.
#[derive(Default)]
pub struct SeenSpecs {
    specs: Option<LruCache<u64, Seen, BuildHasherDefault<Identity>>>,
}

struct Seen {
    spec: TrustSpec,
    key: [u8; 32],
}

impl SeenSpecs {
    /// The key remembered for exactly this spec.
    pub fn key_of(&mut self, spec: &TrustSpec) -> Option<[u8; 32]> {
        let seen = self.specs.as_mut()?.get(&text_hash(spec))?;
        same(&seen.spec, spec).then_some(seen.key)
    }

    /// Remembers `key` for `spec`, keeping at most `bound` specs (the least recently
    /// looked up leave first).
    pub fn remember(&mut self, spec: &TrustSpec, key: [u8; 32], bound: usize) {
        let bound =
            std::num::NonZeroUsize::new(bound.max(1)).unwrap_or(std::num::NonZeroUsize::MIN);
        let specs = self
            .specs
            .get_or_insert_with(|| LruCache::with_hasher(bound, BuildHasherDefault::default()));
        if specs.cap() != bound {
            specs.resize(bound);
        }
        specs.put(
            text_hash(spec),
            Seen {
                spec: spec.clone(),
                key,
            },
        );
    }

    /// Forgets every spec.
    pub fn clear(&mut self) {
        self.specs = None;
    }
}

fn same(a: &TrustSpec, b: &TrustSpec) -> bool {
    a.web_roots == b.web_roots
        && a.ca_bundle == b.ca_bundle
        && a.client_certificate == b.client_certificate
        && a.client_key.as_ref().map(|k| k.secret()) == b.client_key.as_ref().map(|k| k.secret())
}

/// A fast 64-bit hash of every field, eight bytes at a time (not collision resistant:
/// [`same`] decides).
fn text_hash(spec: &TrustSpec) -> u64 {
    let mut hash = Mix(u64::from(spec.web_roots));
    hash.text(spec.ca_bundle.as_bytes());
    for field in [
        spec.client_certificate.as_deref(),
        spec.client_key.as_ref().map(|k| k.secret()),
    ] {
        match field {
            Some(text) => hash.text(text.as_bytes()),
            None => hash.word(u64::MAX),
        }
    }
    hash.0
}

struct Mix(u64);

impl Mix {
    const K: u64 = 0x517c_c1b7_2722_0a95;

    fn word(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(Self::K);
    }

    fn text(&mut self, bytes: &[u8]) {
        self.word(bytes.len() as u64);
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.word(u64::from_le_bytes(word));
        }
        let mut last = [0u8; 8];
        last[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
        self.word(u64::from_le_bytes(last));
    }
}

/// The map's hasher for keys that are hashes already.
#[derive(Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 << 8) | u64::from(*byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_is_matched_byte_for_byte_not_by_its_hash() {
        let mut seen = SeenSpecs::default();
        let spec = TrustSpec::ca("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
        seen.remember(&spec, [7; 32], 4);
        assert_eq!(seen.key_of(&spec), Some([7; 32]));
        // Another spec that lands in the same slot is not taken for it.
        let other = TrustSpec::ca("something else");
        let slot = text_hash(&spec);
        if let Some(specs) = seen.specs.as_mut() {
            let entry = specs.pop(&slot).unwrap();
            specs.put(text_hash(&other), entry);
        }
        assert_eq!(seen.key_of(&other), None);
    }

    #[test]
    fn every_field_tells_specs_apart() {
        let base = TrustSpec::ca("ca");
        let web = TrustSpec {
            web_roots: true,
            ..base.clone()
        };
        let identity = base
            .clone()
            .with_identity("cert".to_string(), "key".to_string());
        let other_key = base
            .clone()
            .with_identity("cert".to_string(), "key2".to_string());
        let mut seen = SeenSpecs::default();
        seen.remember(&base, [1; 32], 8);
        seen.remember(&identity, [2; 32], 8);
        assert_eq!(seen.key_of(&base), Some([1; 32]));
        assert_eq!(seen.key_of(&identity), Some([2; 32]));
        assert_eq!(seen.key_of(&web), None);
        assert_eq!(seen.key_of(&other_key), None);
    }

    #[test]
    fn at_most_the_bound_is_remembered() {
        let mut seen = SeenSpecs::default();
        for i in 0..10u8 {
            seen.remember(&TrustSpec::ca(format!("ca {i}")), [i; 32], 3);
        }
        let held = (0..10u8)
            .filter(|i| seen.key_of(&TrustSpec::ca(format!("ca {i}"))).is_some())
            .count();
        assert_eq!(held, 3);
    }
}
