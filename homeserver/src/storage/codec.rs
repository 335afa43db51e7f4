//! The one key codec: how typed keys become ordered bytes.
//!
//! Rules, stated once here and nowhere else:
//! - integers are fixed-width big-endian, so numeric order is byte order;
//! - strings end with `0x00 0x00`; a `0x00` inside a string is written `0x00 0xFF`, so a string's
//!   bytes never contain its terminator, shorter strings sort before their extensions, and no
//!   string's key is a prefix of another string's key;
//! - a tuple is its components one after another.
//!
//! A prefix of a tuple key (its first components) encodes to a byte prefix of the full key, which
//! is what prefix scans rely on.

/// Why a stored key or value could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The bytes ended before the value did.
    #[error("stored key or value is truncated")]
    Truncated,
    /// A string component is not UTF-8.
    #[error("stored string is not UTF-8")]
    NotUtf8,
    /// A JSON value could not be parsed.
    #[error("stored JSON is invalid: {0}")]
    Json(#[from] serde_json::Error),
    /// A stored identifier is not valid.
    #[error("stored identifier is invalid: {0}")]
    Id(#[from] ruma::IdParseError),
}

impl From<std::convert::Infallible> for CodecError {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

const TERMINATOR: u8 = 0x00;
const ESCAPE: u8 = 0xFF;

/// A component of a table key.
pub trait KeyPart: Sized {
    /// Appends the encoded form to `out`.
    fn encode_key(&self, out: &mut Vec<u8>);
    /// Decodes one component from the front of `bytes`, returning the rest.
    fn decode_key(bytes: &[u8]) -> Result<(Self, &[u8]), CodecError>;
}

impl KeyPart for u64 {
    fn encode_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }
    fn decode_key(bytes: &[u8]) -> Result<(Self, &[u8]), CodecError> {
        let (head, rest) = bytes.split_at_checked(8).ok_or(CodecError::Truncated)?;
        let head: [u8; 8] = head.try_into().map_err(|_| CodecError::Truncated)?;
        Ok((u64::from_be_bytes(head), rest))
    }
}

/// Appends a string component (escaped, terminated).
pub fn encode_str(s: &str, out: &mut Vec<u8>) {
    // Copies runs without a terminator byte in one go: keys are read and written on every
    // request, and terminators inside strings are rare.
    let mut rest = s.as_bytes();
    out.reserve(rest.len() + 2);
    while let Some(pos) = rest.iter().position(|&b| b == TERMINATOR) {
        out.extend_from_slice(&rest[..=pos]);
        out.push(ESCAPE);
        rest = &rest[pos + 1..];
    }
    out.extend_from_slice(rest);
    out.extend_from_slice(&[TERMINATOR, TERMINATOR]);
}

/// Decodes a string component from the front of `bytes`.
pub fn decode_str(bytes: &[u8]) -> Result<(String, &[u8]), CodecError> {
    let mut out = Vec::new();
    let mut rest = bytes;
    loop {
        let pos = rest.iter().position(|&b| b == TERMINATOR).ok_or(CodecError::Truncated)?;
        out.extend_from_slice(&rest[..pos]);
        match rest.get(pos + 1) {
            Some(&ESCAPE) => {
                out.push(TERMINATOR);
                rest = &rest[pos + 2..];
            }
            Some(&TERMINATOR) => {
                let s = String::from_utf8(out).map_err(|_| CodecError::NotUtf8)?;
                return Ok((s, &rest[pos + 2..]));
            }
            _ => return Err(CodecError::Truncated),
        }
    }
}

impl KeyPart for String {
    fn encode_key(&self, out: &mut Vec<u8>) {
        encode_str(self, out);
    }
    fn decode_key(bytes: &[u8]) -> Result<(Self, &[u8]), CodecError> {
        decode_str(bytes)
    }
}

/// Implements [`KeyPart`] for ruma's owned identifiers, stored as their string form.
macro_rules! id_key_part {
    ($($ty:ty),* $(,)?) => {$(
        impl KeyPart for $ty {
            fn encode_key(&self, out: &mut Vec<u8>) {
                encode_str(self.as_str(), out);
            }
            fn decode_key(bytes: &[u8]) -> Result<(Self, &[u8]), CodecError> {
                let (s, rest) = decode_str(bytes)?;
                Ok((<$ty>::try_from(s)?, rest))
            }
        }
    )*};
}
id_key_part!(
    ruma::OwnedUserId,
    ruma::OwnedRoomId,
    ruma::OwnedEventId,
    ruma::OwnedDeviceId,
    ruma::OwnedRoomAliasId,
);

impl<A: KeyPart, B: KeyPart> KeyPart for (A, B) {
    fn encode_key(&self, out: &mut Vec<u8>) {
        self.0.encode_key(out);
        self.1.encode_key(out);
    }
    fn decode_key(bytes: &[u8]) -> Result<(Self, &[u8]), CodecError> {
        let (a, rest) = A::decode_key(bytes)?;
        let (b, rest) = B::decode_key(rest)?;
        Ok(((a, b), rest))
    }
}

impl<A: KeyPart, B: KeyPart, C: KeyPart> KeyPart for (A, B, C) {
    fn encode_key(&self, out: &mut Vec<u8>) {
        self.0.encode_key(out);
        self.1.encode_key(out);
        self.2.encode_key(out);
    }
    fn decode_key(bytes: &[u8]) -> Result<(Self, &[u8]), CodecError> {
        let (a, rest) = A::decode_key(bytes)?;
        let (b, rest) = B::decode_key(rest)?;
        let (c, rest) = C::decode_key(rest)?;
        Ok(((a, b, c), rest))
    }
}

/// Encodes a whole key.
pub fn encode_key<K: KeyPart>(key: &K) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    key.encode_key(&mut out);
    out
}

