//! Reading request bodies as JSON strictly: duplicate object keys, nesting deeper than
//! [`MAX_DEPTH`] and invalid UTF-8 are errors, where a plain `serde_json::from_slice`
//! would keep the last duplicate silently (and so store something other than what a
//! careful reader of the bytes would see).

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Deepest nesting of objects and arrays accepted (FHIR resources nest far less; serde_json
/// itself stops at 128).
pub const MAX_DEPTH: usize = 64;

/// Parses `bytes` as one JSON value, refusing duplicate keys and deep nesting. The error
/// says where (line and column), never what the value was.
pub fn parse_strict(bytes: &[u8]) -> Result<Value, String> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v = StrictValue { depth: 0 }
        .deserialize(&mut de)
        .map_err(describe)?;
    de.end().map_err(describe)?;
    Ok(v)
}

fn describe(e: serde_json::Error) -> String {
    // serde_json's messages quote neither strings nor numbers of the input, except for
    // our own duplicate-key message, which names the key (an element name, not data).
    e.to_string()
}

struct StrictValue {
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let depth = self.depth + 1;
        if depth > MAX_DEPTH {
            return Err(de::Error::custom(format!(
                "JSON nested deeper than {MAX_DEPTH} levels"
            )));
        }
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(StrictValue { depth })? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let depth = self.depth + 1;
        if depth > MAX_DEPTH {
            return Err(de::Error::custom(format!(
                "JSON nested deeper than {MAX_DEPTH} levels"
            )));
        }
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            // With `arbitrary_precision`, numbers arrive as a one-entry map with this
            // private key; hand them to serde_json's own Value to decode.
            if out.is_empty() && key == "$serde_json::private::Number" {
                let text: String = map.next_value()?;
                let n: serde_json::Number = text
                    .parse()
                    .map_err(|_| de::Error::custom("invalid number"))?;
                return Ok(Value::Number(n));
            }
            if out.contains_key(&key) {
                return Err(de::Error::custom(format!(
                    "duplicate JSON key {key:?} in one object"
                )));
            }
            let v = map.next_value_seed(StrictValue { depth })?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_numbers_and_order() {
        let v = parse_strict(br#"{"b":72.50,"a":[1,2.000,-0.10]}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"b":72.50,"a":[1,2.000,-0.10]}"#
        );
        // The one rewriting: serde_json writes an exponent with its sign.
        let v = parse_strict(b"[3e2]").unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), "[3e+2]");
    }

    #[test]
    fn refuses_duplicates_depth_and_bad_utf8() {
        assert!(
            parse_strict(br#"{"a":1,"a":2}"#)
                .unwrap_err()
                .contains("duplicate")
        );
        assert!(parse_strict(br#"{"x":{"a":1,"b":{"a":2,"a":3}}}"#).is_err());
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(
            parse_strict(deep.as_bytes())
                .unwrap_err()
                .contains("deeper")
        );
        assert!(parse_strict(b"{\"a\":\"\xff\"}").is_err());
        assert!(parse_strict(b"{} {}").is_err());
        assert!(parse_strict(b"").is_err());
    }
}
