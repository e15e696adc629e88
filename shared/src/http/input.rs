//! The integration form's rules. Every field is checked and every violation is reported
//! at once, named by its JSON field, so a person can fix the whole form in one go.

use crate::app::error::{Error, FieldError};
use crate::domain::{IntegrationPatch, NewIntegration, DEFAULT_REGION, DEFAULT_SESSION_DURATION};
use secrecy::SecretString;
use serde_json::{Map, Value};
use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

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

/// Entries a `labels` array may hold before de-duplication (at most 50 distinct).
const MAX_LABEL_ENTRIES: usize = 100;

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
        // Refused before looking at the entries: a huge array would otherwise cost a
        // check (and possibly an error) per entry. Duplicates are allowed up to this.
        if items.len() > MAX_LABEL_ENTRIES {
            self.fail(
                "labels",
                format!(
                    "at most 50 labels are allowed (got {} entries)",
                    items.len()
                ),
            );
            return None;
        }
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
            Some(Value::Number(n)) => match session_seconds(n) {
                Ok(s) => Some(Some(s)),
                Err(m) => {
                    self.fail("aws_session_duration", m);
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

/// The body's region when it is valid (its errors are reported by its own check); `null`
/// is the default region, and so is absence where `absent_is_default` (create), else
/// absence means unknown (a PATCH that keeps the stored region).
fn given_region(map: &Map<String, Value>, absent_is_default: bool) -> Option<String> {
    match map.get("aws_default_region") {
        None => absent_is_default.then(|| DEFAULT_REGION.to_owned()),
        Some(Value::Null) => Some(DEFAULT_REGION.to_owned()),
        Some(Value::String(r)) => region(r).ok(),
        Some(_) => None,
    }
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
    let in_region = given_region(&map, true);
    let role = c.check_str("aws_assumed_role_name", |r| {
        role_name_in(r, account.as_deref(), in_region.as_deref())
    });
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
        // The stored region is not known here: a pasted ARN's partition is checked against
        // the region only when the same PATCH sets it.
        let in_region = given_region(&map, false);
        patch.aws_assumed_role_name = c.check_str("aws_assumed_role_name", |r| {
            role_name_in(r, Some(current_account), in_region.as_deref())
        });
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

/// `aws_session_duration`: a JSON number that is a whole number of seconds, 900 to 43200.
/// JSON Schema counts `900.0` (and `9e2`) as the integer 900, so they are accepted as 900;
/// `900.5` is refused, naming its fraction.
fn session_seconds(n: &serde_json::Number) -> Result<u32, String> {
    const RANGE: &str = "must be a whole number of seconds from 900 to 43200";
    if let Some(s) = n.as_u64() {
        return match u32::try_from(s) {
            Ok(s) if (900..=43200).contains(&s) => Ok(s),
            _ => Err(RANGE.into()),
        };
    }
    match n.as_f64() {
        Some(f) if f.is_finite() && f.fract() != 0.0 => {
            Err(format!("{RANGE}: {n} has a fractional part"))
        }
        Some(f) if (900.0..=43200.0).contains(&f) => Ok(f as u32),
        _ => Err(RANGE.into()),
    }
}

/// Why `c` may not be in a description or label: control characters (general category
/// Cc; in a description tab, newline and carriage return are fine) and format characters
/// (Cf: bidirectional controls, zero-width characters, the byte order mark, the soft
/// hyphen, tag characters...), which are invisible or make the text display differently
/// from what it is (`prod\u{202E}gnp.exe` displays as `prodexe.png`).
fn refused_kind(c: char, line_breaks_allowed: bool) -> Option<&'static str> {
    if line_breaks_allowed && matches!(c, '\t' | '\n' | '\r') {
        return None;
    }
    if c.is_control() {
        return Some("a control character");
    }
    if c.general_category() != GeneralCategory::Format {
        return None;
    }
    Some(match c {
        '\u{061C}'
        | '\u{200E}'
        | '\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2066}'..='\u{2069}' => {
            "a bidirectional control character, which can make text display differently \
             from what it is"
        }
        '\u{200B}' => "a zero-width space, which is invisible",
        '\u{200C}' | '\u{200D}' => "a zero-width joiner or non-joiner, which is invisible",
        '\u{2060}' => "a word joiner, which is invisible",
        '\u{FEFF}' => "a byte order mark (zero-width no-break space), which is invisible",
        '\u{00AD}' => "a soft hyphen, which is usually invisible",
        '\u{E0001}' | '\u{E0020}'..='\u{E007F}' => "a tag character, which is invisible",
        _ => "a format character, which is invisible or changes how text around it displays",
    })
}

/// The message naming the first refused character of `s` (see [`refused_kind`]) as
/// `U+XXXX`, its kind and its position (1-based, in characters), and how many more there
/// are; `None` when there is none.
fn refused_chars(s: &str, line_breaks_allowed: bool) -> Option<String> {
    let mut found = s
        .chars()
        .enumerate()
        .filter_map(|(i, c)| refused_kind(c, line_breaks_allowed).map(|k| (i, c, k)));
    let (i, c, kind) = found.next()?;
    let head = format!("contains U+{:04X} ({kind}) at position {}", c as u32, i + 1);
    Some(match found.count() {
        0 => format!("{head}: remove it"),
        1 => format!("{head} and 1 more such character: remove them"),
        more => format!("{head} and {more} more such characters: remove them"),
    })
}

/// No normalisation shortens text this much (a composed character stands for at most a
/// few), so longer input is refused before it is normalised.
const NORMALISATION_SLACK: usize = 16;

const MAX_DESCRIPTION: usize = 1024;

/// At most 1024 characters once normalised to NFC (so a composed `é` and `e` followed by
/// U+0301 are the same text); no control characters but tab, newline and carriage return,
/// no format characters (see [`refused_kind`]).
fn description(s: &str) -> Result<String, String> {
    let too_long = || format!("must be at most {MAX_DESCRIPTION} characters");
    if s.chars().count() > MAX_DESCRIPTION * NORMALISATION_SLACK {
        return Err(too_long());
    }
    if let Some(m) = refused_chars(s, true) {
        return Err(m);
    }
    let d: String = s.nfc().collect();
    let n = d.chars().count();
    if n > MAX_DESCRIPTION {
        return Err(if n == s.chars().count() {
            too_long()
        } else {
            format!("{} (has {n} once normalised to NFC)", too_long())
        });
    }
    Ok(d)
}

const MAX_LABEL: usize = 63;

/// A label as it is stored and compared: NFKC, then lower case (Unicode's full mapping),
/// so `Prod`, `prod` and fullwidth `ｐｒｏｄ` are one label `prod`. Lower-casing can undo
/// NFKC (rarely), so the result is normalised again: the function is idempotent.
pub fn normalise_label(s: &str) -> String {
    s.nfkc().collect::<String>().to_lowercase().nfkc().collect()
}

/// 1 to 63 printable characters once normalised ([`normalise_label`]): no control
/// characters, no format characters (see [`refused_kind`]). Gives the normalised label.
pub fn label(s: &str) -> Result<String, String> {
    let too_long = || format!("must be 1 to {MAX_LABEL} characters");
    let given = s.chars().count();
    if given == 0 || given > MAX_LABEL * NORMALISATION_SLACK {
        return Err(too_long());
    }
    if let Some(m) = refused_chars(s, false) {
        return Err(m);
    }
    let l = normalise_label(s);
    let n = l.chars().count();
    if n > MAX_LABEL {
        return Err(if n == given {
            too_long()
        } else {
            format!(
                "{} (has {n} once normalised to NFKC and lower case)",
                too_long()
            )
        });
    }
    Ok(l)
}

pub fn account_id(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
        Ok(s.to_owned())
    } else {
        Err("must be exactly 12 digits (e.g. 123456789012)".into())
    }
}

/// `AKIA` and 16 characters of base32 (`A-Z`, `2-7`). The digits 0, 1, 8 and 9 never occur
/// in access key IDs, so each one is a typo (most often of O, I or L, B): the message names
/// every such character with its position in the key (1-based) and the likely letter.
pub fn access_key_id(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.starts_with("ASIA") {
        return Err(
            "is a temporary (ASIA...) key: it expires and needs a session token; \
                    create a long-term access key (AKIA...) for the IAM user"
                .into(),
        );
    }
    let Some(rest) = s.strip_prefix("AKIA") else {
        if s.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("AKIA")) {
            return Err("must be upper case, as IAM shows it (e.g. AKIAIOSFODNN7EXAMPLE)".into());
        }
        return Err(
            "must be a long-term access key ID: 'AKIA' followed by 16 of A-Z and 2-7 \
             (e.g. AKIAIOSFODNN7EXAMPLE)"
                .into(),
        );
    };
    let n = rest.chars().count();
    if n != 16 {
        return Err(format!(
            "has {n} characters after 'AKIA' instead of 16 (an access key ID is 20 characters): \
             copy it again, whole"
        ));
    }
    let typos: Vec<String> = rest
        .chars()
        .enumerate()
        .filter(|(_, c)| !matches!(c, 'A'..='Z' | '2'..='7'))
        .map(|(i, c)| {
            let at = format!("{c:?} at position {}", i + 5);
            match c {
                '0' => format!("{at} (did you mean the letter 'O'?)"),
                '1' => format!("{at} (did you mean the letter 'I' or 'L'?)"),
                '8' => format!("{at} (did you mean the letter 'B'?)"),
                '9' => format!("{at} (never used)"),
                c if c.is_ascii_lowercase() => {
                    format!(
                        "{at} (lower case: did you mean {:?}?)",
                        c.to_ascii_uppercase()
                    )
                }
                _ => at,
            }
        })
        .collect();
    match typos.as_slice() {
        [] => Ok(s.to_owned()),
        [one] => Err(format!(
            "contains {one}: access key IDs use only A-Z and 2-7 after 'AKIA'"
        )),
        [many @ .., last] => Err(format!(
            "contains {} and {last}: access key IDs use only A-Z and 2-7 after 'AKIA'",
            many.join(", ")
        )),
    }
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
    if s.starts_with("arn:") {
        return Err("is an ARN: enter the role name (the part after ':role/', \
                    e.g. InfraKitchenRole)"
            .into());
    }
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

const PARTITIONS: [&str; 7] = [
    "aws",
    "aws-cn",
    "aws-us-gov",
    "aws-iso",
    "aws-iso-b",
    "aws-iso-e",
    "aws-iso-f",
];

/// The role name field of the form: a role name, or the role's ARN pasted in its place
/// (`arn:<partition>:iam::<account>:role/<path/name>`), which gives the name (with its
/// path) when the ARN's account is `account` and its partition is `region`'s (each
/// checked when known). Other ARNs (a user, an assumed-role session) are refused with
/// what to enter instead.
pub fn role_name_in(
    s: &str,
    account: Option<&str>,
    region: Option<&str>,
) -> Result<String, String> {
    let t = s.trim();
    if !t.starts_with("arn:") {
        return role_name(t);
    }
    let parts: Vec<&str> = t.splitn(6, ':').collect();
    let [_, partition, service, _, arn_account, resource] = parts.as_slice() else {
        return Err("is not a valid ARN: enter the role name (e.g. InfraKitchenRole)".into());
    };
    let (kind, rest) = resource.split_once('/').unwrap_or((resource, ""));
    match (*service, kind) {
        ("iam", "role") => {}
        ("iam", "user") => {
            return Err(
                "is the ARN of an IAM user: enter the name of the role to assume \
                        (e.g. InfraKitchenRole), not the ARN of the user"
                    .into(),
            )
        }
        ("sts", "assumed-role") => {
            let role = rest.split('/').next().unwrap_or("");
            return Err(format!(
                "is the ARN of an assumed-role session: enter the role name ({role}), not the \
                 ARN of a session"
            ));
        }
        _ => {
            return Err("is an ARN, but not of an IAM role: enter the role name \
                        (e.g. InfraKitchenRole) or the role's ARN \
                        (arn:aws:iam::123456789012:role/InfraKitchenRole)"
                .into())
        }
    }
    if !PARTITIONS.contains(partition) || account_id(arn_account).is_err() {
        return Err(
            "is not a valid role ARN (arn:aws:iam::123456789012:role/InfraKitchenRole): \
                    enter the role name (e.g. InfraKitchenRole)"
                .into(),
        );
    }
    if let Some(a) = account.filter(|a| a != arn_account) {
        return Err(format!(
            "is the ARN of a role in account {arn_account}, but aws_account_id is {a}: the role \
             must be in the integration's account; enter a role of account {a}, or correct \
             aws_account_id"
        ));
    }
    if let Some(r) = region {
        let p = crate::domain::Partition::of_region(r).as_str();
        if p != *partition {
            return Err(format!(
                "is a role ARN of partition {partition}, but aws_default_region {r} is in \
                 partition {p}: choose a region of {partition}"
            ));
        }
    }
    role_name(rest)
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
    let ok = *arn == "arn"
        && PARTITIONS.contains(partition)
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

pub fn arn_partition(arn: &str) -> crate::domain::Partition {
    use crate::domain::Partition::*;
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
mod tests;
