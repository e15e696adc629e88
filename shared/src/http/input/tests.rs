//! Unit tests of the form: whole bodies, and each field's rule as the form applies it.

use super::*;
use crate::domain::values::text::{normalise_label, refused_kind};

// The single-field rules live in the domain types; the form reports their messages.
fn role_name(s: &str) -> Result<String, String> {
    RoleName::parse(s).map(String::from)
}
fn external_id(s: &str) -> Result<String, String> {
    ExternalId::parse(s).map(String::from)
}
fn access_key_id(s: &str) -> Result<String, String> {
    AccessKeyId::parse(s).map(String::from)
}
fn description(s: &str) -> Result<String, String> {
    Description::parse(s).map(String::from)
}
fn label(s: &str) -> Result<String, String> {
    Label::parse(s).map(String::from)
}
fn role_name_in(s: &str, account: Option<&str>, region: Option<&str>) -> Result<String, String> {
    let account = account.map(|a| AccountId::parse(a).unwrap());
    let region = region.map(|r| Region::parse(r).unwrap());
    RoleName::parse_in(s, account.as_ref(), region.as_ref()).map(String::from)
}
/// A PATCH against a record of `account`.
/// The keys of an access-key form (a test that asks for them means one).
fn keys(n: &NewIntegration) -> (&AccessKeyId, &SecretAccessKey) {
    match &n.credentials {
        NewCredentials::AccessKeys { key_id, secret } => (key_id, secret),
        NewCredentials::RoleDelegation => panic!("a role-delegation form has no keys"),
    }
}

fn parse_patch(body: &[u8], account: &str) -> Result<IntegrationPatch, Error> {
    super::parse_patch(
        body,
        &AccountId::parse(account).unwrap(),
        AuthKind::AccessKeys,
    )
}
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
    assert_eq!(keys(&n).1.expose_secret(), SECRET);
}

