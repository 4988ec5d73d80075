//! The dynamic value model shared by every binding.
//!
//! Values are what Python and JSON users write: null, bool, 64-bit int, float, string,
//! bytes, list and string-keyed map. The Python binding maps them to native objects; the C
//! binding reads and writes them as JSON text ([`Value::to_json`], [`Value::from_json`]),
//! where bytes are written as `{"$bytes": "<base64>"}` so they survive the round trip.
//!
//! Lists and maps nest at most [`MAX_DEPTH`] levels, whichever way a value arrives.

use std::collections::{btree_map, BTreeMap};
use std::{fmt, slice};

use base64::Engine as _;
use serde::de::{self, DeserializeSeed, Deserializer, EnumAccess, VariantAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Deepest nesting of lists and maps in a [`Value`]: a scalar is 0 levels deep, a list
/// of scalars 1, a list holding that list 2.
///
/// Every walk over a value (the wire codec, cloning, dropping, JSON and the bindings'
/// conversions) recurses once per level, so an unbounded depth lets one small datagram
/// overflow the stack and abort the process. The limit is enforced wherever a value
/// enters: the wire decoder ([`Value`]'s `Deserialize`, where a deeper value makes the
/// whole message undecodable), a local `set` ([`Value::check_depth`]), JSON
/// ([`Value::from_json`]) and the Python conversion.
///
/// Why 100: it is the limit Python has always enforced, so Python users see no change;
/// it is below serde_json's own recursion limit (128), so JSON text hits this limit, with
/// this message, first; and it keeps every walk over a value to a few hundred stack
/// frames (a unit test does them all in 256 KiB of stack). Real documents rarely nest
/// past ten.
///
/// Dropping a value recurses too. Every value the library creates or receives is within
/// the limit, so `Value` keeps the compiler's drop: an iterative `Drop` would forbid
/// moving out of a value's fields in a `match`. A value deeper than the limit can only be
/// built in Rust by the caller, whose stack then pays for dropping it.
pub const MAX_DEPTH: usize = 100;

/// A dynamically typed value stored under a key.
///
/// Its wire encoding is serde's derived one for this enum; decoding is written by hand
/// only to enforce [`MAX_DEPTH`] before recursing.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Value {
    /// No value (Python `None`, JSON `null`). Distinct from a deleted key.
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed 64-bit integer.
    Int(i64),
    /// A 64-bit float.
    Float(f64),
    /// A UTF-8 string.
    String(String),
    /// Raw bytes.
    Bytes(#[serde(with = "serde_bytes")] Vec<u8>),
    /// An ordered list of values.
    List(Vec<Value>),
    /// A map from string keys to values, iterated in key order.
    Map(BTreeMap<String, Value>),
}

/// The key JSON uses to carry a byte string: `{"$bytes": "<base64>"}`.
pub const JSON_BYTES_KEY: &str = "$bytes";

/// Why a JSON text could not become a [`Value`].
#[derive(Debug, thiserror::Error)]
pub enum JsonValueError {
    /// The text is not valid JSON.
    #[error("invalid JSON: {0}")]
    Syntax(#[from] serde_json::Error),
    /// An integer does not fit in 64 signed bits.
    #[error("integer {0} is outside the signed 64-bit range")]
    IntegerOutOfRange(String),
    /// A `{"$bytes": ...}` object whose payload is not base64.
    #[error("invalid base64 in a \"$bytes\" object: {0}")]
    Base64(String),
    /// Arrays and objects nested deeper than [`MAX_DEPTH`] levels.
    #[error("arrays and objects are nested more than {max} levels deep")]
    TooDeep {
        /// [`MAX_DEPTH`].
        max: usize,
    },
}

impl Value {
    /// The name of this value's type, as error messages and the CLI show it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::String(_) => "string",
            Value::Bytes(_) => "bytes",
            Value::List(_) => "list",
            Value::Map(_) => "map",
        }
    }

    /// How many levels of lists and maps nest in this value (see [`MAX_DEPTH`]).
    /// Iterative, so it is safe on a value of any depth.
    pub fn depth(&self) -> usize {
        let mut open: Vec<Children<'_>> = Vec::new();
        let mut deepest = 0;
        let mut next = Some(self);
        loop {
            if let Some(children) = next.and_then(Children::of) {
                open.push(children);
                deepest = deepest.max(open.len());
            }
            match open.last_mut() {
                Some(top) => next = top.next(),
                None => return deepest,
            }
            if next.is_none() {
                open.pop();
            }
        }
    }

    /// Fails with [`Error::ValueTooDeep`] if lists and maps nest deeper than
    /// [`MAX_DEPTH`]: such a value could not be sent, since every peer would refuse it.
    pub fn check_depth(&self) -> Result<(), Error> {
        let depth = self.depth();
        if depth > MAX_DEPTH {
            return Err(Error::ValueTooDeep {
                depth,
                max: MAX_DEPTH,
            });
        }
        Ok(())
    }

    /// An upper bound of the bytes this value takes on the wire; used to enforce the
    /// configured value size limit without encoding the value twice.
    pub fn encoded_len(&self) -> usize {
        // 1 byte of tag, up to 10 bytes of varint length prefix.
        match self {
            Value::Null | Value::Bool(_) => 2,
            Value::Int(_) | Value::Float(_) => 11,
            Value::String(s) => 11 + s.len(),
            Value::Bytes(b) => 11 + b.len(),
            Value::List(items) => 11 + items.iter().map(Value::encoded_len).sum::<usize>(),
            Value::Map(map) => {
                11 + map
                    .iter()
                    .map(|(k, v)| 10 + k.len() + v.encoded_len())
                    .sum::<usize>()
            }
        }
    }

    /// Renders the value as JSON text. Bytes become `{"$bytes": "<base64>"}`; non-finite
    /// floats, which JSON cannot express, become `null`.
    pub fn to_json(&self) -> String {
        self.to_json_value().to_string()
    }

    /// Converts to a `serde_json::Value` (see [`Value::to_json`] for the mapping).
    pub fn to_json_value(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::String(s) => J::String(s.clone()),
            Value::Bytes(b) => {
                let mut obj = serde_json::Map::new();
                obj.insert(
                    JSON_BYTES_KEY.to_owned(),
                    J::String(base64::engine::general_purpose::STANDARD.encode(b)),
                );
                J::Object(obj)
            }
            Value::List(items) => J::Array(items.iter().map(Value::to_json_value).collect()),
            Value::Map(map) => J::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), v.to_json_value()))
                    .collect(),
            ),
        }
    }

    /// Parses JSON text into a value. Integers that fit in `i64` become [`Value::Int`],
    /// other numbers [`Value::Float`]; `{"$bytes": "<base64>"}` becomes [`Value::Bytes`].
    /// Arrays and objects nested deeper than [`MAX_DEPTH`] are
    /// [`JsonValueError::TooDeep`].
    pub fn from_json(text: &str) -> Result<Value, JsonValueError> {
        // Checked before parsing, so that text nested past serde_json's own recursion
        // limit is reported as too deep rather than as a syntax error. One level more
        // is let through: an innermost `{"$bytes": ...}` object is a leaf, not a map.
        if json_nesting_exceeds(text, MAX_DEPTH + 1) {
            return Err(JsonValueError::TooDeep { max: MAX_DEPTH });
        }
        let json: serde_json::Value = serde_json::from_str(text)?;
        // serde_json reads integers beyond 64 bits as floats, silently losing precision;
        // the text is valid JSON by now, so its integer literals can be checked directly.
        if let Some(big) = oversized_integer_literal(text) {
            return Err(JsonValueError::IntegerOutOfRange(big.to_owned()));
        }
        Value::from_json_value(&json)
    }

    /// Converts from a `serde_json::Value` (see [`Value::from_json`] for the mapping).
    pub fn from_json_value(json: &serde_json::Value) -> Result<Value, JsonValueError> {
        Value::from_json_at(json, 0)
    }

    /// `depth`: how many arrays and objects enclose `json`.
    fn from_json_at(json: &serde_json::Value, depth: usize) -> Result<Value, JsonValueError> {
        use serde_json::Value as J;
        let too_deep = || JsonValueError::TooDeep { max: MAX_DEPTH };
        Ok(match json {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(*b),
            J::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Value::Int(i)
                } else if n.is_u64() {
                    return Err(JsonValueError::IntegerOutOfRange(n.to_string()));
                } else {
                    Value::Float(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            J::String(s) => Value::String(s.clone()),
            J::Array(_) if depth >= MAX_DEPTH => return Err(too_deep()),
            J::Array(items) => Value::List(
                items
                    .iter()
                    .map(|item| Value::from_json_at(item, depth + 1))
                    .collect::<Result<_, _>>()?,
            ),
            J::Object(obj) => {
                if obj.len() == 1 {
                    if let Some(J::String(encoded)) = obj.get(JSON_BYTES_KEY) {
                        let bytes = base64::engine::general_purpose::STANDARD
                            .decode(encoded)
                            .map_err(|e| JsonValueError::Base64(e.to_string()))?;
                        return Ok(Value::Bytes(bytes));
                    }
                }
                if depth >= MAX_DEPTH {
                    return Err(too_deep());
                }
                Value::Map(
                    obj.iter()
                        .map(|(k, v)| Ok((k.clone(), Value::from_json_at(v, depth + 1)?)))
                        .collect::<Result<_, JsonValueError>>()?,
                )
            }
        })
    }
}

