//! Reading the integration form from a JSON body: every field is parsed into its domain
//! type (the rules live in the types) and every violation is reported at once, named by
//! its JSON field, so a person can fix the whole form in one go.

use super::json::JsonObject;
use crate::domain::{
    check_external_id_needs_role, AccessKeyId, AccountId, AuthKind, Description, ExternalId,
    GroupName, IntegrationName, IntegrationPatch, Label, NewCredentials, NewIntegration, Region,
    RoleName, SecretAccessKey, SessionDuration,
};
use crate::error::{Error, FieldError};
use serde_json::{Map, Value};

pub const FIELDS: &[&str] = &[
    "name",
    "auth",
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
    "shared_with",
];

/// Groups one integration may be shared with.
pub const MAX_SHARED_WITH: usize = 20;

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

    fn labels(&mut self) -> Option<Option<Vec<Label>>> {
        self.list("labels", "labels", 50, Label::parse)
    }

    /// Groups the integration is shared with (`[]` or `null`: none).
    fn shared_with(&mut self) -> Option<Option<Vec<GroupName>>> {
        self.list("shared_with", "groups", MAX_SHARED_WITH, GroupName::parse)
    }

    /// An array of strings, each parsed, duplicates dropped, at most `max` distinct.
    fn list<T: PartialEq>(
        &mut self,
        field: &str,
        noun: &str,
        max: usize,
        parse: fn(&str) -> Result<T, String>,
    ) -> Option<Option<Vec<T>>> {
        let Some(v) = self.raw(field) else {
            return Some(None);
        };
        let Value::Array(items) = v else {
            self.fail(field, "must be an array of strings");
            return None;
        };
        // Refused before looking at the entries: a huge array would otherwise cost a
        // check (and possibly an error) per entry. Duplicates are allowed up to this.
        if items.len() > 2 * max {
            self.fail(
                field,
                format!(
                    "at most {max} {noun} are allowed (got {} entries)",
                    items.len()
                ),
            );
            return None;
        }
        let mut out: Vec<T> = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let entry = format!("{field}[{i}]");
            match item {
                Value::String(s) => match parse(s) {
                    Ok(l) => {
                        if !out.contains(&l) {
                            out.push(l);
                        }
                    }
                    Err(m) => {
                        self.fail(&entry, m);
                        ok = false;
                    }
                },
                _ => {
                    self.fail(&entry, "must be a string");
                    ok = false;
                }
            }
        }
        if out.len() > max {
            self.fail(field, format!("at most {max} {noun} are allowed"));
            ok = false;
        }
        ok.then_some(Some(out))
    }

    fn session_duration(&mut self) -> Option<Option<SessionDuration>> {
        match self.raw("aws_session_duration") {
            None => Some(None),
            Some(v) => match SessionDuration::parse_value(v) {
                Ok(s) => Some(Some(s)),
                Err(m) => {
                    self.fail("aws_session_duration", m);
                    None
                }
            },
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

    /// A PATCH's new keys: both fields together, neither null.
    fn key_rotation(&mut self) -> Option<(AccessKeyId, SecretAccessKey)> {
        const KEY_ID: &str = "aws_access_key_id";
        const SECRET: &str = "aws_secret_access_key";
        let key_id = self.check_str(KEY_ID, AccessKeyId::parse);
        let secret = self.check_str(SECRET, SecretAccessKey::parse);
        let both = "is required when rotating keys (send both key fields together)";
        match (self.map.contains_key(KEY_ID), self.map.contains_key(SECRET)) {
            (true, false) => self.fail(SECRET, both),
            (false, true) => self.fail(KEY_ID, both),
            _ => {}
        }
        match (key_id, secret) {
            (Some(Some(k)), Some(Some(s))) => return Some((k, s)),
            (Some(None), _) if self.map.contains_key(KEY_ID) => {
                self.fail(KEY_ID, "must not be null")
            }
            (_, Some(None)) if self.map.contains_key(SECRET) => {
                self.fail(SECRET, "must not be null")
            }
            _ => {}
        }
        None
    }

    /// `auth`: `None` when invalid (reported), `Some(None)` when absent or null.
    fn auth(&mut self) -> Option<Option<AuthKind>> {
        self.check_str("auth", AuthKind::parse)
    }

    /// Role delegation takes no keys and no External ID: each one given is named.
    fn refuse_for_delegation(&mut self) {
        for f in ["aws_access_key_id", "aws_secret_access_key"] {
            if has(self.map, f) {
                self.fail(
                    f,
                    "is not used with auth role_delegation: the platform assumes your role \
                     with its own principal, so no access key is stored",
                );
            }
        }
        if has(self.map, "aws_external_id") {
            self.fail(
                "aws_external_id",
                "is generated by the platform for auth role_delegation (shown once the \
                 integration is saved): remove it",
            );
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
fn given_region(map: &Map<String, Value>, absent_is_default: bool) -> Option<Region> {
    match map.get("aws_default_region") {
        None => absent_is_default.then(Region::default),
        Some(Value::Null) => Some(Region::default()),
        Some(Value::String(r)) => Region::parse(r).ok(),
        Some(_) => None,
    }
}

/// The create / test-connection form from raw bytes (for tests and the in-memory fakes;
/// routes read `request::json_body` and call `new_form`).
pub fn parse_new(body: &[u8]) -> Result<NewIntegration, Error> {
    new_form(&JsonObject::parse(body)?)
}

/// A PATCH body from raw bytes (for tests and the in-memory fakes; routes call
/// `patch_form`).
pub fn parse_patch(
    body: &[u8],
    current_account: &AccountId,
    current_auth: AuthKind,
) -> Result<IntegrationPatch, Error> {
    patch_form(&JsonObject::parse(body)?, current_account, current_auth)
}

/// The create / test-connection form.
pub fn new_form(body: &JsonObject) -> Result<NewIntegration, Error> {
    let map = body.members();
    let mut c = Checker::new(map);
    let name = c.check_str("name", IntegrationName::parse);
    let name = c.required("name", name, has(map, "name"));
    let description = c.check_str("description", Description::parse);
    let labels = c.labels().map(Option::unwrap_or_default);
    let account = c.check_str("aws_account_id", AccountId::parse);
    let account = c.required("aws_account_id", account, has(map, "aws_account_id"));
    let auth = c.auth();
    let credentials = match auth {
        Some(Some(AuthKind::RoleDelegation)) => {
            c.refuse_for_delegation();
            Some(NewCredentials::RoleDelegation)
        }
        // An invalid `auth` is reported; the keys are still checked as the default's.
        _ => {
            let key_id = c.check_str("aws_access_key_id", AccessKeyId::parse);
            let key_id = c.required("aws_access_key_id", key_id, has(map, "aws_access_key_id"));
            let secret = c.check_str("aws_secret_access_key", SecretAccessKey::parse);
            let secret = c.required(
                "aws_secret_access_key",
                secret,
                has(map, "aws_secret_access_key"),
            );
            match (key_id, secret, auth) {
                (Some(key_id), Some(secret), Some(_)) => {
                    Some(NewCredentials::AccessKeys { key_id, secret })
                }
                _ => None,
            }
        }
    };
    let in_region = given_region(map, true);
    let role = c.check_str("aws_assumed_role_name", |r| {
        RoleName::parse_in(r, account.as_ref(), in_region.as_ref())
    });
    let delegated = matches!(credentials, Some(NewCredentials::RoleDelegation));
    // Refused above for delegation (named once).
    let external = if delegated {
        Some(None)
    } else {
        c.check_str("aws_external_id", ExternalId::parse)
    };
    if delegated && matches!(role, Some(None)) {
        c.fail(
            "aws_assumed_role_name",
            "is required with auth role_delegation (the role the platform assumes)",
        );
    }
    let duration = c.session_duration().map(Option::unwrap_or_default);
    let region = c
        .check_str("aws_default_region", Region::parse)
        .map(Option::unwrap_or_default);
    let bucket = c.bool("create_state_bucket").map(|b| b.unwrap_or(false));
    let shared_with = c.shared_with().map(Option::unwrap_or_default);

    // A role that was given but is invalid is reported already.
    if let (Some(role), Some(external)) = (&role, &external) {
        if let Err(m) = check_external_id_needs_role(role.as_ref(), external.as_ref()) {
            c.fail("aws_external_id", m);
        }
    }

    // Every field was checked above, so every error is reported; any invalid one
    // (`None`) leaves no form.
    let form = (|| {
        Some(NewIntegration {
            name: name?,
            description: description?,
            labels: labels?,
            aws_account_id: account?,
            credentials: credentials?,
            aws_assumed_role_name: role?,
            aws_external_id: external?,
            aws_session_duration: duration?,
            aws_default_region: region?,
            create_state_bucket: bucket?,
            shared_with: shared_with?,
        })
    })();
    match form {
        Some(form) => c.finish(|| form),
        None => Err(Error::Validation(c.errors)),
    }
}

/// A PATCH body: any subset of the fields; `null` clears an optional one.
/// `current_account` lets an unchanged `aws_account_id` through; `current_auth` decides
/// which credential fields fit (the kind after the change: `auth` if sent).
pub fn patch_form(
    body: &JsonObject,
    current_account: &AccountId,
    current_auth: AuthKind,
) -> Result<IntegrationPatch, Error> {
    let map = body.members();
    let mut c = Checker::new(map);
    let mut patch = IntegrationPatch::default();
    match c.auth() {
        Some(Some(a)) => patch.auth = (a != current_auth).then_some(a),
        Some(None) if has(map, "auth") => c.fail("auth", "must not be null"),
        _ => {}
    }
    let kind = patch.auth.unwrap_or(current_auth);

    if let Some(v) = map.get("aws_account_id") {
        if v.as_str().map(str::trim) != Some(current_account.as_str()) {
            c.fail(
                "aws_account_id",
                "is immutable: create a new integration for another account",
            );
        }
    }
    let present = |f: &str| has(map, f);
    match c.check_str("name", IntegrationName::parse) {
        Some(Some(n)) => patch.name = Some(n),
        Some(None) if present("name") => c.fail("name", "must not be null"),
        _ => {}
    }
    if present("description") {
        patch.description = c.check_str("description", Description::parse);
    }
    if present("labels") {
        patch.labels = c.labels().map(Option::unwrap_or_default);
    }
    if kind == AuthKind::RoleDelegation {
        c.refuse_for_delegation();
    } else {
        patch.keys = c.key_rotation();
        if patch.auth.is_some() && patch.keys.is_none() {
            for f in ["aws_access_key_id", "aws_secret_access_key"] {
                if !has(map, f) {
                    c.fail(f, "is required to switch auth to access_keys");
                }
            }
        }
    }
    if present("aws_assumed_role_name") {
        // The stored region is not known here: a pasted ARN's partition is checked against
        // the region only when the same PATCH sets it.
        let in_region = given_region(map, false);
        patch.aws_assumed_role_name = c.check_str("aws_assumed_role_name", |r| {
            RoleName::parse_in(r, Some(current_account), in_region.as_ref())
        });
    }
    if present("aws_external_id") && kind == AuthKind::AccessKeys {
        patch.aws_external_id = c.check_str("aws_external_id", ExternalId::parse);
    }
    if present("aws_session_duration") {
        if let Some(d) = c.session_duration() {
            patch.aws_session_duration = Some(d.unwrap_or_default());
        }
    }
    if present("aws_default_region") {
        if let Some(r) = c.check_str("aws_default_region", Region::parse) {
            patch.aws_default_region = Some(r.unwrap_or_default());
        }
    }
    match c.bool("create_state_bucket") {
        Some(Some(b)) => patch.create_state_bucket = Some(b),
        Some(None) if present("create_state_bucket") => {
            c.fail("create_state_bucket", "must be true or false")
        }
        _ => {}
    }
    if present("shared_with") {
        patch.shared_with = c.shared_with().map(Option::unwrap_or_default);
    }
    // Restating the (immutable) account alone changes nothing either.
    if c.errors.is_empty() && patch.is_empty() {
        c.fail("body", "names no field to change");
    }
    c.finish(|| patch)
}

#[cfg(test)]
mod tests;
