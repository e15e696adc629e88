//! The integration form's rules. Every field is checked and every violation is reported
//! at once, named by its JSON field, so a person can fix the whole form in one go.

use crate::error::{Error, FieldError};
use crate::model::{IntegrationPatch, NewIntegration, DEFAULT_REGION, DEFAULT_SESSION_DURATION};
use secrecy::SecretString;
use serde_json::{Map, Value};

pub const FIELDS: &[&str] = &[
    "name",
    "description",
    "labels",
    "aws_account_id",
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_assumed_role_name",
    "aws_external_id",
    "aws_session_duration",
    "aws_default_region",
    "create_state_bucket",
];

/// Parses a JSON request body into an object, naming `body` when it is not one.
pub fn json_object(body: &[u8]) -> Result<Map<String, Value>, Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::validation("body", "a JSON object is required"));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Error::validation("body", "must be a JSON object")),
        // serde_json's message names line and column but never echoes the input.
        Err(e) => Err(Error::validation("body", format!("is not valid JSON: {e}"))),
    }
}

struct Checker<'a> {
    map: &'a Map<String, Value>,
    errors: Vec<FieldError>,
}

impl<'a> Checker<'a> {
    fn new(map: &'a Map<String, Value>) -> Self {
        let mut errors = Vec::new();
        let mut unknown: Vec<&String> = map
            .keys()
            .filter(|k| !FIELDS.contains(&k.as_str()))
            .collect();
        unknown.sort();
        for k in unknown {
            errors.push(FieldError::new(k.as_str(), "unknown field"));
        }
        Checker { map, errors }
    }

    fn fail(&mut self, field: &str, msg: impl Into<String>) {
        self.errors.push(FieldError::new(field, msg));
    }

    /// The field's value; `None` when absent or null. Checkers below return `None` when
    /// the value is invalid (already reported), `Some(None)` when absent or null.
    fn raw(&self, field: &str) -> Option<&'a Value> {
        self.map.get(field).filter(|v| !v.is_null())
    }

    fn string(&mut self, field: &str) -> Option<Option<&'a str>> {
        match self.raw(field) {
            None => Some(None),
            Some(Value::String(s)) => Some(Some(s.as_str())),
            Some(_) => {
                self.fail(field, "must be a string");
                None
            }
        }
    }

    /// Runs `rule` on a present string value, recording its error.
    fn check_str<T>(
        &mut self,
        field: &str,
        rule: impl Fn(&str) -> Result<T, String>,
    ) -> Option<Option<T>> {
        match self.string(field)? {
            None => Some(None),
            Some(s) => match rule(s) {
                Ok(v) => Some(Some(v)),
                Err(m) => {
                    self.fail(field, m);
                    None
                }
            },
        }
    }

    fn required<T>(&mut self, field: &str, v: Option<Option<T>>, present: bool) -> Option<T> {
        match v {
            Some(Some(v)) => Some(v),
            Some(None) if present => {
                self.fail(field, "is required and must not be null");
                None
            }
            Some(None) => {
                self.fail(field, "is required");
                None
            }
            None => None,
        }
    }

    fn labels(&mut self) -> Option<Option<Vec<String>>> {
        let Some(v) = self.raw("labels") else {
            return Some(None);
        };
        let Value::Array(items) = v else {
            self.fail("labels", "must be an array of strings");
            return None;
        };
        let mut out: Vec<String> = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let field = format!("labels[{i}]");
            match item {
                Value::String(s) => match label(s) {
                    Ok(l) => {
                        if !out.contains(&l) {
                            out.push(l);
                        }
                    }
                    Err(m) => {
                        self.fail(&field, m);
                        ok = false;
                    }
                },
                _ => {
                    self.fail(&field, "must be a string");
                    ok = false;
                }
            }
        }
        if out.len() > 50 {
            self.fail("labels", "at most 50 labels are allowed");
            ok = false;
        }
        ok.then_some(Some(out))
    }

    fn session_duration(&mut self) -> Option<Option<u32>> {
        match self.raw("aws_session_duration") {
            None => Some(None),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(s) if (900..=43200).contains(&s) => Some(Some(s as u32)),
                _ => {
                    self.fail(
                        "aws_session_duration",
                        "must be a whole number of seconds from 900 to 43200",
                    );
                    None
                }
            },
            Some(_) => {
                self.fail(
                    "aws_session_duration",
                    "must be a number (seconds, 900 to 43200)",
                );
                None
            }
        }
    }

    fn bool(&mut self, field: &str) -> Option<Option<bool>> {
        match self.raw(field) {
            None => Some(None),
            Some(Value::Bool(b)) => Some(Some(*b)),
            Some(_) => {
                self.fail(field, "must be true or false");
                None
            }
        }
    }

    fn secret(&mut self, field: &str) -> Option<Option<SecretString>> {
        match self.raw(field) {
            None => Some(None),
            Some(Value::String(s)) => match secret_access_key(s) {
                Ok(v) => Some(Some(v)),
                Err(m) => {
                    self.fail(field, m);
                    None
                }
            },
            Some(_) => {
                self.fail(field, "must be a string");
                None
            }
        }
    }

    fn finish<T>(self, value: impl FnOnce() -> T) -> Result<T, Error> {
        if self.errors.is_empty() {
            Ok(value())
        } else {
            Err(Error::Validation(self.errors))
        }
    }
}