/// The children of a list or map, as [`Value::depth`] walks them.
enum Children<'a> {
    List(slice::Iter<'a, Value>),
    Map(btree_map::Values<'a, String, Value>),
}

impl<'a> Children<'a> {
    fn of(value: &'a Value) -> Option<Children<'a>> {
        match value {
            Value::List(items) => Some(Children::List(items.iter())),
            Value::Map(map) => Some(Children::Map(map.values())),
            _ => None,
        }
    }
}

impl<'a> Iterator for Children<'a> {
    type Item = &'a Value;

    fn next(&mut self) -> Option<&'a Value> {
        match self {
            Children::List(items) => items.next(),
            Children::Map(values) => values.next(),
        }
    }
}

/// Whether the arrays and objects of a JSON text nest more than `max` levels deep.
/// Brackets inside strings do not count; the text need not be valid JSON.
fn json_nesting_exceeds(text: &str, max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in text.as_bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// The first integer literal (no fraction, no exponent) of a valid JSON text that does
/// not fit in `i64`, if any.
fn oversized_integer_literal(text: &str) -> Option<&str> {
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut in_string = false;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            in_string = true;
            i += 1;
            continue;
        }
        if b == b'-' || b.is_ascii_digit() {
            let start = i;
            while i < bytes.len()
                && matches!(bytes[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
            {
                i += 1;
            }
            let literal = &text[start..i];
            let integral = !literal.contains(['.', 'e', 'E']);
            if integral && literal.parse::<i64>().is_err() {
                return Some(literal);
            }
            continue;
        }
        i += 1;
    }
    None
}

impl fmt::Display for Value {
    /// Strings print bare; everything else prints as JSON.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::String(s) => f.write_str(s),
            other => f.write_str(&other.to_json()),
        }
    }
}

