//! A group an integration is shared with: the value of the identity provider's groups
//! claim (e.g. a Cognito group), compared exactly.

use serde::{Deserialize, Serialize};

pub const MAX_GROUP: usize = 128;

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct GroupName(String);

impl GroupName {
    /// 1 to 128 visible characters. No white space or brackets: API Gateway hands a
    /// JWT's array claim to the function as `[a b c]`, so such a group could never be
    /// told apart from two. Kept as given: group names are compared exactly, as the
    /// identity provider does.
    pub fn parse(s: &str) -> Result<Self, String> {
        let n = s.chars().count();
        if n == 0 || n > MAX_GROUP {
            return Err(format!("must be 1 to {MAX_GROUP} characters"));
        }
        if let Some(c) = s
            .chars()
            .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '[' | ']' | ','))
        {
            return Err(format!(
                "must not contain white space, control characters, brackets or commas (found {})",
                c.escape_unicode()
            ));
        }
        if let Some(c) = s
            .chars()
            .find(|c| super::text::refused_kind(*c, false).is_some())
        {
            return Err(format!(
                "must not contain invisible format characters (found {})",
                c.escape_unicode()
            ));
        }
        Ok(GroupName(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

string_value!(GroupName.0);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names_are_visible_words_kept_exactly() {
        assert_eq!(GroupName::parse("Team-A").unwrap().as_str(), "Team-A");
        assert_eq!(
            GroupName::parse("ops:prod/eu").unwrap().as_str(),
            "ops:prod/eu"
        );
        assert_eq!(
            GroupName::parse(&"g".repeat(128)).unwrap().as_str().len(),
            128
        );
        for bad in [
            "",
            "two words",
            "[a",
            "a]",
            "a,b",
            "tab\there",
            "zero\u{200B}width",
        ] {
            assert!(GroupName::parse(bad).is_err(), "{bad:?}");
        }
        assert!(GroupName::parse(&"g".repeat(129)).is_err());
        assert_ne!(
            GroupName::parse("Ops").unwrap(),
            GroupName::parse("ops").unwrap()
        );
    }
}