fn has(map: &Map<String, Value>, f: &str) -> bool {
    map.contains_key(f)
}

/// The create / test-connection form.
pub fn parse_new(body: &[u8]) -> Result<NewIntegration, Error> {
    let map = json_object(body)?;
    let mut c = Checker::new(&map);
    let name = c.check_str("name", name);
    let name = c.required("name", name, has(&map, "name"));
    let description = c.check_str("description", description);
    let labels = c.labels().map(Option::unwrap_or_default);
    let account = c.check_str("aws_account_id", account_id);
    let account = c.required("aws_account_id", account, has(&map, "aws_account_id"));
    let key_id = c.check_str("aws_access_key_id", access_key_id);
    let key_id = c.required("aws_access_key_id", key_id, has(&map, "aws_access_key_id"));
    let secret = c.secret("aws_secret_access_key");
    let secret = c.required(
        "aws_secret_access_key",
        secret,
        has(&map, "aws_secret_access_key"),
    );
    let role = c.check_str("aws_assumed_role_name", role_name);
    let external = c.check_str("aws_external_id", external_id);
    let duration = c
        .session_duration()
        .map(|d| d.unwrap_or(DEFAULT_SESSION_DURATION));
    let region = c
        .check_str("aws_default_region", region)
        .map(|r| r.unwrap_or_else(|| DEFAULT_REGION.to_owned()));
    let bucket = c.bool("create_state_bucket").map(|b| b.unwrap_or(false));

    if matches!(external, Some(Some(_))) && matches!(role, Some(None)) {
        c.fail(
            "aws_external_id",
            "is only used with aws_assumed_role_name (the role's trust policy checks it)",
        );
    }

    let all = (
        name,
        description,
        labels,
        account,
        key_id,
        secret,
        role,
        external,
        duration,
        region,
        bucket,
    );
    match all {
        (
            Some(name),
            Some(description),
            Some(labels),
            Some(aws_account_id),
            Some(aws_access_key_id),
            Some(aws_secret_access_key),
            Some(aws_assumed_role_name),
            Some(aws_external_id),
            Some(aws_session_duration),
            Some(aws_default_region),
            Some(create_state_bucket),
        ) => c.finish(|| NewIntegration {
            name,
            description,
            labels,
            aws_account_id,
            aws_access_key_id,
            aws_secret_access_key,
            aws_assumed_role_name,
            aws_external_id,
            aws_session_duration,
            aws_default_region,
            create_state_bucket,
        }),
        _ => Err(Error::Validation(c.errors)),
    }
}