macro_rules! value_from {
    ($($t:ty => $variant:ident),* $(,)?) => {
        $(impl From<$t> for Value {
            fn from(v: $t) -> Self { Value::$variant(v.into()) }
        })*
    };
}

value_from! {
    bool => Bool, i64 => Int, i32 => Int, u32 => Int, f64 => Float, f32 => Float,
    String => String, &str => String, Vec<u8> => Bytes, &[u8] => Bytes,
    Vec<Value> => List, BTreeMap<String, Value> => Map,
}

impl From<()> for Value {
    fn from(_: ()) -> Self {
        Value::Null
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

// Decoding, by hand: serde's derive recurses into nested lists and maps without bound,
// so a datagram of a few kilobytes could nest deep enough to overflow the network
// thread's stack. This is the derive's logic (same variant indexes and names, same
// shapes, so the encoding is unchanged) with a depth counter checked before each descent.

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
        ValueSeed { depth: 0 }.deserialize(deserializer)
    }
}

const VARIANTS: &[&str] = &[
    "Null", "Bool", "Int", "Float", "String", "Bytes", "List", "Map",
];

/// Decodes a value enclosed in `depth` lists and maps.
#[derive(Clone, Copy)]
struct ValueSeed {
    depth: usize,
}

impl ValueSeed {
    /// The seed of this value's children, or an error if they would be too deep.
    fn descend<E: de::Error>(self) -> Result<ValueSeed, E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom(format_args!(
                "value nests lists and maps more than {MAX_DEPTH} levels deep"
            )));
        }
        Ok(ValueSeed {
            depth: self.depth + 1,
        })
    }
}

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_enum("Value", VARIANTS, self)
    }
}

