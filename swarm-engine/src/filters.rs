//! The `filters` query parameter, in both of Docker's forms: the map form
//! `{"name":{"web":true}}` that clients send since API 1.22, and the older
//! list form `{"name":["web"]}`. Each endpoint names the keys it accepts;
//! another key is a 400 (`invalid filter 'foo'`), as Docker answers.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::ApiError;

/// A request's filters: for each key, the values asked for. A key's
/// values are alternatives (any may match); the keys must all match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters(BTreeMap<String, BTreeSet<String>>);

impl Filters {
    /// Reads `raw` (the parameter's value; none or empty is no filter) and
    /// checks that every key is one of `accepted`.
    ///
    /// # Errors
    /// A 400 if it is not JSON of either form, or has another key.
    pub fn parse(raw: Option<&str>, accepted: &[&str]) -> Result<Self, ApiError> {
        let filters = Self::from_json(raw.unwrap_or(""))?;
        if let Some(bad) = filters.0.keys().find(|k| !accepted.contains(&k.as_str())) {
            return Err(ApiError::bad_request(format!("invalid filter '{bad}'")));
        }
        Ok(filters)
    }

    fn from_json(raw: &str) -> Result<Self, ApiError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Ok(Self::default());
        }
        let bad = || {
            ApiError::bad_request(format!(
                "invalid filters {raw:?}: expected JSON such as {{\"name\":{{\"web\":true}}}}"
            ))
        };
        let Value::Object(map) = serde_json::from_str::<Value>(raw).map_err(|_| bad())? else {
            return Err(bad());
        };
        let mut filters = Self::default();
        for (key, values) in map {
            let set = filters.0.entry(key).or_default();
            match values {
                Value::Object(m) => {
                    // Docker keeps a value whatever its boolean says.
                    set.extend(m.into_iter().map(|(v, _)| v));
                }
                Value::Array(items) => {
                    for item in items {
                        let Value::String(v) = item else {
                            return Err(bad());
                        };
                        set.insert(v);
                    }
                }
                Value::Null => {}
                _ => return Err(bad()),
            }
        }
        Ok(filters)
    }

    /// Adds `value` under `key` (a server's own filter).
    pub fn add(&mut self, key: &str, value: impl Into<String>) {
        self.0
            .entry(key.to_owned())
            .or_default()
            .insert(value.into());
    }

    /// The values asked for under `key`.
    pub fn get<'a>(&'a self, key: &str) -> impl Iterator<Item = &'a str> + 'a {
        self.0.get(key).into_iter().flatten().map(String::as_str)
    }

    /// Whether `key` is asked for at all.
    #[must_use]
    pub fn contains(&self, key: &str) -> bool {
        self.0.get(key).is_some_and(|v| !v.is_empty())
    }

    /// Replaces the values of `key`.
    pub fn set(&mut self, key: &str, values: impl IntoIterator<Item = String>) {
        self.0.insert(key.to_owned(), values.into_iter().collect());
    }

    /// Whether `value` equals one of `key`'s values (or `key` is not
    /// asked for).
    #[must_use]
    pub fn exact(&self, key: &str, value: &str) -> bool {
        !self.contains(key) || self.get(key).any(|v| v == value)
    }

    /// Whether `value` starts with one of `key`'s values (or `key` is not
    /// asked for): how swarm matches ids and most names.
    #[must_use]
    pub fn prefix(&self, key: &str, value: &str) -> bool {
        !self.contains(key) || self.get(key).any(|v| value.starts_with(v))
    }

    /// [`Filters::prefix`] without regard to case: how swarm matches the
    /// names of secrets and configs.
    #[must_use]
    pub fn prefix_ignoring_case(&self, key: &str, value: &str) -> bool {
        let value = value.to_lowercase();
        !self.contains(key) || self.get(key).any(|v| value.starts_with(&v.to_lowercase()))
    }

    /// Whether `value` contains one of `key`'s values (or `key` is not
    /// asked for): how Docker matches network names.
    #[must_use]
    pub fn substring(&self, key: &str, value: &str) -> bool {
        !self.contains(key) || self.get(key).any(|v| value.contains(v))
    }

    /// Whether `labels` hold every `key` value: `name` (present) or
    /// `name=value`.
    #[must_use]
    pub fn labels(&self, key: &str, labels: &BTreeMap<String, String>) -> bool {
        self.get(key).all(|want| match want.split_once('=') {
            Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
            None => labels.contains_key(want),
        })
    }
}

/// A query boolean, as Go's `strconv.ParseBool` reads it: `1 t T TRUE
/// true True`, `0 f F FALSE false False`; absent or empty is `default`.
///
/// # Errors
/// A 400 naming the parameter for any other text.
pub fn parse_bool(name: &str, value: Option<&str>, default: bool) -> Result<bool, ApiError> {
    match value.map(str::trim) {
        None | Some("") => Ok(default),
        Some("1" | "t" | "T" | "TRUE" | "true" | "True") => Ok(true),
        Some("0" | "f" | "F" | "FALSE" | "false" | "False") => Ok(false),
        Some(other) => Err(ApiError::bad_request(format!(
            "invalid value for {name}: {other:?} is not a boolean (use true or false)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_read_the_same() {
        let map = Filters::parse(Some(r#"{"name":{"web":true,"db":true}}"#), &["name"]).unwrap();
        let list = Filters::parse(Some(r#"{"name":["db","web"]}"#), &["name"]).unwrap();
        assert_eq!(map, list);
        assert!(map.exact("name", "web") && map.exact("name", "db") && !map.exact("name", "x"));
        assert!(map.prefix("name", "website") && !map.prefix("name", "api"));
        assert!(map.exact("id", "anything"), "a key not asked for matches");
    }

    #[test]
    fn unknown_keys_and_bad_json_are_400s() {
        let e = Filters::parse(Some(r#"{"colour":{"red":true}}"#), &["name"]).unwrap_err();
        assert_eq!(e.status, 400);
        assert_eq!(e.message, "invalid filter 'colour'");
        for bad in ["{", "[1]", r#"{"name":[1]}"#, r#"{"name":"web"}"#] {
            let e = Filters::parse(Some(bad), &["name"]).unwrap_err();
            assert_eq!(e.status, 400, "{bad}");
        }
        assert_eq!(Filters::parse(None, &[]).unwrap(), Filters::default());
        assert_eq!(Filters::parse(Some(""), &[]).unwrap(), Filters::default());
    }

    #[test]
    fn labels_need_every_one() {
        let f = Filters::parse(Some(r#"{"label":["tier=web","zone"]}"#), &["label"]).unwrap();
        let mut l = BTreeMap::from([("tier".to_owned(), "web".to_owned())]);
        assert!(!f.labels("label", &l));
        l.insert("zone".into(), "a".into());
        assert!(f.labels("label", &l));
        l.insert("tier".into(), "db".into());
        assert!(!f.labels("label", &l));
    }

    #[test]
    fn booleans_read_as_go_reads_them() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert!(parse_bool("force", Some(t), false).unwrap());
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert!(!parse_bool("force", Some(f), true).unwrap());
        }
        assert!(parse_bool("force", None, true).unwrap());
        let e = parse_bool("force", Some("yes"), false).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message.contains("force"), "{}", e.message);
    }
}