/// A PATCH body: any subset of the fields; `null` clears an optional one.
/// `current_account` lets an unchanged `aws_account_id` through.
pub fn parse_patch(body: &[u8], current_account: &str) -> Result<IntegrationPatch, Error> {
    let map = json_object(body)?;
    let mut c = Checker::new(&map);
    let mut patch = IntegrationPatch::default();

    if let Some(v) = map.get("aws_account_id") {
        if v.as_str().map(str::trim) != Some(current_account) {
            c.fail(
                "aws_account_id",
                "is immutable: create a new integration for another account",
            );
        }
    }
    let present = |f: &str| has(&map, f);
    match c.check_str("name", name) {
        Some(Some(n)) => patch.name = Some(n),
        Some(None) if present("name") => c.fail("name", "must not be null"),
        _ => {}
    }
    if present("description") {
        patch.description = c.check_str("description", description);
    }
    if present("labels") {
        patch.labels = c.labels().map(Option::unwrap_or_default);
    }
    let key_id = c.check_str("aws_access_key_id", access_key_id);
    let secret = c.secret("aws_secret_access_key");
    match (
        has(&map, "aws_access_key_id"),
        has(&map, "aws_secret_access_key"),
    ) {
        (true, false) => c.fail(
            "aws_secret_access_key",
            "is required when rotating keys (send both key fields together)",
        ),
        (false, true) => c.fail(
            "aws_access_key_id",
            "is required when rotating keys (send both key fields together)",
        ),
        _ => {}
    }
    match (key_id, secret) {
        (Some(Some(k)), Some(Some(s))) => patch.keys = Some((k, s)),
        (Some(None), _) if present("aws_access_key_id") => {
            c.fail("aws_access_key_id", "must not be null")
        }
        (_, Some(None)) if present("aws_secret_access_key") => {
            c.fail("aws_secret_access_key", "must not be null")
        }
        _ => {}
    }
    if present("aws_assumed_role_name") {
        patch.aws_assumed_role_name = c.check_str("aws_assumed_role_name", role_name);
    }
    if present("aws_external_id") {
        patch.aws_external_id = c.check_str("aws_external_id", external_id);
    }
    if present("aws_session_duration") {
        if let Some(d) = c.session_duration() {
            patch.aws_session_duration = Some(d.unwrap_or(DEFAULT_SESSION_DURATION));
        }
    }
    if present("aws_default_region") {
        if let Some(r) = c.check_str("aws_default_region", region) {
            patch.aws_default_region = Some(r.unwrap_or_else(|| DEFAULT_REGION.to_owned()));
        }
    }
    match c.bool("create_state_bucket") {
        Some(Some(b)) => patch.create_state_bucket = Some(b),
        Some(None) if present("create_state_bucket") => {
            c.fail("create_state_bucket", "must be true or false")
        }
        _ => {}
    }
    // Restating the (immutable) account alone changes nothing either.
    if c.errors.is_empty() && patch.is_empty() {
        c.fail("body", "names no field to change");
    }
    c.finish(|| patch)
}

// ---- single-field rules -------------------------------------------------------------

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

pub fn name(s: &str) -> Result<String, String> {
    let n = s.chars().count();
    if n == 0 || n > 64 {
        return Err("must be 1 to 64 characters".into());
    }
    if !s.chars().all(is_word_char) {
        return Err("may contain only letters, digits, '-' and '_' (e.g. aws-production)".into());
    }
    Ok(s.to_owned())
}

fn description(s: &str) -> Result<String, String> {
    if s.chars().count() > 1024 {
        return Err("must be at most 1024 characters".into());
    }
    Ok(s.to_owned())
}

pub fn label(s: &str) -> Result<String, String> {
    let n = s.chars().count();
    if n == 0 || n > 63 {
        return Err("must be 1 to 63 characters".into());
    }
    if s.chars().any(|c| c.is_control()) {
        return Err("must contain only printable characters".into());
    }
    Ok(s.to_owned())
}

pub fn account_id(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
        Ok(s.to_owned())
    } else {
        Err("must be exactly 12 digits (e.g. 123456789012)".into())
    }
}

pub fn access_key_id(s: &str) -> Result<String, String> {
    let s = s.trim();
    let body_ok = |rest: &str| {
        rest.len() == 16
            && rest
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    };
    if let Some(rest) = s.strip_prefix("AKIA") {
        if body_ok(rest) {
            return Ok(s.to_owned());
        }
    } else if s.starts_with("ASIA") {
        return Err(
            "is a temporary (ASIA...) key: it expires and needs a session token; \
                    create a long-term access key (AKIA...) for the IAM user"
                .into(),
        );
    }
    Err(
        "must be a long-term access key ID: 'AKIA' followed by 16 uppercase letters or digits"
            .into(),
    )
}