/// Decodes a whole key; trailing bytes are an error.
pub fn decode_key<K: KeyPart>(bytes: &[u8]) -> Result<K, CodecError> {
    let (key, rest) = K::decode_key(bytes)?;
    if rest.is_empty() { Ok(key) } else { Err(CodecError::Truncated) }
}

/// A table value.
pub trait Value: Sized {
    /// The stored bytes.
    fn encode_value(&self) -> Vec<u8>;
    /// Parses stored bytes.
    fn decode_value(bytes: &[u8]) -> Result<Self, CodecError>;
}

impl Value for u64 {
    fn encode_value(&self) -> Vec<u8> {
        self.to_be_bytes().to_vec()
    }
    fn decode_value(bytes: &[u8]) -> Result<Self, CodecError> {
        decode_key(bytes)
    }
}

impl Value for () {
    fn encode_value(&self) -> Vec<u8> {
        Vec::new()
    }
    fn decode_value(_: &[u8]) -> Result<Self, CodecError> {
        Ok(())
    }
}

impl Value for String {
    fn encode_value(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }
    fn decode_value(bytes: &[u8]) -> Result<Self, CodecError> {
        String::from_utf8(bytes.to_vec()).map_err(|_| CodecError::NotUtf8)
    }
}

/// Implements [`Value`] for ruma's owned identifiers, stored as their string form.
macro_rules! id_value {
    ($($ty:ty),* $(,)?) => {$(
        impl Value for $ty {
            fn encode_value(&self) -> Vec<u8> {
                self.as_str().as_bytes().to_vec()
            }
            fn decode_value(bytes: &[u8]) -> Result<Self, CodecError> {
                let s = std::str::from_utf8(bytes).map_err(|_| CodecError::NotUtf8)?;
                Ok(<$ty>::try_from(s)?)
            }
        }
    )*};
}
id_value!(ruma::OwnedEventId, ruma::OwnedRoomId, ruma::OwnedUserId);

impl Value for Vec<u8> {
    fn encode_value(&self) -> Vec<u8> {
        self.clone()
    }
    fn decode_value(bytes: &[u8]) -> Result<Self, CodecError> {
        Ok(bytes.to_vec())
    }
}

/// A value stored as JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Json<T>(pub T);

impl<T: serde::Serialize + serde::de::DeserializeOwned> Value for Json<T> {
    fn encode_value(&self) -> Vec<u8> {
        // Serialising our own in-memory types cannot fail (no maps with non-string keys).
        serde_json::to_vec(&self.0).unwrap_or_default()
    }
    fn decode_value(bytes: &[u8]) -> Result<Self, CodecError> {
        Ok(Json(serde_json::from_slice(bytes)?))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn u64_order_is_byte_order(a: u64, b: u64) {
            prop_assert_eq!(a.cmp(&b), encode_key(&a).cmp(&encode_key(&b)));
        }

        #[test]
        fn string_order_is_byte_order(a: String, b: String) {
            prop_assert_eq!(a.cmp(&b), encode_key(&a).cmp(&encode_key(&b)));
        }

        #[test]
        fn tuple_order_is_lexicographic(a: (String, u64), b: (String, u64)) {
            prop_assert_eq!(a.cmp(&b), encode_key(&a).cmp(&encode_key(&b)));
        }

        #[test]
        fn tuples_round_trip(a: String, b: u64, c: String) {
            let key = (a, b, c);
            prop_assert_eq!(decode_key::<(String, u64, String)>(&encode_key(&key)).unwrap(), key);
        }

        #[test]
        fn prefix_of_tuple_is_byte_prefix(a: String, b: String) {
            let full = encode_key(&(a.clone(), b));
            prop_assert!(full.starts_with(&encode_key(&a)));
        }
    }

    #[test]
    fn nul_inside_string_is_escaped() {
        let s = "a\0b".to_owned();
        let bytes = encode_key(&(s.clone(), 7u64));
        assert_eq!(decode_key::<(String, u64)>(&bytes).unwrap(), (s, 7));
    }

    #[test]
    fn truncated_key_is_an_error() {
        assert!(decode_key::<u64>(&[1, 2, 3]).is_err());
        assert!(decode_key::<String>(b"abc").is_err());
    }
}