#[test]
fn trims_pasted_keys() {
    let mut v = good();
    v["aws_access_key_id"] = json!("  AKIAIOSFODNN7EXAMPLE\n");
    v["aws_secret_access_key"] = json!(format!(" {SECRET}\t"));
    let n = parse_new(v.to_string().as_bytes()).unwrap();
    assert_eq!(*keys(&n).0, "AKIAIOSFODNN7EXAMPLE");
    assert_eq!(keys(&n).1.expose_secret(), SECRET);
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
    // Duplicates may exceed 50 entries; a huge array is one error, not one per entry.
    v["labels"] = json!(vec!["prod"; 100]);
    assert_eq!(
        parse_new(v.to_string().as_bytes()).unwrap().labels,
        ["prod"]
    );
    v["labels"] = json!(vec![1; 100_000]);
    let e = errors(&v);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].field, "labels");
    assert!(e[0].message.contains("100000 entries"), "{}", e[0].message);
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
fn body_must_be_an_object() {
    for b in ["", "[]", "{", "\"x\""] {
        match parse_new(b.as_bytes()) {
            Err(Error::Validation(e)) => assert_eq!(e[0].field, "body"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_duplicated_member_is_refused_before_any_field_rule() {
    // The last copy would be a valid form; the body is refused anyway, naming only the
    // duplicate (its copies are not judged, and an unknown field is not reported).
    let body = good()
        .to_string()
        .replacen('{', r#"{"name":"bad name!","favourite_colour":1,"#, 1);
    let fields = |r: Result<_, Error>| match r {
        Err(Error::Validation(e)) => e.into_iter().map(|e| e.field).collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    assert_eq!(fields(parse_new(body.as_bytes()).map(|_| ())), ["name"]);
    let patch = r#"{"labels":["a"],"description":"x","labels":["b"]}"#;
    assert_eq!(
        fields(parse_patch(patch.as_bytes(), "123456789012").map(|_| ())),
        ["labels"]
    );
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
    assert_eq!(patch.labels, Some(vec![Label::parse("a").unwrap()]));
    match p(json!({"name": null})) {
        Err(Error::Validation(e)) => assert_eq!(e[0].field, "name"),
        o => panic!("{o:?}"),
    }
}

#[test]
fn key_id_typos_are_named_with_the_likely_letter() {
    for ok in [
        "AKIAIOSFODNN7EXAMPLE",
        "AKIAZZZZZZZZZZZZZZZZ",
        "AKIA234567ABCDEFGHIJ",
    ] {
        assert_eq!(access_key_id(ok).as_deref(), Ok(ok));
    }
    let e = |k: &str| access_key_id(k).unwrap_err();
    assert_eq!(
        e("AKIAIOSF0DNN7EXAMPLE"),
        "contains '0' at position 9 (did you mean the letter 'O'?): access key IDs use \
         only A-Z and 2-7 after 'AKIA'"
    );
    assert!(e("AKIA1OSFODNN7EXAMPLE")
        .contains("'1' at position 5 (did you mean the letter 'I' or 'L'?)"));
    assert!(e("AKIAIOSFODNN7EXAMP8E").contains("'8' at position 19 (did you mean the letter 'B'?)"));
    assert!(e("AKIAIOSFODNN9EXAMPLE").contains("'9' at position 13 (never used)"));
    let two = e("AKIA0OSFODNN7EXAMPL1");
    assert!(
        two.starts_with(
            "contains '0' at position 5 (did you mean the letter 'O'?) and '1' at position 20"
        ),
        "{two}"
    );
    assert!(e("AKIAiOSFODNN7EXAMPLE").contains("lower case: did you mean 'I'?"));
    assert!(e("akiaiosfodnn7example").contains("upper case"));
    assert!(e("AKIAIOSFODNN7EXAMPL").contains("has 15 characters after 'AKIA'"));
    assert!(e("ASIAIOSFODNN7EXAMPLE").contains("temporary"));
    assert!(e("XKIAIOSFODNN7EXAMPLE").contains("'AKIA' followed by 16 of A-Z and 2-7"));
}

#[test]
fn a_pasted_role_arn_gives_its_name() {
    let acct = Some("123456789012");
    let us = Some("us-east-1");
    assert_eq!(
        role_name_in("arn:aws:iam::123456789012:role/InfraKitchenRole", acct, us).unwrap(),
        "InfraKitchenRole"
    );
    assert_eq!(
        role_name_in(
            " arn:aws:iam::123456789012:role/team/ik/InfraKitchenRole ",
            acct,
            us
        )
        .unwrap(),
        "team/ik/InfraKitchenRole"
    );
    assert_eq!(
        role_name_in(
            "arn:aws-cn:iam::123456789012:role/R",
            acct,
            Some("cn-north-1")
        )
        .unwrap(),
        "R"
    );
    assert_eq!(
        role_name_in("arn:aws-us-gov:iam::123456789012:role/R", acct, None).unwrap(),
        "R"
    );
    // Names still work, and are not checked against anything else.
    assert_eq!(role_name_in("team/R", acct, us).unwrap(), "team/R");

    let e = |s: &str| role_name_in(s, acct, us).unwrap_err();
    let other = e("arn:aws:iam::210987654321:role/InfraKitchenRole");
    assert!(
        other.contains("account 210987654321") && other.contains("aws_account_id is 123456789012"),
        "{other}"
    );
    assert!(
        e("arn:aws:iam::123456789012:user/InfraKitchenUser").contains("not the ARN of the user")
    );
    let session = e("arn:aws:sts::123456789012:assumed-role/InfraKitchenRole/infrakitchen-x");
    assert!(
        session.contains("enter the role name (InfraKitchenRole), not the ARN of a session"),
        "{session}"
    );
    assert!(e("arn:aws-cn:iam::123456789012:role/R").contains("partition aws-cn"));
    assert!(e("arn:aws:s3:::infrakitchen-123456789012-bucket").contains("not of an IAM role"));
    assert!(e("arn:aws:iam::12:role/R").contains("not a valid role ARN"));
    assert!(e("arn:aws:iam::123456789012:role/bad name").contains("role name"));
    assert!(role_name("arn:aws:iam::123456789012:role/R")
        .unwrap_err()
        .contains("enter the role name"));
}

#[test]
fn role_arns_in_forms_and_patches() {
    let mut v = good();
    v["aws_assumed_role_name"] = json!("arn:aws:iam::123456789012:role/team/InfraKitchenRole");
    let n = parse_new(v.to_string().as_bytes()).unwrap();
    assert_eq!(
        n.aws_assumed_role_name.as_ref().map(RoleName::as_str),
        Some("team/InfraKitchenRole")
    );

    v["aws_assumed_role_name"] = json!("arn:aws:iam::999999999999:role/R");
    let e = errors(&v);
    assert_eq!(e[0].field, "aws_assumed_role_name");
    assert!(e[0].message.contains("account 999999999999"));

    // The partition follows the form's region (default us-east-1).
    v["aws_assumed_role_name"] = json!("arn:aws-cn:iam::123456789012:role/R");
    assert_eq!(errors(&v)[0].field, "aws_assumed_role_name");
    v["aws_default_region"] = json!("cn-northwest-1");
    assert!(parse_new(v.to_string().as_bytes()).is_ok());

    let p = |v: Value| parse_patch(v.to_string().as_bytes(), "123456789012");
    let patch = p(json!({"aws_assumed_role_name": "arn:aws:iam::123456789012:role/R"})).unwrap();
    assert_eq!(
        patch.aws_assumed_role_name,
        Some(Some(RoleName::parse("R").unwrap()))
    );
    match p(json!({"aws_assumed_role_name": "arn:aws:iam::123456789013:role/R"})) {
        Err(Error::Validation(e)) => {
            assert_eq!(e[0].field, "aws_assumed_role_name");
            assert!(e[0].message.contains("aws_account_id is 123456789012"));
        }
        o => panic!("{o:?}"),
    }
    // Partition against a region set by the same PATCH; unknown (stored) otherwise.
    assert!(p(
        json!({"aws_assumed_role_name": "arn:aws-cn:iam::123456789012:role/R",
                      "aws_default_region": "us-west-2"})
    )
    .is_err());
    assert!(p(json!({"aws_assumed_role_name": "arn:aws-cn:iam::123456789012:role/R"})).is_ok());
}

#[test]
fn descriptions_refuse_invisible_and_bidi_characters() {
    let bidi = description("prod\u{202E}gnp.exe").unwrap_err();
    assert_eq!(
        bidi,
        "contains U+202E (a bidirectional control character, which can make text display \
         differently from what it is) at position 5: remove it"
    );
    for (text, code, kind) in [
        ("a\u{200B}b", "U+200B", "zero-width space"),
        ("\u{FEFF}Production", "U+FEFF", "byte order mark"),
        ("infra\u{00AD}kitchen", "U+00AD", "soft hyphen"),
        ("a\u{200D}b", "U+200D", "zero-width joiner"),
        ("a\u{2066}b\u{2069}", "U+2066", "bidirectional control"),
        ("a\u{200F}b", "U+200F", "bidirectional control"),
        ("a\u{2060}b", "U+2060", "word joiner"),
        ("flag\u{E0067}", "U+E0067", "tag character"),
        ("a\u{180E}b", "U+180E", "format character"),
        ("bell\u{7}", "U+0007", "control character"),
        ("c1\u{85}", "U+0085", "control character"),
    ] {
        let m = description(text).unwrap_err();
        assert!(
            m.starts_with(&format!("contains {code} (")) && m.contains(kind),
            "{text:?}: {m}"
        );
    }
    let many = description("\u{200B}a\u{200B}b\u{202E}").unwrap_err();
    assert!(
        many.contains("at position 1 and 2 more such characters: remove them"),
        "{many}"
    );
    // Line breaks and tabs are text in a description.
    assert_eq!(
        description("line 1\r\nline 2\tend").unwrap(),
        "line 1\r\nline 2\tend"
    );
}

#[test]
fn descriptions_are_nfc() {
    assert_eq!(description("cafe\u{301}").unwrap(), "caf\u{E9}");
    assert_eq!(description("caf\u{E9}").unwrap(), "caf\u{E9}");
    // Compatibility characters are kept (only labels are folded).
    assert_eq!(description("\u{FF50}rod").unwrap(), "\u{FF50}rod");
    // The limit applies to the normalised text.
    let composed = "e\u{301}".repeat(1024);
    assert_eq!(description(&composed).unwrap().chars().count(), 1024);
    assert!(description(&"\u{E9}".repeat(1025)).is_err());
    let mut v = good();
    v["description"] = json!("Cafe\u{301} account");
    let n = parse_new(v.to_string().as_bytes()).unwrap();
    assert_eq!(
        n.description.as_ref().map(Description::as_str),
        Some("Caf\u{E9} account")
    );
    v["description"] = json!("prod\u{202E}gnp.exe");
    let e = errors(&v);
    assert_eq!(e[0].field, "description");
    assert!(e[0].message.contains("U+202E"));
    let patch = parse_patch(
        json!({"description": "e\u{301}"}).to_string().as_bytes(),
        "123456789012",
    )
    .unwrap();
    assert_eq!(
        patch.description,
        Some(Some(Description::parse("\u{E9}").unwrap()))
    );
}

#[test]
fn labels_are_deduplicated_after_folding() {
    let mut v = good();
    v["labels"] = json!([
        "Prod",
        "prod",
        "\u{FF50}\u{FF52}\u{FF4F}\u{FF44}",
        "Billing",
        "BILLING"
    ]);
    assert_eq!(
        parse_new(v.to_string().as_bytes()).unwrap().labels,
        ["prod", "billing"]
    );
    // 51 entries that fold into 50 distinct labels are fine.
    let mut many: Vec<String> = (0..50).map(|i| format!("l{i}")).collect();
    many.push("L0".into());
    v["labels"] = json!(many);
    assert_eq!(
        parse_new(v.to_string().as_bytes()).unwrap().labels.len(),
        50
    );
    v["labels"] = json!(["ok", "pro\u{200B}d"]);
    let e = errors(&v);
    assert_eq!(e[0].field, "labels[1]");
    assert!(
        e[0].message.contains("U+200B (a zero-width space"),
        "{}",
        e[0].message
    );
    let patch = parse_patch(
        json!({"labels": ["Prod", "PROD"]}).to_string().as_bytes(),
        "123456789012",
    )
    .unwrap();
    assert_eq!(patch.labels, Some(vec![Label::parse("prod").unwrap()]));
}

/// The characters of the Basic Multilingual Plane for which `pick` holds, as the body
/// of a regular expression character class (`\uXXXX-\uXXXX` ranges, which ECMA-262
/// and Python read alike); surrogates are not characters and are left out.
fn bmp_class(pick: impl Fn(char) -> bool) -> String {
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    for c in (0..=0xFFFFu32).filter_map(char::from_u32) {
        if !pick(c) {
            continue;
        }
        let c = c as u32;
        match ranges.last_mut() {
            Some((_, end)) if *end + 1 == c => *end = c,
            _ => ranges.push((c, c)),
        }
    }
    ranges
        .iter()
        .map(|&(a, b)| match b - a {
            0 => format!("\\u{a:04X}"),
            1 => format!("\\u{a:04X}\\u{b:04X}"),
            _ => format!("\\u{a:04X}-\\u{b:04X}"),
        })
        .collect()
}

/// The `pattern` lines of a schema in openapi.yaml's `components/schemas`.
fn spec_patterns(spec: &str, schema: &str) -> Vec<String> {
    let mut lines = spec
        .lines()
        .skip_while(|l| *l != "  schemas:")
        .skip_while(|l| *l != format!("    {schema}:"));
    assert!(
        lines.next().is_some(),
        "schema {schema} not in openapi.yaml"
    );
    lines
        .take_while(|l| l.starts_with("      ") || l.is_empty())
        .filter_map(|l| l.trim().strip_prefix("pattern: "))
        .map(str::to_owned)
        .collect()
}

/// openapi.yaml's patterns refuse what the server refuses (in the Basic Multilingual
/// Plane; a newer Unicode in the crates shows here) and allow around the trimmed
/// fields exactly the whitespace that `str::trim` removes (Unicode White_Space: not
/// `\s`, which is wider in ECMA-262 and in Python).
#[test]
fn the_spec_patterns_match_the_rules() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi.yaml");
    let spec = std::fs::read_to_string(path).unwrap();
    for (schema, line_breaks) in [("Label", false), ("Description", true)] {
        let class = bmp_class(|c| refused_kind(c, line_breaks).is_some());
        assert_eq!(
            spec_patterns(&spec, schema),
            [format!("'^[^{class}]*$'")],
            "{schema}"
        );
    }
    let ws = format!("[{}]*", bmp_class(char::is_whitespace));
    for schema in [
        "AccountIdInput",
        "AccessKeyIdInput",
        "SecretAccessKeyInput",
        "RoleNameInput",
    ] {
        let p = spec_patterns(&spec, schema);
        assert_eq!(p.len(), 1, "{schema}");
        assert!(
            p[0].starts_with(&format!("'^{ws}")) && p[0].ends_with(&format!("{ws}$'")),
            "{schema}: surrounding whitespace should be {ws}"
        );
        assert!(!p[0].contains("\\s"), "{schema}");
    }
    // Not trimmed: no whitespace at all.
    for schema in ["PrincipalArn", "ExternalId", "Region", "Name", "BucketName"] {
        let p = spec_patterns(&spec, schema);
        assert!(
            p.iter()
                .all(|p| !p.contains("\\s") && !p.contains("\\u0020")),
            "{schema}"
        );
    }
}

#[test]
fn session_duration_accepts_whole_floats() {
    let mut v = good();
    for (given, want) in [
        (json!(900.0), 900),
        (json!(43200.0), 43200),
        (json!(3600), 3600),
    ] {
        v["aws_session_duration"] = given;
        assert_eq!(
            parse_new(v.to_string().as_bytes())
                .unwrap()
                .aws_session_duration,
            want
        );
    }
    // Exponent notation is a JSON number like any other.
    let body = v.to_string().replace(":3600", ":9e2");
    assert!(body.contains(":9e2"), "{body}");
    assert_eq!(
        parse_new(body.as_bytes()).unwrap().aws_session_duration,
        900
    );

    let msg = |d: Value| {
        let mut v = good();
        v["aws_session_duration"] = d;
        let e = errors(&v);
        assert_eq!(e[0].field, "aws_session_duration");
        e[0].message.clone()
    };
    assert_eq!(
        msg(json!(900.5)),
        "must be a whole number of seconds from 900 to 43200: 900.5 has a fractional part"
    );
    for out in [
        json!(899.0),
        json!(43201),
        json!(-900.0),
        json!(1e300),
        json!(-1),
        json!(u64::MAX),
    ] {
        assert_eq!(
            msg(out.clone()),
            "must be a whole number of seconds from 900 to 43200",
            "{out}"
        );
    }
    assert_eq!(
        msg(json!("900")),
        "must be a number (seconds, 900 to 43200)"
    );
    let patch = parse_patch(
        json!({"aws_session_duration": 1800.0})
            .to_string()
            .as_bytes(),
        "123456789012",
    )
    .unwrap();
    assert_eq!(
        patch.aws_session_duration.map(SessionDuration::as_secs),
        Some(1800)
    );
}

proptest::proptest! {
    #[test]
    fn base32_key_ids_pass_and_typos_are_named(body in "[A-Z2-7]{16}", at in 0usize..16, typo in "[0189]") {
        let key = format!("AKIA{body}");
        proptest::prop_assert!(access_key_id(&key).is_ok());
        let mut chars: Vec<char> = body.chars().collect();
        chars[at] = typo.chars().next().unwrap();
        let bad: String = format!("AKIA{}", chars.into_iter().collect::<String>());
        let msg = access_key_id(&bad).unwrap_err();
        let expected = format!("'{typo}' at position {}", at + 5);
        proptest::prop_assert!(msg.contains(&expected), "{}", msg);
    }

    #[test]
    fn text_rules_never_panic_and_labels_are_fixed_points(s in "\\PC{0,80}|.{0,80}|[\u{0}-\u{2FF}\u{200B}-\u{206F}\u{FB00}-\u{FFFF}]{0,80}") {
        let _ = description(&s);
        if let Ok(l) = label(&s) {
            proptest::prop_assert_eq!(normalise_label(&l), l.clone());
            proptest::prop_assert_eq!(label(&l), Ok(l.clone()));
            proptest::prop_assert_eq!(l.to_lowercase(), l.clone());
        }
        if let Ok(d) = description(&s) {
            proptest::prop_assert_eq!(description(&d), Ok(d.clone()));
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

/// Any JSON value, of bounded depth and size: what a caller may send.
fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        "\\PC{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map("\\PC{0,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A form whose every field may have any value (or be missing).
fn any_form() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    proptest::collection::vec(
        (proptest::sample::select(super::FIELDS.to_vec()), any_json()),
        0..12,
    )
    .prop_map(|fields| Value::Object(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(400))]

    /// Arbitrary bytes and arbitrary values in every field never panic: the answer is a
    /// form, or field errors that each name a field.
    #[test]
    fn arbitrary_input_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200), form in any_form()) {
        let _ = parse_new(&bytes);
        let _ = parse_patch(&bytes, "123456789012");
        for body in [form.to_string(), json!({"labels": form.clone()}).to_string()] {
            for result in [parse_new(body.as_bytes()).err(), parse_patch(body.as_bytes(), "123456789012").err()] {
                match result {
                    None => {}
                    Some(Error::Validation(errors)) => {
                        proptest::prop_assert!(!errors.is_empty());
                        proptest::prop_assert!(errors.iter().all(|e| !e.field.is_empty() && !e.message.is_empty()));
                    }
                    Some(other) => proptest::prop_assert!(false, "not a validation error: {other:?}"),
                }
            }
        }
    }

}

/// Forms built from every field's valid shapes (odd case, fullwidth and combining
/// characters, optional fields present or absent), so nearly every case parses.
fn valid_form() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let regions = [
        "us-east-1",
        "eu-central-1",
        "ap-southeast-5",
        "us-gov-west-1",
        "cn-north-1",
    ];
    let role = proptest::option::of((
        "[A-Za-z0-9+=,.@_-]{1,64}",
        proptest::option::of("[A-Za-z0-9+=,.@:/-]{2,40}"),
    ));
    (
        (
            "[A-Za-z0-9_-]{1,64}",
            proptest::option::of("\\PC{0,120}"),
            proptest::collection::vec(
                "[A-Za-z0-9-]{1,12}|[ａ-ｚＡ-Ｚ]{1,6}|[a-z]{1,6}\u{0301}",
                0..5,
            ),
        ),
        ("[0-9]{12}", "AKIA[A-Z2-7]{16}", "[A-Za-z0-9/+]{40}"),
        (
            role,
            900u64..=3600,
            proptest::sample::select(regions.to_vec()),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (name, description, labels),
                (account, key, secret),
                (role, duration, region, bucket),
            )| {
                let mut form = json!({
                    "name": name, "labels": labels, "aws_account_id": account,
                    "aws_access_key_id": key, "aws_secret_access_key": secret,
                    "aws_session_duration": duration, "aws_default_region": region,
                    "create_state_bucket": bucket,
                });
                if let Some(d) = description {
                    form["description"] = json!(d);
                }
                if let Some((r, external)) = role {
                    form["aws_assumed_role_name"] = json!(r);
                    if let Some(e) = external {
                        form["aws_external_id"] = json!(e);
                    }
                }
                form
            },
        )
}

/// A form that parses reads back the same from its own fields: parsing is stable. Run by
/// hand (not `proptest!`) so the test can count that its cases really reach the check.
#[test]
fn a_parsed_form_parses_again_to_itself() {
    use proptest::test_runner::{Config, TestRunner};
    let cases = 300;
    let parsed = std::cell::Cell::new(0u32);
    let mut runner = TestRunner::new(Config::with_cases(cases));
    runner
        .run(&valid_form(), |form| {
            let Ok(n) = parse_new(form.to_string().as_bytes()) else {
                return Ok(());
            };
            parsed.set(parsed.get() + 1);
            let again = json!({
                "name": n.name.as_str(),
                "description": n.description.as_ref().map(Description::as_str),
                "labels": n.labels.iter().map(Label::as_str).collect::<Vec<_>>(),
                "aws_account_id": n.aws_account_id.as_str(),
                "aws_access_key_id": keys(&n).0.as_str(),
                "aws_secret_access_key": keys(&n).1.expose_secret(),
                "aws_assumed_role_name": n.aws_assumed_role_name.as_ref().map(RoleName::as_str),
                "aws_external_id": n.aws_external_id.as_ref().map(ExternalId::as_str),
                "aws_session_duration": n.aws_session_duration.as_secs(),
                "aws_default_region": n.aws_default_region.as_str(),
                "create_state_bucket": n.create_state_bucket,
            });
            let m = parse_new(again.to_string().as_bytes())
                .map_err(|e| proptest::test_runner::TestCaseError::fail(format!("{e:?}")))?;
            proptest::prop_assert_eq!(m.name, n.name);
            proptest::prop_assert_eq!(m.labels, n.labels);
            proptest::prop_assert_eq!(m.description, n.description);
            proptest::prop_assert_eq!(m.aws_account_id, n.aws_account_id);
            proptest::prop_assert_eq!(m.aws_assumed_role_name, n.aws_assumed_role_name);
            proptest::prop_assert_eq!(m.aws_external_id, n.aws_external_id);
            proptest::prop_assert_eq!(m.aws_session_duration, n.aws_session_duration);
            proptest::prop_assert_eq!(m.aws_default_region, n.aws_default_region);
            proptest::prop_assert_eq!(m.create_state_bucket, n.create_state_bucket);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    // Nearly every generated form is valid; a change of rules that made them fail
    // would otherwise turn this test into one that checks nothing.
    assert!(
        parsed.get() * 10 >= cases * 9,
        "only {} of {cases} generated forms parsed",
        parsed.get()
    );
}
