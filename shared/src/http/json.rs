//! Strict JSON bodies: a request body is parsed once, by `parse_strict`, which refuses a
//! member that appears twice in one object at any depth. serde_json keeps the last of two
//! members; a proxy, WAF or log that reads the first would disagree with what is stored,
//! so such a body is a `400` naming the member by its path, never by its value.

use super::problem::MAX_FIELD_ERRORS;
use crate::error::{Error, FieldError};
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::cell::RefCell;
use std::fmt;

/// Characters of one caller-chosen name (a member, a query parameter) echoed in an error.
pub const MAX_ECHOED_NAME: usize = 64;

/// Characters of an echoed member path; deeper paths keep their innermost members.
const MAX_ECHOED_PATH: usize = 256;

/// What a duplicated member is told.
pub const DUPLICATE_MEMBER: &str =
    "appears more than once in the body: send each member once (a proxy or log may read another copy than the one that would be stored)";

#[derive(Debug, thiserror::Error)]
pub enum StrictJsonError {
    /// Not one JSON value (serde_json's message names line and column, never the input;
    /// nesting deeper than its recursion limit of 128 is refused here too).
    #[error(transparent)]
    Syntax(serde_json::Error),
    /// Members that appear more than once in their object, by JSON path (`name`, `a.b`,
    /// `items[0].x`), each once, in document order, at most `MAX_FIELD_ERRORS`.
    #[error("duplicated members: {}", .0.join(", "))]
    Duplicates(Vec<String>),
}

/// Parses one JSON value as `serde_json::from_slice` does, and refuses any object that has
/// a member twice (compared after unescaping, so `"n\u0061me"` is `name`). Every
/// duplicate is named, not only the first, so a caller can fix the body in one go.
pub fn parse_strict(bytes: &[u8]) -> Result<Value, StrictJsonError> {
    let found = RefCell::new(Vec::new());
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Strict {
        at: &Path::Root,
        found: &found,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v))
    .map_err(StrictJsonError::Syntax)?;
    let found = found.into_inner();
    if found.is_empty() {
        Ok(value)
    } else {
        Err(StrictJsonError::Duplicates(found))
    }
}

/// A request body that is one JSON object with no member twice at any depth: the only
/// input the forms (`input`) read, so no route can parse a body less strictly.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonObject(Map<String, Value>);

impl JsonObject {
    /// The body's object, or field errors: `body` when it is empty, not JSON or not an
    /// object; each duplicated member by its path.
    pub fn parse(body: &[u8]) -> Result<Self, Error> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(Error::validation("body", "a JSON object is required"));
        }
        match parse_strict(body) {
            Ok(Value::Object(map)) => Ok(JsonObject(map)),
            Ok(_) => Err(Error::validation("body", "must be a JSON object")),
            Err(StrictJsonError::Syntax(e)) => {
                Err(Error::validation("body", format!("is not valid JSON: {e}")))
            }
            Err(StrictJsonError::Duplicates(paths)) => Err(Error::Validation(
                paths
                    .into_iter()
                    .map(|p| FieldError::new(p, DUPLICATE_MEMBER))
                    .collect(),
            )),
        }
    }

    pub fn members(&self) -> &Map<String, Value> {
        &self.0
    }
}

/// A caller-chosen name as an error echoes it: at most `MAX_ECHOED_NAME` characters
/// (then `…`), and `""` for the empty name, so the field is never blank.
pub fn echoed_name(name: &str) -> String {
    if name.is_empty() {
        return "\"\"".into();
    }
    let mut chars = name.chars();
    let mut out: String = chars.by_ref().take(MAX_ECHOED_NAME).collect();
    if chars.next().is_some() {
        out.push('…');
    }
    out
}