impl<'de> Visitor<'de> for ValueSeed {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("enum Value")
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        let (kind, variant) = data.variant::<Kind>()?;
        match kind {
            Kind::Null => variant.unit_variant().map(|()| Value::Null),
            Kind::Bool => variant.newtype_variant().map(Value::Bool),
            Kind::Int => variant.newtype_variant().map(Value::Int),
            Kind::Float => variant.newtype_variant().map(Value::Float),
            Kind::String => variant.newtype_variant().map(Value::String),
            Kind::Bytes => variant.newtype_variant_seed(BytesSeed).map(Value::Bytes),
            Kind::List => variant.newtype_variant_seed(ListSeed(self.descend()?)),
            Kind::Map => variant.newtype_variant_seed(MapSeed(self.descend()?)),
        }
    }
}

/// A variant of [`Value`], read by index (postcard) or by name (self-describing formats).
enum Kind {
    Null,
    Bool,
    Int,
    Float,
    String,
    Bytes,
    List,
    Map,
}

const KINDS: [Kind; 8] = [
    Kind::Null,
    Kind::Bool,
    Kind::Int,
    Kind::Float,
    Kind::String,
    Kind::Bytes,
    Kind::List,
    Kind::Map,
];

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Kind, D::Error> {
        deserializer.deserialize_identifier(KindVisitor)
    }
}

struct KindVisitor;

impl Visitor<'_> for KindVisitor {
    type Value = Kind;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("variant identifier")
    }

    fn visit_u64<E: de::Error>(self, index: u64) -> Result<Kind, E> {
        usize::try_from(index)
            .ok()
            .and_then(|i| KINDS.into_iter().nth(i))
            .ok_or_else(|| {
                E::invalid_value(de::Unexpected::Unsigned(index), &"variant index 0 <= i < 8")
            })
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Kind, E> {
        VARIANTS
            .iter()
            .position(|v| *v == name)
            .and_then(|i| KINDS.into_iter().nth(i))
            .ok_or_else(|| E::unknown_variant(name, VARIANTS))
    }

    fn visit_bytes<E: de::Error>(self, name: &[u8]) -> Result<Kind, E> {
        match std::str::from_utf8(name) {
            Ok(name) => self.visit_str(name),
            Err(_) => Err(E::unknown_variant(&String::from_utf8_lossy(name), VARIANTS)),
        }
    }
}

/// `Bytes`' payload, read as `#[serde(with = "serde_bytes")]` reads it.
struct BytesSeed;

