//! Admission to the verified-token cache: a token is cached on its second use, not its
//! first.
//!
//! Most tokens are used many times (a client keeps its access token for its lifetime, an
//! hour by default at Cognito), and for them caching on the second use costs one more
//! signature check per token. Some are used once only (a client that fetches a new token
//! for every call, a burst of distinct tokens); cached on their first use, each of those
//! would take a cache entry (about 0.5 KiB) and push out an entry that is used again. The
//! doorkeeper remembers only an 8-byte word for each token seen once, so a stream of
//! one-use tokens costs a fixed table instead of a full cache. This is TinyLFU's doorkeeper
//! (Einziger, Friedman and Manes, 2017), with its periodic reset, as a direct-mapped table.
//!
//! How long a first use is remembered: until `window` other tokens' first uses have been
//! noted (at least that many, at most twice: the table counts first uses in generations of
//! `window`, and a slot holding a word older than the previous generation reads as empty),
//! and only while no other token lands in its slot (with `slots` slots the chance a token
//! keeps its slot through `n` others is about e^(-n/slots)). A token used again after that
//! is admitted on its next use. Forgetting costs only a later admission, never a wrong
//! answer: admission decides what is cached, not what is valid.

use std::sync::atomic::{AtomicU64, Ordering};

/// Bits of a slot's word that hold the generation; the rest hold the fingerprint.
const GENERATION_BITS: u32 = 16;
const GENERATION_MASK: u64 = (1 << GENERATION_BITS) - 1;

/// Tokens seen once: per slot, a fingerprint of the token and the generation it was seen in.
pub struct Doorkeeper {
    slots: Box<[AtomicU64]>,
    /// `slots.len() - 1`; the length is a power of two.
    mask: u64,
    /// First uses noted so far; `noted / window` is the generation.
    noted: AtomicU64,
    window: u64,
}

impl Doorkeeper {
    /// A doorkeeper for a cache of `entries`: a first use is remembered through `entries` to
    /// twice `entries` other first uses, in twice `entries` slots rounded up to a power of two
    /// (32768 slots, 256 KiB, for the default 10000 entries). Pages are touched only as
    /// tokens land in them.
    pub fn for_cache(entries: usize) -> Self {
        let entries = entries.max(1);
        let len = entries.saturating_mul(2).next_power_of_two();
        Doorkeeper {
            slots: (0..len).map(|_| AtomicU64::new(0)).collect(),
            mask: len as u64 - 1,
            noted: AtomicU64::new(0),
            window: entries as u64,
        }
    }

    /// Notes a use of the token whose SHA-256 is `digest`; true when its first use was
    /// noted here and is still remembered, i.e. when it should now be cached.
    pub fn admit(&self, digest: &[u8; 32]) -> bool {
        let (fingerprint, index) = split(digest);
        let slot = &self.slots[(index & self.mask) as usize];
        let generation = self.noted.load(Ordering::Relaxed) / self.window;
        let held = slot.load(Ordering::Relaxed);
        if held != 0 && held >> GENERATION_BITS == fingerprint {
            let age = generation.wrapping_sub(held & GENERATION_MASK) & GENERATION_MASK;
            if age <= 1 {
                return true;
            }
        }
        slot.store(
            fingerprint << GENERATION_BITS | (generation & GENERATION_MASK),
            Ordering::Relaxed,
        );
        self.noted.fetch_add(1, Ordering::Relaxed);
        false
    }

    /// How many slots there are.
    pub fn slots(&self) -> usize {
        self.slots.len()
    }
}

/// The fingerprint (48 bits, never 0, so that a used slot is never all zeros) and the slot
/// index of a digest: two disjoint 8-byte words of it, so they are independent.
fn split(digest: &[u8; 32]) -> (u64, u64) {
    let word = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&digest[i..i + 8]);
        u64::from_le_bytes(b)
    };
    ((word(0) >> GENERATION_BITS) | 1, word(8))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(n: u64) -> [u8; 32] {
        // A SHA-256, so the words are spread the way real keys are.
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &n.to_le_bytes());
        d.as_ref().try_into().unwrap()
    }

    #[test]
    fn admits_on_the_second_use_and_after() {
        let d = Doorkeeper::for_cache(100);
        assert_eq!(d.slots(), 256);
        let a = digest(1);
        assert!(!d.admit(&a), "first use");
        assert!(d.admit(&a), "second use");
        assert!(d.admit(&a), "third use");
        assert!(!d.admit(&digest(2)), "another token's first use");
    }

    #[test]
    fn a_token_in_the_same_slot_makes_it_forget() {
        let d = Doorkeeper::for_cache(4); // 8 slots
        let a = digest(1);
        let slot = split(&a).1 & d.mask;
        let b = (2..)
            .map(digest)
            .find(|b| split(b).1 & d.mask == slot && split(b).0 != split(&a).0)
            .unwrap();
        assert!(!d.admit(&a));
        assert!(!d.admit(&b));
        assert!(!d.admit(&a), "a was forgotten when b took its slot");
        assert!(d.admit(&a));
    }

    #[test]
    fn a_first_use_is_forgotten_after_two_windows_of_others() {
        // A large table for a window of 10, so that no slot is shared: only age forgets.
        let mut d = Doorkeeper::for_cache(10);
        d.slots = (0..1 << 20).map(|_| AtomicU64::new(0)).collect();
        d.mask = (1 << 20) - 1;
        let a = digest(1);
        assert!(!d.admit(&a)); // generation 0
        for n in 100..110 {
            assert!(!d.admit(&digest(n)));
        }
        // Generation 1 now: a (generation 0) is still remembered.
        assert!(d.admit(&a));
        let b = digest(2);
        assert!(!d.admit(&b)); // generation 1
        for n in 200..220 {
            assert!(!d.admit(&digest(n)));
        }
        // Generation 3: b, two generations old, reads as never seen; then it is noted anew.
        assert!(!d.admit(&b), "b forgotten");
        assert!(d.admit(&b));
    }

    #[test]
    fn one_use_tokens_are_not_admitted_and_second_uses_soon_after_are() {
        let d = Doorkeeper::for_cache(10_000);
        assert_eq!(d.slots(), 32_768);
        // 20000 distinct tokens, each once: none admitted.
        let first: usize = (0..20_000).filter(|&n| d.admit(&digest(n))).count();
        assert_eq!(first, 0);
        // Each of 9000 more used again after 1000 others' first uses: admitted unless one of
        // the ~1060 tokens noted since took its slot (e^(-1060/32768): about 97%).
        let mut admitted = 0;
        for n in 20_000..30_000u64 {
            d.admit(&digest(n));
            if n >= 21_000 && d.admit(&digest(n - 1000)) {
                admitted += 1;
            }
        }
        assert!(
            (8_400..=9_000).contains(&admitted),
            "{admitted} of 9000 second uses admitted"
        );
        // The first 20000 come back after 30000 others (three windows): none admitted.
        let late: usize = (0..20_000).filter(|&n| d.admit(&digest(n))).count();
        assert_eq!(late, 0);
    }

    #[test]
    fn an_all_zero_digest_is_not_an_empty_slot() {
        assert_eq!(split(&[0u8; 32]).0, 1);
        let d = Doorkeeper::for_cache(1);
        assert!(!d.admit(&[0u8; 32]), "an all-zero digest's first use");
        assert!(d.admit(&[0u8; 32]));
    }
}