/// Where a value sits in the body, as a list up to the root on the stack, so that no
/// path is built unless a duplicate is found.
#[derive(Clone, Copy)]
enum Path<'a> {
    Root,
    Member(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl Path<'_> {
    /// `a.b[2].c`, bounded: each member name by `echoed_name`, the whole by
    /// `MAX_ECHOED_PATH` (the outermost segments dropped first, marked `…`).
    fn render(&self) -> String {
        let mut segments = Vec::new();
        let mut at = self;
        loop {
            match at {
                Path::Root => break,
                Path::Member(parent, name) => {
                    let dot = if matches!(parent, Path::Root) {
                        ""
                    } else {
                        "."
                    };
                    segments.push(format!("{dot}{}", echoed_name(name)));
                    at = parent;
                }
                Path::Index(parent, i) => {
                    segments.push(format!("[{i}]"));
                    at = parent;
                }
            }
        }
        // Innermost first here: keep segments while they fit.
        let mut len = 0;
        let mut kept = 0;
        for s in &segments {
            let n = s.chars().count();
            if len + n > MAX_ECHOED_PATH {
                break;
            }
            len += n;
            kept += 1;
        }
        let cut = kept < segments.len();
        segments.truncate(kept);
        segments.reverse();
        let path: String = segments.concat();
        if cut {
            format!("…{}", path.trim_start_matches('.'))
        } else {
            path
        }
    }
}

/// Builds a `Value` like serde_json's own visitor, and records duplicated members.
struct Strict<'a> {
    at: &'a Path<'a>,
    found: &'a RefCell<Vec<String>>,
}