fn secret_access_key(s: &str) -> Result<SecretString, String> {
    let s = s.trim();
    if s.len() == 40
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'/' || b == b'+')
    {
        Ok(SecretString::from(s.to_owned()))
    } else {
        // Never echo any part of the value.
        Err("must be 40 characters of A-Z, a-z, 0-9, '/' and '+'".into())
    }
}

fn is_iam_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "+=,.@_-".contains(c)
}

/// `InfraKitchenRole` or `team/InfraKitchenRole` (a leading '/' is dropped).
pub fn role_name(s: &str) -> Result<String, String> {
    let s = s.trim();
    let s = s.strip_prefix('/').unwrap_or(s);
    let (path, role) = match s.rsplit_once('/') {
        Some((p, r)) => (Some(p), r),
        None => (None, s),
    };
    let n = role.chars().count();
    if n == 0 || n > 64 || !role.chars().all(is_iam_char) {
        return Err(
            "the role name must be 1 to 64 of A-Z a-z 0-9 + = , . @ _ - \
                    (optionally after a path: team/InfraKitchenRole)"
                .into(),
        );
    }
    if let Some(p) = path {
        if p.len() > 510
            || p.split('/')
                .any(|seg| seg.is_empty() || !seg.chars().all(is_iam_char))
        {
            return Err(
                "the role path must be segments of A-Z a-z 0-9 + = , . @ _ - \
                        separated by '/' (e.g. team/InfraKitchenRole)"
                    .into(),
            );
        }
    }
    Ok(s.to_owned())
}

pub fn external_id(s: &str) -> Result<String, String> {
    let n = s.chars().count();
    if !(2..=1224).contains(&n) {
        return Err("must be 2 to 1224 characters".into());
    }
    if !s.chars().all(|c| is_iam_char(c) || c == ':' || c == '/') {
        return Err("may contain only A-Z a-z 0-9 + = , . @ : / _ -".into());
    }
    Ok(s.to_owned())
}

const DIRECTIONS: &[&str] = &[
    "central",
    "north",
    "south",
    "east",
    "west",
    "northeast",
    "northwest",
    "southeast",
    "southwest",
];

/// A well-formed region code. Strict, because it becomes part of endpoint host names.
pub fn region(s: &str) -> Result<String, String> {
    let err = || {
        "must be an AWS region code such as us-east-1, eu-central-1, us-gov-west-1 or cn-north-1"
            .to_string()
    };
    let parts: Vec<&str> = s.split('-').collect();
    let (geo, rest) = match parts.as_slice() {
        [g, d, n] => (vec![*g], [*d, *n]),
        [g, q, d, n] => (vec![*g, *q], [*d, *n]),
        _ => return Err(err()),
    };
    let geo_ok = geo[0].len() == 2 && geo[0].bytes().all(|b| b.is_ascii_lowercase());
    let qual_ok = geo.len() == 1 || matches!(geo[1], "gov" | "iso" | "isob" | "isoe" | "isof");
    let dir_ok = DIRECTIONS.contains(&rest[0]);
    let num_ok = !rest[1].is_empty()
        && rest[1].len() <= 2
        && rest[1].bytes().all(|b| b.is_ascii_digit())
        && !rest[1].starts_with('0');
    if geo_ok && qual_ok && dir_ok && num_ok {
        Ok(s.to_owned())
    } else {
        Err(err())
    }
}

/// An IAM user or role ARN: `arn:<partition>:iam::<12 digits>:user/<path/name>`.
pub fn principal_arn(s: &str) -> Result<String, String> {
    let err = || {
        "must be an IAM user or role ARN such as arn:aws:iam::123456789012:user/InfraKitchenUser"
            .to_string()
    };
    if s.chars().any(char::is_whitespace) {
        return Err(err());
    }
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    let [arn, partition, iam, region, account, resource] = parts.as_slice() else {
        return Err(err());
    };
    let known = [
        "aws",
        "aws-cn",
        "aws-us-gov",
        "aws-iso",
        "aws-iso-b",
        "aws-iso-e",
        "aws-iso-f",
    ];
    let ok = *arn == "arn"
        && known.contains(partition)
        && *iam == "iam"
        && region.is_empty()
        && account_id(account).is_ok()
        && (resource
            .strip_prefix("user/")
            .or_else(|| resource.strip_prefix("role/"))
            .is_some_and(|r| role_name(r).is_ok()));
    if ok {
        Ok(s.to_owned())
    } else {
        Err(err())
    }
}

