//! The integration's name, description and labels: the text a person types.

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// `aws-production`: 1 to 64 of ASCII letters, digits, '-' and '_'. Unique per caller;
/// not trimmed.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IntegrationName(String);

impl IntegrationName {
    pub fn parse(s: &str) -> Result<Self, String> {
        let n = s.chars().count();
        if n == 0 || n > 64 {
            return Err("must be 1 to 64 characters".into());
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(
                "may contain only letters, digits, '-' and '_' (e.g. aws-production)".into(),
            );
        }
        Ok(IntegrationName(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// No normalisation shortens text this much (a composed character stands for at most a
/// few), so longer input is refused before it is normalised.
const NORMALISATION_SLACK: usize = 16;

const MAX_DESCRIPTION: usize = 1024;

/// Free text, NFC-normalised (so a composed `é` and `e` followed by U+0301 are the same
/// text), at most 1024 characters once normalised; no control characters but tab,
/// newline and carriage return, no format characters (see [`refused_kind`]).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Description(String);

impl Description {
    /// Gives the NFC form of `s`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let too_long = || format!("must be at most {MAX_DESCRIPTION} characters");
        let given = s.chars().count();
        if given > MAX_DESCRIPTION * NORMALISATION_SLACK {
            return Err(too_long());
        }
        if let Some(m) = refused_chars(s, true) {
            return Err(m);
        }
        let d: String = s.nfc().collect();
        let n = d.chars().count();
        if n > MAX_DESCRIPTION {
            return Err(if n == given {
                too_long()
            } else {
                format!("{} (has {n} once normalised to NFC)", too_long())
            });
        }
        Ok(Description(d))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

const MAX_LABEL: usize = 63;

/// A label as it is stored and compared: NFKC, then lower case (Unicode's full mapping),
/// so `Prod`, `prod` and fullwidth `ｐｒｏｄ` are one label `prod`. Lower-casing can undo
/// NFKC (rarely), so the result is normalised again: the function is idempotent.
pub fn normalise_label(s: &str) -> String {
    s.nfkc().collect::<String>().to_lowercase().nfkc().collect()
}

/// 1 to 63 printable characters once normalised ([`normalise_label`]): no control
/// characters, no format characters (see [`refused_kind`]). Equal labels are one label.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Label(String);

impl Label {
    /// Gives the normalised label.
    pub fn parse(s: &str) -> Result<Self, String> {
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
        Ok(Label(l))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

string_value!(IntegrationName.0);
string_value!(Description.0);
string_value!(Label.0);

/// Why `c` may not be in a description or label: control characters (general category
/// Cc; in a description tab, newline and carriage return are fine) and format characters
/// (Cf: bidirectional controls, zero-width characters, the byte order mark, the soft
/// hyphen, tag characters...), which are invisible or make the text display differently
/// from what it is (`prod\u{202E}gnp.exe` displays as `prodexe.png`). Public for the
/// test that holds openapi.yaml's patterns to these rules.
pub fn refused_kind(c: char, line_breaks_allowed: bool) -> Option<&'static str> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn description(s: &str) -> Result<String, String> {
        Description::parse(s).map(String::from)
    }

    fn label(s: &str) -> Result<String, String> {
        Label::parse(s).map(String::from)
    }

    #[test]
    fn names() {
        for ok in ["aws-production", "a", "A_b-9", &"n".repeat(64)] {
            assert_eq!(IntegrationName::parse(ok).unwrap().as_str(), ok);
        }
        for long in ["", &"n".repeat(65)] {
            assert_eq!(
                IntegrationName::parse(long).unwrap_err(),
                "must be 1 to 64 characters"
            );
        }
        for bad in ["bad name!", " aws", "caf\u{E9}", "a.b", "a/b"] {
            assert_eq!(
                IntegrationName::parse(bad).unwrap_err(),
                "may contain only letters, digits, '-' and '_' (e.g. aws-production)",
                "{bad:?}"
            );
        }
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
        assert_eq!(
            description("a\u{200B}b\u{200B}").unwrap_err(),
            "contains U+200B (a zero-width space, which is invisible) at position 2 and 1 \
             more such character: remove them"
        );
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
        assert_eq!(
            description(&"\u{E9}".repeat(1025)).unwrap_err(),
            "must be at most 1024 characters"
        );
        assert_eq!(
            description(&"e\u{301}".repeat(1025)).unwrap_err(),
            "must be at most 1024 characters (has 1025 once normalised to NFC)"
        );
        assert_eq!(
            description(&"a".repeat(1024 * 16 + 1)).unwrap_err(),
            "must be at most 1024 characters"
        );
        assert_eq!(description("").unwrap(), "");
    }

    #[test]
    fn ordinary_non_ascii_text_is_accepted() {
        for text in [
            "\u{DC}n\u{EF}c\u{F8}d\u{E9} description",
            "\u{672C}\u{756A}\u{74B0}\u{5883} (production)",
            "\u{D504}\u{B85C}\u{B355}\u{C158}",
            "\u{5DD}\u{5D5}\u{5E6}\u{5E8} \u{645}\u{646}\u{62A}\u{62C}",
            "rocket \u{1F680}, heart \u{2764}\u{FE0F}, thumbs \u{1F44D}\u{1F3FD}",
            "\u{928}\u{92E}\u{938}\u{94D}\u{924}\u{947}",
        ] {
            assert!(description(text).is_ok(), "{text}");
            assert!(label(text).is_ok(), "{text}");
        }
        assert_eq!(label("\u{672C}\u{756A}").unwrap(), "\u{672C}\u{756A}");
        assert_eq!(label("\u{1F680} launch").unwrap(), "\u{1F680} launch");
        assert_eq!(label("\u{DC}ber").unwrap(), "\u{FC}ber");
    }

    #[test]
    fn labels_are_folded_to_nfkc_lower_case() {
        for same in [
            "prod",
            "Prod",
            "PROD",
            "\u{FF50}\u{FF52}\u{FF4F}\u{FF44}",
            "\u{FF30}\u{FF32}\u{FF2F}\u{FF24}",
        ] {
            assert_eq!(label(same).unwrap(), "prod", "{same:?}");
        }
        assert_eq!(Label::parse("Prod"), Label::parse("\u{FF50}rod"));
        assert_eq!(label("e\u{301}t\u{E9}").unwrap(), "\u{E9}t\u{E9}");
        assert_eq!(label("\u{212B}ngstr\u{F6}m").unwrap(), "\u{E5}ngstr\u{F6}m");
        assert_eq!(label("\u{FB01}nance").unwrap(), "finance");
        assert_eq!(label("team\u{A0}a").unwrap(), "team a");
        assert_eq!(label("\u{130}stanbul").unwrap(), "i\u{307}stanbul");
        // No precomposed capital J with caron: only the lower-cased text composes, so the
        // label is normalised again after lower-casing (both spellings are one label).
        assert_eq!(label("J\u{30C}").unwrap(), "\u{1F0}");
        assert_eq!(label("\u{1F0}").unwrap(), "\u{1F0}");

        let bidi = label("prod\u{202E}gnp.exe").unwrap_err();
        assert!(bidi.starts_with("contains U+202E (a bidirectional control character"));
        for bad in [
            "pro\u{200B}d",
            "\u{FEFF}prod",
            "pro\u{AD}d",
            "tab\there",
            "a\nb",
        ] {
            assert!(
                label(bad).unwrap_err().starts_with("contains U+"),
                "{bad:?}"
            );
        }
        // The length counts the normalised label: U+FDFA is 18 characters in NFKC.
        assert!(label(&"a".repeat(63)).is_ok());
        assert!(label(&"\u{FF41}".repeat(63)).is_ok());
        let long = label(&"\u{FDFA}".repeat(4)).unwrap_err();
        assert_eq!(
            long,
            "must be 1 to 63 characters (has 72 once normalised to NFKC and lower case)"
        );
        assert_eq!(label("").unwrap_err(), "must be 1 to 63 characters");
        assert_eq!(
            label(&"a".repeat(64)).unwrap_err(),
            "must be 1 to 63 characters"
        );
        assert!(label(&"a".repeat(100_000)).is_err());
    }

    /// Every character: normalisation never brings in a refused character, and labels
    /// are fixed points of their normalisation.
    #[test]
    fn normalisation_is_stable_and_adds_no_refused_character() {
        let mut buf = [0u8; 4];
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
            let s: &str = c.encode_utf8(&mut buf);
            let l = normalise_label(s);
            assert_eq!(normalise_label(&l), l, "U+{:04X}", c as u32);
            if refused_kind(c, false).is_none() {
                assert!(refused_chars(&l, false).is_none(), "U+{:04X}", c as u32);
                let d: String = s.nfc().collect();
                assert!(refused_chars(&d, false).is_none(), "U+{:04X}", c as u32);
            }
        }
    }

    #[test]
    fn serde_is_a_plain_string() {
        let n = IntegrationName::parse("aws-production").unwrap();
        assert_eq!(serde_json::to_string(&n).unwrap(), "\"aws-production\"");
        assert_eq!(
            serde_json::from_str::<IntegrationName>("\"aws-production\"").unwrap(),
            n
        );
        assert!(serde_json::from_str::<IntegrationName>("\"bad name!\"").is_err());

        // Reading goes through parse, so it gives the normalised text.
        let d: Description = serde_json::from_str("\"cafe\u{301}\"").unwrap();
        assert_eq!(d.as_str(), "caf\u{E9}");
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"caf\u{E9}\"");
        assert!(serde_json::from_str::<Description>("\"prod\u{202E}gnp.exe\"").is_err());

        let l: Label = serde_json::from_str("\"PROD\"").unwrap();
        assert_eq!(l.as_str(), "prod");
        assert_eq!(serde_json::to_string(&l).unwrap(), "\"prod\"");
        let ls: Vec<Label> = serde_json::from_str("[\"a\",\"B\"]").unwrap();
        assert_eq!(serde_json::to_string(&ls).unwrap(), "[\"a\",\"b\"]");
        let e = serde_json::from_str::<Vec<Label>>("[\"ok\",\"\"]").unwrap_err();
        assert!(e.to_string().contains("must be 1 to 63 characters"), "{e}");
        assert_eq!(format!("{l:?}"), "Label(\"prod\")");
    }

    proptest::proptest! {
        #[test]
        fn text_rules_never_panic_and_labels_are_fixed_points(s in "\\PC{0,80}|.{0,80}|[\u{0}-\u{2FF}\u{200B}-\u{206F}\u{FB00}-\u{FFFF}]{0,80}") {
            let _ = description(&s);
            let _ = IntegrationName::parse(&s);
            if let Ok(l) = label(&s) {
                proptest::prop_assert_eq!(normalise_label(&l), l.clone());
                proptest::prop_assert_eq!(label(&l), Ok(l.clone()));
                proptest::prop_assert_eq!(l.to_lowercase(), l.clone());
            }
            if let Ok(d) = description(&s) {
                proptest::prop_assert_eq!(description(&d), Ok(d.clone()));
            }
        }
    }
}
