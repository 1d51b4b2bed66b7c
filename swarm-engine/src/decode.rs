//! Request bodies read as Go's `encoding/json` reads them, since the
//! `docker` CLI (and every tool built on Docker's Go client) writes them
//! for that reader:
//!
//! - a struct's field names match without regard to case (`"name"`,
//!   `"Name"` and `"NAME"` all fill `Name`), while map keys (labels, driver
//!   options) keep theirs;
//! - `null` is the same as an absent field;
//! - unknown fields are ignored;
//! - an empty body is the zero value.
//!
//! The types keep plain serde derives (`#[serde(rename_all =
//! "PascalCase", default)]`); [`from_slice`] adds Go's rules on top, by
//! wrapping the JSON value's deserializer. Types read this way must not use
//! `#[serde(flatten)]`, which hides a struct's field names from it.

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

/// Why a body could not be read; the text says where, as Docker's does
/// (`invalid JSON: ...`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

/// Reads `bytes` into `T` with Go's rules (see the module's docs).
///
/// # Errors
/// If the bytes are not JSON, or do not fit `T`.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return from_value(Value::Object(Map::new()));
    }
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| DecodeError(format!("invalid JSON: {e}")))?;
    from_value(value)
}

/// Reads `value` into `T` with Go's rules.
///
/// # Errors
/// If it does not fit `T`.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, DecodeError> {
    T::deserialize(Go(value)).map_err(|e| DecodeError(format!("invalid JSON: {e}")))
}

/// Whether `v` is a zero value of Go's (`null`, `false`, `0`, `""`, `[]`),
/// or an object of them: what `omitempty` leaves out, and what says
/// nothing in a request.
#[must_use]
pub fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(is_zero),
    }
}

/// A JSON value deserialized with Go's rules.
struct Go(Value);

type Error = serde_json::Error;

impl<'de> de::Deserializer<'de> for Go {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Object(map) => visitor.visit_map(Fields::new(map, None)),
            Value::Array(items) => visitor.visit_seq(Items(items.into_iter())),
            other => de::Deserializer::deserialize_any(other, visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            other => visitor.visit_some(Go(other)),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.0 {
            Value::Object(map) => visitor.visit_map(Fields::new(map, Some(fields))),
            other => other.deserialize_struct(name, fields, visitor),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.0.deserialize_enum(name, variants, visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map identifier
        ignored_any
    }
}

/// An object's entries; for a struct, each key becomes the field it names
/// regardless of case, and `null` entries are skipped.
struct Fields {
    entries: serde_json::map::IntoIter,
    fields: Option<&'static [&'static str]>,
    value: Option<Value>,
}

impl Fields {
    fn new(map: Map<String, Value>, fields: Option<&'static [&'static str]>) -> Self {
        Self {
            entries: map.into_iter(),
            fields,
            value: None,
        }
    }

    /// The field `key` names: itself if exact, else the one equal to it
    /// without regard to case (as Go's decoder prefers), else itself.
    fn field(&self, key: String) -> String {
        let Some(fields) = self.fields else {
            return key;
        };
        if fields.contains(&key.as_str()) {
            return key;
        }
        fields
            .iter()
            .find(|f| f.eq_ignore_ascii_case(&key))
            .map_or(key, |f| (*f).to_owned())
    }
}

impl<'de> MapAccess<'de> for Fields {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        loop {
            let Some((key, value)) = self.entries.next() else {
                return Ok(None);
            };
            if self.fields.is_some() && value.is_null() {
                continue;
            }
            self.value = Some(value);
            let key = self.field(key);
            return seed.deserialize(key.into_deserializer()).map(Some);
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let value = self
            .value
            .take()
            .ok_or_else(|| de::Error::custom("a value was asked for before its key"))?;
        seed.deserialize(Go(value))
    }
}

/// An array's items, each read with Go's rules.
struct Items(std::vec::IntoIter<Value>);

impl<'de> de::SeqAccess<'de> for Items {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        self.0.next().map(|v| seed.deserialize(Go(v))).transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(rename_all = "PascalCase", default)]
    struct Spec {
        name: String,
        labels: BTreeMap<String, String>,
        mode: Mode,
        networks: Vec<Attachment>,
        replicas: Option<u64>,
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(rename_all = "PascalCase", default)]
    struct Mode {
        replicated: Option<Replicated>,
        global: Option<Empty>,
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(rename_all = "PascalCase", default)]
    struct Replicated {
        replicas: Option<u64>,
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    struct Empty {}

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(rename_all = "PascalCase", default)]
    struct Attachment {
        target: String,
        aliases: Vec<String>,
    }

    #[test]
    fn field_names_match_without_regard_to_case_and_map_keys_keep_theirs() {
        let spec: Spec = from_slice(
            br#"{"name":"web","LABELS":{"Com.Example":"x"},"mode":{"replicated":{"REPLICAS":3}},
                "Networks":[{"target":"net","aliases":["a"]}]}"#,
        )
        .unwrap();
        assert_eq!(spec.name, "web");
        assert_eq!(spec.labels["Com.Example"], "x");
        assert_eq!(spec.mode.replicated, Some(Replicated { replicas: Some(3) }));
        assert_eq!(spec.networks[0].target, "net");
        assert_eq!(spec.networks[0].aliases, ["a"]);
    }

    #[test]
    fn null_is_absent_unknown_fields_are_ignored_and_an_empty_body_is_zero() {
        let spec: Spec = from_slice(
            br#"{"Name":null,"Labels":null,"Networks":null,"Replicas":null,"Mode":{"Global":{}},"Nope":[1]}"#,
        )
        .unwrap();
        assert_eq!(
            spec,
            Spec {
                mode: Mode {
                    replicated: None,
                    global: Some(Empty {}),
                },
                ..Spec::default()
            }
        );
        assert_eq!(from_slice::<Spec>(b"  ").unwrap(), Spec::default());
    }

    #[test]
    fn an_exact_name_wins_over_one_that_differs_in_case() {
        #[derive(Debug, Default, Deserialize)]
        #[serde(default)]
        struct Two {
            #[serde(rename = "ID")]
            upper: String,
            #[serde(rename = "Id")]
            mixed: String,
        }
        let two: Two = from_slice(br#"{"Id":"b","ID":"a"}"#).unwrap();
        assert_eq!((two.upper.as_str(), two.mixed.as_str()), ("a", "b"));
    }

    #[test]
    fn bad_input_says_what_is_wrong() {
        let e = from_slice::<Spec>(b"{\"Name\":").unwrap_err();
        assert!(e.0.starts_with("invalid JSON: "), "{e}");
        let e = from_slice::<Spec>(br#"{"Replicas":"three"}"#).unwrap_err();
        assert!(e.0.contains("invalid type: string \"three\""), "{e}");
    }
}