pub fn arn_partition(arn: &str) -> crate::model::Partition {
    use crate::model::Partition::*;
    match arn.split(':').nth(1) {
        Some("aws-cn") => AwsCn,
        Some("aws-us-gov") => AwsUsGov,
        Some("aws-iso") => AwsIso,
        Some("aws-iso-b") => AwsIsoB,
        Some("aws-iso-e") => AwsIsoE,
        Some("aws-iso-f") => AwsIsoF,
        _ => Aws,
    }
}

/// An S3 bucket name (3-63 of a-z 0-9 . -, starting and ending with a letter or digit).
pub fn bucket_name(s: &str) -> Result<String, String> {
    let ok = (3..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
        && !s.contains("..");
    if ok {
        Ok(s.to_owned())
    } else {
        Err("must be a valid S3 bucket name (3-63 of a-z 0-9 . -)".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use serde_json::json;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    fn good() -> Value {
        json!({
            "name": "aws-production",
            "aws_account_id": "123456789012",
            "aws_access_key_id": "AKIAIOSFODNN7EXAMPLE",
            "aws_secret_access_key": SECRET,
        })
    }

    fn errors(v: &Value) -> Vec<FieldError> {
        match parse_new(v.to_string().as_bytes()) {
            Err(Error::Validation(e)) => e,
            other => panic!("expected validation error, got {other:?}"),
        }
    }

    #[test]
    fn minimal_form_gets_defaults() {
        let n = parse_new(good().to_string().as_bytes()).unwrap();
        assert_eq!(n.aws_default_region, "us-east-1");
        assert_eq!(n.aws_session_duration, 3600);
        assert!(!n.create_state_bucket);
        assert!(n.labels.is_empty());
        assert_eq!(n.aws_secret_access_key.expose_secret(), SECRET);
    }

    #[test]
    fn trims_pasted_keys() {
        let mut v = good();
        v["aws_access_key_id"] = json!("  AKIAIOSFODNN7EXAMPLE\n");
        v["aws_secret_access_key"] = json!(format!(" {SECRET}\t"));
        let n = parse_new(v.to_string().as_bytes()).unwrap();
        assert_eq!(n.aws_access_key_id, "AKIAIOSFODNN7EXAMPLE");
        assert_eq!(n.aws_secret_access_key.expose_secret(), SECRET);
    }

    #[test]
    fn reports_every_violation_at_once() {
        let v = json!({
            "name": "bad name!",
            "aws_account_id": 123456789012u64,
            "aws_access_key_id": "ASIAIOSFODNN7EXAMPLE",
            "aws_secret_access_key": "short",
            "aws_session_duration": 60,
            "aws_default_region": "mars-1",
            "create_state_bucket": "yes",
            "aws_external_id": "abc",
            "colour": "blue",
        });
        let e = errors(&v);
        let fields: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
        for f in [
            "colour",
            "name",
            "aws_account_id",
            "aws_access_key_id",
            "aws_secret_access_key",
            "aws_session_duration",
            "aws_default_region",
            "create_state_bucket",
            "aws_external_id",
        ] {
            assert!(fields.contains(&f), "{f} missing from {fields:?}");
        }
        let asia = e.iter().find(|e| e.field == "aws_access_key_id").unwrap();
        assert!(asia.message.contains("temporary"));
        // The rejected secret is never echoed.
        assert!(!format!("{e:?}").contains("short"));
    }

    #[test]
    fn missing_required_fields_are_named() {
        let e = errors(&json!({}));
        let fields: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "name",
                "aws_account_id",
                "aws_access_key_id",
                "aws_secret_access_key"
            ]
        );
    }

    #[test]
    fn labels_are_deduplicated_and_bounded() {
        let mut v = good();
        v["labels"] = json!(["prod", "billing", "prod"]);
        assert_eq!(
            parse_new(v.to_string().as_bytes()).unwrap().labels,
            ["prod", "billing"]
        );
        v["labels"] = json!((0..51).map(|i| format!("l{i}")).collect::<Vec<_>>());
        assert_eq!(errors(&v)[0].field, "labels");
        v["labels"] = json!(["ok", "", "x".repeat(64), 5, "tab\there"]);
        let f: Vec<String> = errors(&v).into_iter().map(|e| e.field).collect();
        assert_eq!(f, ["labels[1]", "labels[2]", "labels[3]", "labels[4]"]);
    }

    #[test]
    fn role_rules() {
        assert_eq!(
            role_name("team/InfraKitchenRole").unwrap(),
            "team/InfraKitchenRole"
        );
        assert_eq!(role_name("/a/b/R").unwrap(), "a/b/R");
        assert!(role_name("bad role").is_err());
        assert!(role_name("a//R").is_err());
        assert!(role_name(&"r".repeat(65)).is_err());
        assert!(external_id("x").is_err());
        assert!(external_id("tenant:42/a_b").is_ok());
        let mut v = good();
        v["aws_assumed_role_name"] = json!("InfraKitchenRole");
        v["aws_external_id"] = json!("ik-ext-1");
        assert!(parse_new(v.to_string().as_bytes()).is_ok());
    }

    #[test]
    fn regions() {
        for ok in [
            "us-east-1",
            "eu-central-1",
            "us-gov-west-1",
            "cn-north-1",
            "ap-southeast-5",
            "il-central-1",
            "us-iso-east-1",
        ] {
            assert!(region(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "us-east",
            "US-EAST-1",
            "us-east-01",
            "us-east-1.evil.com",
            "usa-east-1",
            "us-up-1",
            "us-east-1/",
        ] {
            assert!(region(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn body_must_be_an_object() {
        for b in ["", "[]", "{", "\"x\""] {
            match parse_new(b.as_bytes()) {
                Err(Error::Validation(e)) => assert_eq!(e[0].field, "body"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn patch_rules() {
        let p = |v: Value| parse_patch(v.to_string().as_bytes(), "123456789012");
        assert!(p(json!({"aws_account_id": "123456789012", "name": "x"})).is_ok());
        assert!(p(json!({"aws_account_id": " 123456789012 ", "name": "x"})).is_ok());
        match p(json!({"aws_account_id": "123456789012"})) {
            Err(Error::Validation(e)) => assert_eq!(e[0].field, "body"),
            o => panic!("{o:?}"),
        }
        let e = match p(json!({"aws_account_id": "000000000000"})) {
            Err(Error::Validation(e)) => e,
            o => panic!("{o:?}"),
        };
        assert_eq!(e[0].field, "aws_account_id");
        match p(json!({"aws_access_key_id": "AKIAIOSFODNN7EXAMPLE"})) {
            Err(Error::Validation(e)) => assert_eq!(e[0].field, "aws_secret_access_key"),
            o => panic!("{o:?}"),
        }
        match p(json!({})) {
            Err(Error::Validation(e)) => assert_eq!(e[0].field, "body"),
            o => panic!("{o:?}"),
        }
        let patch = p(json!({"description": null, "labels": ["a"]})).unwrap();
        assert_eq!(patch.description, Some(None));
        assert_eq!(patch.labels, Some(vec!["a".to_string()]));
        match p(json!({"name": null})) {
            Err(Error::Validation(e)) => assert_eq!(e[0].field, "name"),
            o => panic!("{o:?}"),
        }
    }

    proptest::proptest! {
        #[test]
        fn region_never_accepts_host_syntax(s in "[a-z0-9.:/-]{0,20}") {
            if region(&s).is_ok() {
                proptest::prop_assert!(s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
            }
        }

        #[test]
        fn secret_errors_never_echo_input(s in "[A-Za-z0-9]{8,39}") {
            let v = serde_json::json!({"aws_secret_access_key": s.clone()});
            if let Err(e) = parse_new(v.to_string().as_bytes()) {
                let shown = format!("{:?}", e);
                proptest::prop_assert!(!shown.contains(&s));
            }
        }
    }
}
