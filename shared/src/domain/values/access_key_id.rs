//! The IAM user's long-term access key ID.

use serde::{Deserialize, Serialize};
use std::fmt;

/// `AKIA` and 16 characters of base32 (`A-Z`, `2-7`); surrounding whitespace is trimmed
/// (keys are pasted). The digits 0, 1, 8 and 9 never occur in access key IDs, so each one
/// is a typo (most often of O, I or L, B): the message names every such character with
/// its position in the key (1-based) and the likely letter.
///
/// Not a secret, but shown masked to callers and in logs: `Debug` masks it; `Display`
/// and `as_str` give the whole ID (it is needed to sign requests).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccessKeyId(String);

impl AccessKeyId {
    pub fn parse(s: &str) -> Result<Self, String> {
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
                return Err(
                    "must be upper case, as IAM shows it (e.g. AKIAIOSFODNN7EXAMPLE)".into(),
                );
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
                "has {n} characters after 'AKIA' instead of 16 (an access key ID is 20 \
                 characters): copy it again, whole"
            ));
        }
        let typos: Vec<String> = rest
            .chars()
            .enumerate()
            .filter(|(_, c)| !matches!(c, 'A'..='Z' | '2'..='7'))
            .map(|(i, c)| typo(i + 5, c))
            .collect();
        match typos.as_slice() {
            [] => Ok(AccessKeyId(s.to_owned())),
            [one] => Err(format!(
                "contains {one}: access key IDs use only A-Z and 2-7 after 'AKIA'"
            )),
            [many @ .., last] => Err(format!(
                "contains {} and {last}: access key IDs use only A-Z and 2-7 after 'AKIA'",
                many.join(", ")
            )),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `AKIAIOSFODNN7EXAMPLE` -> `AKIA************MPLE`, as callers see it.
    pub fn masked(&self) -> String {
        mask_key_id(&self.0)
    }
}

/// A character that is not base32 at `position` (1-based, in the whole key), with the
/// letter it most likely stands for.
fn typo(position: usize, c: char) -> String {
    let at = format!("{c:?} at position {position}");
    match c {
        '0' => format!("{at} (did you mean the letter 'O'?)"),
        '1' => format!("{at} (did you mean the letter 'I' or 'L'?)"),
        '8' => format!("{at} (did you mean the letter 'B'?)"),
        '9' => format!("{at} (never used)"),
        c if c.is_ascii_lowercase() => format!(
            "{at} (lower case: did you mean {:?}?)",
            c.to_ascii_uppercase()
        ),
        _ => at,
    }
}

