//! Mutations of the fuzz inputs for the short stable fuzzing run: byte-level (flips, interesting
//! bytes, inserts, deletions, splices) and, for JSON inputs, structure-aware (a node replaced by
//! a value of another type, an extreme number, a long string or deep nesting; a key removed),
//! which is how a missing or mistyped field is found. Deterministic: a seed gives the same run.

use serde_json::{Value, json};

/// xorshift64*: small, fast, and good enough to pick mutations.
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (0 is replaced, xorshift would stay at 0).
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n.max(1) as u64).unwrap_or(0)
    }
}

/// A mutant of `input`, which may borrow from `other` (another input of the same target).
pub fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    if rng.below(2) == 0
        && let Ok(mut value) = serde_json::from_slice::<Value>(input)
    {
        let other = serde_json::from_slice::<Value>(other).unwrap_or(Value::Null);
        for _ in 0..=rng.below(3) {
            mutate_json(rng, &mut value, &other);
        }
        return serde_json::to_vec(&value).unwrap_or_default();
    }
    let mut bytes = input.to_vec();
    for _ in 0..=rng.below(4) {
        mutate_bytes(rng, &mut bytes, other);
    }
    bytes
}

fn mutate_bytes(rng: &mut Rng, bytes: &mut Vec<u8>, other: &[u8]) {
    const INTERESTING: &[u8] = b"\x00\x01\x7f\x80\xff\"\\{}[]:,0-e.";
    let at = rng.below(bytes.len() + 1);
    match rng.below(5) {
        0 if !bytes.is_empty() => {
            let index = at.min(bytes.len() - 1);
            bytes[index] ^= 1 << rng.below(8);
        }
        1 => bytes.insert(at, INTERESTING[rng.below(INTERESTING.len())]),
        2 if at < bytes.len() => {
            let end = (at + 1 + rng.below(8)).min(bytes.len());
            bytes.drain(at..end);
        }
        3 => {
            let start = rng.below(other.len() + 1);
            let end = (start + rng.below(32)).min(other.len());
            bytes.splice(at..at, other[start..end].iter().copied());
        }
        _ => bytes.truncate(at),
    }
}

/// Replaces a random node of `node` (or removes a key of an object on the way down).
fn mutate_json(rng: &mut Rng, node: &mut Value, other: &Value) {
    let descend = rng.below(3) != 0;
    match node {
        Value::Object(members) if descend && !members.is_empty() => {
            let key = members.keys().nth(rng.below(members.len())).cloned().unwrap_or_default();
            if rng.below(6) == 0 {
                members.remove(&key);
            } else if let Some(child) = members.get_mut(&key) {
                mutate_json(rng, child, other);
            }
        }
        Value::Array(items) if descend && !items.is_empty() => {
            let index = rng.below(items.len());
            mutate_json(rng, &mut items[index], other);
        }
        _ => *node = interesting(rng, other),
    }
}

fn interesting(rng: &mut Rng, other: &Value) -> Value {
    match rng.below(12) {
        0 => Value::Null,
        1 => json!(true),
        2 => json!(0),
        3 => json!(-1),
        4 => json!(u64::MAX),
        5 => json!(1e308),
        6 => json!(""),
        7 => json!("x".repeat(70_000)),
        8 => json!([]),
        9 => json!({}),
        10 => (0..rng.below(200)).fold(json!(1), |inner, _| json!([inner])),
        _ => other.clone(),
    }
}