impl Strict<'_> {
    fn duplicate(&self, at: &Path<'_>) {
        let mut found = self.found.borrow_mut();
        if found.len() >= MAX_FIELD_ERRORS {
            return;
        }
        let path = at.render();
        if !found.contains(&path) {
            found.push(path);
        }
    }
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
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

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // JSON text has no NaN or infinity; serde_json's own visitor maps them to null too.
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
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
        let mut items = Vec::new();
        loop {
            let at = Path::Index(self.at, items.len());
            let seed = Strict {
                at: &at,
                found: self.found,
            };
            match seq.next_element_seed(seed)? {
                Some(v) => items.push(v),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let at = Path::Member(self.at, &key);
            let twice = members.contains_key(&key);
            if twice {
                self.duplicate(&at);
            }
            // A duplicate's value is still read (its own duplicates are named too), but
            // the body is refused, so which copy would be kept does not matter.
            let value = map.next_value_seed(Strict {
                at: &at,
                found: self.found,
            })?;
            if !twice {
                members.insert(key, value);
            }
        }
        Ok(Value::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn duplicates(body: &str) -> Vec<String> {
        match parse_strict(body.as_bytes()) {
            Err(StrictJsonError::Duplicates(d)) => d,
            other => panic!("{body}: expected duplicates, got {other:?}"),
        }
    }

    #[test]
    fn valid_bodies_parse_as_serde_json_parses_them() {
        for body in [
            r#"{"name":"aws-production","labels":["prod","billing"],"aws_session_duration":900.0}"#,
            r#"{"a":{"b":[1,-2,3.5,1e3,18446744073709551615,-9223372036854775808]},"c":null}"#,
            r#"  {"n\u0061me":"caf\u00e9","e":"","t":true,"f":false}  "#,
            // The same member name in sibling objects or array entries is no duplicate.
            r#"[{"a":1},{"a":2},{"b":{"a":3},"c":{"a":4}}]"#,
            r#""text""#,
            "123",
            "{}",
            "[]",
        ] {
            let strict = parse_strict(body.as_bytes()).unwrap();
            let plain: Value = serde_json::from_slice(body.as_bytes()).unwrap();
            assert_eq!(strict, plain, "{body}");
            // Member order is kept (preserve_order), as the form's error order relies on.
            assert_eq!(strict.to_string(), plain.to_string(), "{body}");
        }
    }

    #[test]
    fn a_top_level_duplicate_is_named() {
        assert_eq!(
            duplicates(r#"{"name":"a","description":"d","name":"b"}"#),
            ["name"]
        );
        // Compared after unescaping: the copies a proxy and this service read are one member.
        assert_eq!(duplicates(r#"{"name":"a","n\u0061me":"b"}"#), ["name"]);
        // Three copies are one duplicated member.
        assert_eq!(duplicates(r#"{"a":1,"a":2,"a":3}"#), ["a"]);
    }

    #[test]
    fn nested_duplicates_are_named_by_their_path() {
        assert_eq!(duplicates(r#"{"labels":{"a":1,"a":2}}"#), ["labels.a"]);
        assert_eq!(duplicates(r#"{"a":{"b":{"c":1,"c":2}}}"#), ["a.b.c"]);
        assert_eq!(
            duplicates(r#"{"items":[{"x":1},{"x":1,"x":2}]}"#),
            ["items[1].x"]
        );
        assert_eq!(duplicates(r#"[[{"k":1,"k":1}]]"#), ["[0][0].k"]);
        // Every duplicate at once, in document order, inside a duplicated member too.
        assert_eq!(
            duplicates(r#"{"a":1,"b":{"c":1,"c":2},"a":{"d":1,"d":2}}"#),
            ["b.c", "a", "a.d"]
        );
    }

    #[test]
    fn a_duplicated_secret_is_named_without_its_value() {
        let first = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        let second = "abcdEFGHijklMNOPqrstUVWXyz0123456789+/AB";
        let body = json!({"name": "n"}).to_string().replace(
            '}',
            &format!(r#","aws_secret_access_key":"{first}","aws_secret_access_key":"{second}"}}"#),
        );
        let err = JsonObject::parse(body.as_bytes()).unwrap_err();
        let Error::Validation(errors) = &err else {
            panic!("{err:?}");
        };
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "aws_secret_access_key");
        assert_eq!(errors[0].message, DUPLICATE_MEMBER);
        let shown = format!("{err:?} {err}");
        assert!(!shown.contains(first) && !shown.contains(second), "{shown}");
    }

    #[test]
    fn deep_nesting_is_refused_cleanly() {
        // serde_json's recursion limit (128) holds: no stack overflow, a syntax error.
        for open in ["[", "{\"a\":"] {
            let deep = open.repeat(100_000);
            match parse_strict(deep.as_bytes()) {
                Err(StrictJsonError::Syntax(e)) => {
                    assert!(e.to_string().contains("recursion limit"), "{e}")
                }
                other => panic!("{other:?}"),
            }
        }
        // Within the limit is fine, and a duplicate down there is named (bounded).
        let ok = format!("{}1{}", "[".repeat(120), "]".repeat(120));
        assert!(parse_strict(ok.as_bytes()).is_ok());
        let deep = format!(
            "{}{{\"x\":1,\"x\":2}}{}",
            "{\"member\":".repeat(120),
            "}".repeat(120)
        );
        let path = &duplicates(&deep)[0];
        assert!(
            path.starts_with('…') && path.ends_with("member.member.x"),
            "{path}"
        );
        assert!(path.chars().count() <= MAX_ECHOED_PATH + 1, "{path}");
    }

    #[test]
    fn echoed_names_are_bounded() {
        let long = "k".repeat(1000);
        let body = format!(r#"{{"{long}":1,"{long}":2}}"#);
        let path = &duplicates(&body)[0];
        assert_eq!(path.chars().count(), MAX_ECHOED_NAME + 1);
        assert!(path.ends_with('…'));
        assert_eq!(duplicates(r#"{"":1,"":2}"#), ["\"\""]);
        assert_eq!(echoed_name("limit"), "limit");
    }

    #[test]
    fn at_most_a_page_of_duplicates_is_named() {
        let members: Vec<String> = (0..200).map(|i| format!(r#""m{i}":1,"m{i}":2"#)).collect();
        let body = format!("{{{}}}", members.join(","));
        assert_eq!(duplicates(&body).len(), MAX_FIELD_ERRORS);
    }

    #[test]
    fn broken_json_is_a_syntax_error_even_after_a_duplicate() {
        for body in [r#"{"a":1,"a":2"#, r#"{"a":1} x"#, "{", r#"{"a":1,}"#] {
            assert!(
                matches!(
                    parse_strict(body.as_bytes()),
                    Err(StrictJsonError::Syntax(_))
                ),
                "{body}"
            );
        }
    }

    #[test]
    fn a_body_is_one_object_without_duplicates() {
        let fields = |body: &str| match JsonObject::parse(body.as_bytes()) {
            Err(Error::Validation(e)) => e.into_iter().map(|e| e.field).collect::<Vec<_>>(),
            other => panic!("{body}: {other:?}"),
        };
        for body in ["", " \n", "[]", "{", "\"x\"", "null"] {
            assert_eq!(fields(body), ["body"], "{body:?}");
        }
        assert_eq!(
            fields(r#"{"name":"a","labels":["x"],"name":"b","shared_with":[{"g":1,"g":2}]}"#),
            ["name", "shared_with[0].g"]
        );
        let ok = JsonObject::parse(br#"{"name":"a","labels":["x","x"]}"#).unwrap();
        assert_eq!(ok.members()["labels"], json!(["x", "x"]));
    }
}