impl<'de> DeserializeSeed<'de> for BytesSeed {
    type Value = Vec<u8>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Vec<u8>, D::Error> {
        serde_bytes::deserialize(deserializer)
    }
}

/// Most elements reserved ahead of a list's declared length: the length comes from the
/// sender, and must not make a few bytes reserve gigabytes (serde's own cap, 1 MiB).
const MAX_PREALLOC: usize = 1024 * 1024 / std::mem::size_of::<Value>();

/// A list's items, each enclosed in one more level than the list.
struct ListSeed(ValueSeed);

impl<'de> DeserializeSeed<'de> for ListSeed {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ListSeed {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence")
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(MAX_PREALLOC));
        while let Some(item) = seq.next_element_seed(self.0)? {
            items.push(item);
        }
        Ok(Value::List(items))
    }
}

/// A map's values, each enclosed in one more level than the map.
struct MapSeed(ValueSeed);

impl<'de> DeserializeSeed<'de> for MapSeed {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MapSeed {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map")
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = BTreeMap::new();
        while let Some(key) = access.next_key::<String>()? {
            // Like the derive: a repeated key keeps its last value.
            map.insert(key, access.next_value_seed(self.0)?);
        }
        Ok(Value::Map(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn json_round_trip_keeps_every_type() {
        let mut map = BTreeMap::new();
        map.insert("b".to_owned(), Value::Bytes(vec![0, 1, 255]));
        map.insert("f".to_owned(), Value::Float(1.5));
        let value = Value::List(vec![
            Value::Null,
            Value::Bool(true),
            Value::Int(-7),
            Value::Int(i64::MAX),
            Value::String("héllo".into()),
            Value::Map(map),
        ]);
        let text = value.to_json();
        assert_eq!(Value::from_json(&text).unwrap(), value);
    }

    #[test]
    fn json_rejects_out_of_range_integers_and_bad_text() {
        for big in [
            "18446744073709551615",
            "18446744073709551616",
            "[1, -99999999999999999999]",
        ] {
            assert!(
                matches!(
                    Value::from_json(big),
                    Err(JsonValueError::IntegerOutOfRange(_))
                ),
                "{big}"
            );
        }
        // Digits inside strings and floats with exponents are not integers.
        assert_eq!(
            Value::from_json(r#"{"n": "18446744073709551616", "f": 1e300}"#).unwrap(),
            Value::Map(BTreeMap::from([
                ("f".to_owned(), Value::Float(1e300)),
                ("n".to_owned(), Value::String("18446744073709551616".into())),
            ]))
        );
        assert!(matches!(
            Value::from_json("{"),
            Err(JsonValueError::Syntax(_))
        ));
        assert!(matches!(
            Value::from_json(r#"{"$bytes": "!!"}"#),
            Err(JsonValueError::Base64(_))
        ));
    }

    #[test]
    fn encoded_len_bounds_the_real_encoding() {
        let value = Value::Map(BTreeMap::from([(
            "k".to_owned(),
            Value::List(vec![Value::Int(i64::MIN), Value::String("x".repeat(300))]),
        )]));
        let real = postcard::to_allocvec(&value).unwrap().len();
        assert!(value.encoded_len() >= real);
    }

    /// The encoding before decoding was written by hand; it must never change, or
    /// nodes of different versions stop understanding each other.
    #[test]
    fn encoding_of_every_variant_is_unchanged() {
        let samples: Vec<(Value, Vec<u8>)> = vec![
            (Value::Null, vec![0]),
            (Value::Bool(true), vec![1, 1]),
            (Value::Int(-7), vec![2, 13]),
            (
                Value::Int(i64::MAX),
                vec![
                    2, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
                ],
            ),
            (Value::Float(1.5), vec![3, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f]),
            (Value::String("hé".into()), vec![4, 3, b'h', 0xc3, 0xa9]),
            (Value::Bytes(vec![0, 1, 255]), vec![5, 3, 0, 1, 255]),
            (
                Value::List(vec![Value::Null, Value::Int(1)]),
                vec![6, 2, 0, 2, 2],
            ),
            (
                Value::Map(BTreeMap::from([("a".to_owned(), Value::Bool(false))])),
                vec![7, 1, 1, b'a', 1, 0],
            ),
        ];
        for (value, bytes) in samples {
            assert_eq!(postcard::to_allocvec(&value).unwrap(), bytes, "{value:?}");
            assert_eq!(postcard::from_bytes::<Value>(&bytes).unwrap(), value);
        }
    }

    /// serde's derived decoder, as `Value` had before: the reference the hand-written
    /// one must agree with.
    #[derive(Deserialize)]
    #[serde(rename = "Value")]
    enum Derived {
        Null,
        Bool(bool),
        Int(i64),
        Float(f64),
        String(String),
        Bytes(#[serde(with = "serde_bytes")] Vec<u8>),
        List(Vec<Derived>),
        Map(BTreeMap<String, Derived>),
    }

    impl From<Derived> for Value {
        fn from(d: Derived) -> Value {
            match d {
                Derived::Null => Value::Null,
                Derived::Bool(b) => Value::Bool(b),
                Derived::Int(i) => Value::Int(i),
                Derived::Float(f) => Value::Float(f),
                Derived::String(s) => Value::String(s),
                Derived::Bytes(b) => Value::Bytes(b),
                Derived::List(items) => Value::List(items.into_iter().map(Into::into).collect()),
                Derived::Map(map) => {
                    Value::Map(map.into_iter().map(|(k, v)| (k, v.into())).collect())
                }
            }
        }
    }

    /// Both decoders' results, as encodings (so that NaN compares equal to itself).
    fn decode_both(bytes: &[u8]) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
        let ours = postcard::from_bytes::<Value>(bytes).ok();
        let derived = postcard::from_bytes::<Derived>(bytes).ok().map(Value::from);
        let encode = |v: Value| postcard::to_allocvec(&v).unwrap();
        (ours.map(encode), derived.map(encode))
    }

    fn any_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::Int),
            any::<f64>().prop_map(Value::Float),
            ".{0,8}".prop_map(Value::String),
            proptest::collection::vec(any::<u8>(), 0..8).prop_map(Value::Bytes),
        ];
        leaf.prop_recursive(8, 64, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::List),
                proptest::collection::btree_map(".{0,4}", inner, 0..6).prop_map(Value::Map),
            ]
        })
    }

    proptest! {
        #[test]
        fn values_round_trip_and_decode_as_the_derive_did(value in any_value()) {
            let bytes = postcard::to_allocvec(&value).unwrap();
            let (ours, derived) = decode_both(&bytes);
            prop_assert_eq!(ours.as_ref(), Some(&bytes));
            prop_assert_eq!(derived.as_ref(), Some(&bytes));
        }

        #[test]
        fn any_bytes_decode_as_the_derive_did(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let (ours, derived) = decode_both(&bytes);
            prop_assert_eq!(ours, derived);
        }
    }

    fn nested_lists(depth: usize) -> Value {
        (0..depth).fold(Value::Int(1), |inner, _| Value::List(vec![inner]))
    }

    /// `depth` lists nested in each other, encoded without building the value.
    fn nested_list_bytes(depth: usize) -> Vec<u8> {
        let mut bytes = [6, 1].repeat(depth);
        bytes.push(0);
        bytes
    }

    #[test]
    fn depth_counts_lists_and_maps() {
        assert_eq!(Value::Int(1).depth(), 0);
        assert_eq!(Value::List(vec![]).depth(), 1);
        assert_eq!(nested_lists(5).depth(), 5);
        let wide = Value::Map(BTreeMap::from([
            ("a".to_owned(), nested_lists(2)),
            (
                "b".to_owned(),
                Value::List(vec![Value::Null, nested_lists(7), Value::Null]),
            ),
            ("c".to_owned(), Value::Bytes(vec![1])),
        ]));
        assert_eq!(wide.depth(), 9);
        assert!(nested_lists(MAX_DEPTH).check_depth().is_ok());
        assert!(matches!(
            nested_lists(MAX_DEPTH + 1).check_depth(),
            Err(Error::ValueTooDeep { depth, max: MAX_DEPTH }) if depth == MAX_DEPTH + 1
        ));
    }

    #[test]
    fn decoding_stops_at_the_depth_limit() {
        let at_limit = postcard::from_bytes::<Value>(&nested_list_bytes(MAX_DEPTH)).unwrap();
        assert_eq!(at_limit.depth(), MAX_DEPTH);
        assert!(postcard::from_bytes::<Value>(&nested_list_bytes(MAX_DEPTH + 1)).is_err());
        // A map level counts like a list level.
        let mut bytes = [7, 1, 1, b'k'].repeat(MAX_DEPTH);
        bytes.extend_from_slice(&nested_list_bytes(1));
        assert!(postcard::from_bytes::<Value>(&bytes).is_err());
        // Far past the limit: an error, not a stack overflow.
        assert!(postcard::from_bytes::<Value>(&nested_list_bytes(100_000)).is_err());
    }

    /// The limit is only worth having if every walk over a value at the limit is
    /// cheap in stack; this pins that on a thread far smaller than any real one.
    #[test]
    fn a_value_at_the_limit_is_walked_in_little_stack() {
        std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(|| {
                let mut bytes = [7, 1, 1, b'k', 6, 1].repeat(MAX_DEPTH / 2);
                bytes.push(0);
                let value = postcard::from_bytes::<Value>(&bytes).unwrap();
                assert_eq!(value.depth(), MAX_DEPTH);
                let copy = value.clone();
                assert_eq!(postcard::to_allocvec(&copy).unwrap(), bytes);
                assert!(copy.encoded_len() >= bytes.len());
                assert_eq!(Value::from_json(&copy.to_json()).unwrap(), value);
                drop((value, copy));
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn json_nested_past_the_limit_is_too_deep() {
        let lists = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        assert_eq!(
            Value::from_json(&lists(MAX_DEPTH)).unwrap().depth(),
            MAX_DEPTH
        );
        for text in [
            lists(MAX_DEPTH + 1),
            lists(127),
            lists(20_000),
            "[".repeat(20_000),
            format!(
                "{}{{\"a\": 1}}{}",
                "[".repeat(MAX_DEPTH),
                "]".repeat(MAX_DEPTH)
            ),
        ] {
            let err = Value::from_json(&text).unwrap_err();
            assert!(
                matches!(err, JsonValueError::TooDeep { max: MAX_DEPTH }),
                "{err}"
            );
            assert_eq!(
                err.to_string(),
                "arrays and objects are nested more than 100 levels deep"
            );
        }
        // An innermost {"$bytes": ...} is a value, not a level.
        let bytes_leaf = format!(
            "{}{{\"$bytes\": \"AAE=\"}}{}",
            "[".repeat(MAX_DEPTH),
            "]".repeat(MAX_DEPTH)
        );
        assert_eq!(Value::from_json(&bytes_leaf).unwrap().depth(), MAX_DEPTH);
        // Brackets inside strings are text.
        let quoted = format!("[\"{}\"]", "[{\\\"".repeat(500));
        assert_eq!(Value::from_json(&quoted).unwrap().depth(), 1);
        // A serde_json value built by hand is bounded too.
        let mut deep = serde_json::Value::Null;
        for _ in 0..MAX_DEPTH + 1 {
            deep = serde_json::Value::Array(vec![deep]);
        }
        assert!(matches!(
            Value::from_json_value(&deep),
            Err(JsonValueError::TooDeep { .. })
        ));
    }
}
