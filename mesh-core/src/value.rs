//! The dynamic value model shared by every binding.
//!
//! Values are what Python and JSON users write: null, bool, 64-bit int, float, string,
//! bytes, list and string-keyed map. The Python binding maps them to native objects; the C
//! binding reads and writes them as JSON text ([`Value::to_json`], [`Value::from_json`]),
//! where bytes are written as `{"$bytes": "<base64>"}` so they survive the round trip.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// A dynamically typed value stored under a key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
    pub fn from_json(text: &str) -> Result<Value, JsonValueError> {
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
        use serde_json::Value as J;
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
            J::Array(items) => Value::List(
                items
                    .iter()
                    .map(Value::from_json_value)
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
                Value::Map(
                    obj.iter()
                        .map(|(k, v)| Ok((k.clone(), Value::from_json_value(v)?)))
                        .collect::<Result<_, JsonValueError>>()?,
                )
            }
        })
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