/// Any key ID (also a role's temporary `ASIA...` one, which is no [`AccessKeyId`]) with
/// all but its first and last four characters masked; eight or fewer are all masked.
pub fn mask_key_id(key_id: &str) -> String {
    let chars: Vec<char> = key_id.chars().collect();
    let n = chars.len();
    if n <= 8 {
        return "*".repeat(n);
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[n - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(n - 8))
}

string_value!(AccessKeyId.0, no_debug);

impl fmt::Debug for AccessKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AccessKeyId").field(&self.masked()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(k: &str) -> String {
        AccessKeyId::parse(k).unwrap_err()
    }

    #[test]
    fn key_id_typos_are_named_with_the_likely_letter() {
        for ok in [
            "AKIAIOSFODNN7EXAMPLE",
            "AKIAZZZZZZZZZZZZZZZZ",
            "AKIA234567ABCDEFGHIJ",
        ] {
            assert_eq!(AccessKeyId::parse(ok).map(String::from).as_deref(), Ok(ok));
        }
        assert_eq!(
            e("AKIAIOSF0DNN7EXAMPLE"),
            "contains '0' at position 9 (did you mean the letter 'O'?): access key IDs use \
             only A-Z and 2-7 after 'AKIA'"
        );
        assert!(e("AKIA1OSFODNN7EXAMPLE")
            .contains("'1' at position 5 (did you mean the letter 'I' or 'L'?)"));
        assert!(
            e("AKIAIOSFODNN7EXAMP8E").contains("'8' at position 19 (did you mean the letter 'B'?)")
        );
        assert!(e("AKIAIOSFODNN9EXAMPLE").contains("'9' at position 13 (never used)"));
        let two = e("AKIA0OSFODNN7EXAMPL1");
        assert!(
            two.starts_with(
                "contains '0' at position 5 (did you mean the letter 'O'?) and '1' at position 20"
            ),
            "{two}"
        );
        assert_eq!(
            e("AKIA0OSFODNN7EXAM-L1"),
            "contains '0' at position 5 (did you mean the letter 'O'?), '-' at position 18 \
             and '1' at position 20 (did you mean the letter 'I' or 'L'?): access key IDs \
             use only A-Z and 2-7 after 'AKIA'"
        );
        assert!(e("AKIAiOSFODNN7EXAMPLE").contains("lower case: did you mean 'I'?"));
        assert_eq!(
            e("akiaiosfodnn7example"),
            "must be upper case, as IAM shows it (e.g. AKIAIOSFODNN7EXAMPLE)"
        );
        assert_eq!(
            e("AKIAIOSFODNN7EXAMPL"),
            "has 15 characters after 'AKIA' instead of 16 (an access key ID is 20 \
             characters): copy it again, whole"
        );
        assert_eq!(
            e("ASIAIOSFODNN7EXAMPLE"),
            "is a temporary (ASIA...) key: it expires and needs a session token; \
                        create a long-term access key (AKIA...) for the IAM user"
        );
        assert_eq!(
            e("XKIAIOSFODNN7EXAMPLE"),
            "must be a long-term access key ID: 'AKIA' followed by 16 of A-Z and 2-7 \
             (e.g. AKIAIOSFODNN7EXAMPLE)"
        );
        assert!(e("").contains("'AKIA' followed by 16 of A-Z and 2-7"));
    }

    #[test]
    fn trims_pasted_keys() {
        let k = AccessKeyId::parse("  AKIAIOSFODNN7EXAMPLE\n").unwrap();
        assert_eq!(k.as_str(), "AKIAIOSFODNN7EXAMPLE");
    }

    #[test]
    fn masks_all_but_edges() {
        let k = AccessKeyId::parse("AKIAIOSFODNN7EXAMPLE").unwrap();
        assert_eq!(k.masked(), "AKIA************MPLE");
        assert_eq!(format!("{k:?}"), "AccessKeyId(\"AKIA************MPLE\")");
        assert_eq!(k.to_string(), "AKIAIOSFODNN7EXAMPLE");
        assert_eq!(mask_key_id("ASIAIOSFODNN7EXAMPLE"), "ASIA************MPLE");
        assert_eq!(mask_key_id("short"), "*****");
        assert_eq!(mask_key_id("12345678"), "********");
        assert_eq!(mask_key_id("123456789"), "1234*6789");
    }

    #[test]
    fn serde_is_a_plain_string() {
        let k = AccessKeyId::parse("AKIAIOSFODNN7EXAMPLE").unwrap();
        let json = serde_json::to_string(&k).unwrap();
        assert_eq!(json, "\"AKIAIOSFODNN7EXAMPLE\"");
        assert_eq!(serde_json::from_str::<AccessKeyId>(&json).unwrap(), k);
        let err = serde_json::from_str::<AccessKeyId>("\"ASIAIOSFODNN7EXAMPLE\"").unwrap_err();
        assert!(err.to_string().contains("temporary"), "{err}");
    }

    proptest::proptest! {
        #[test]
        fn base32_key_ids_pass_and_typos_are_named(body in "[A-Z2-7]{16}", at in 0usize..16, typo in "[0189]") {
            let key = format!("AKIA{body}");
            proptest::prop_assert!(AccessKeyId::parse(&key).is_ok());
            let mut chars: Vec<char> = body.chars().collect();
            chars[at] = typo.chars().next().unwrap();
            let bad: String = format!("AKIA{}", chars.into_iter().collect::<String>());
            let msg = AccessKeyId::parse(&bad).unwrap_err();
            let expected = format!("'{typo}' at position {}", at + 5);
            proptest::prop_assert!(msg.contains(&expected), "{}", msg);
        }
    }
}
