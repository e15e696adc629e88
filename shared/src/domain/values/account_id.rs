//! The 12-digit AWS account ID.

use super::BucketName;
use serde::{Deserialize, Serialize};

/// Exactly 12 ASCII digits. Surrounding whitespace is trimmed first: IDs are pasted from
/// the console, often with a trailing newline.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccountId(String);

impl AccountId {
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(AccountId(s.to_owned()))
        } else {
            Err("must be exactly 12 digits (e.g. 123456789012)".into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The default Terraform/OpenTofu state bucket of the setup guide:
    /// `infrakitchen-<account>-bucket`.
    pub fn state_bucket_name(&self) -> BucketName {
        BucketName::state_bucket_of(self)
    }
}

string_value!(AccountId.0);

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &str = "must be exactly 12 digits (e.g. 123456789012)";

    #[test]
    fn twelve_digits_trimmed() {
        assert_eq!(
            AccountId::parse("123456789012").unwrap().as_str(),
            "123456789012"
        );
        assert_eq!(
            AccountId::parse(" 123456789012\n").unwrap().as_str(),
            "123456789012"
        );
        for bad in [
            "",
            "12345678901",
            "1234567890123",
            "12345678901a",
            "1234 5678 9012",
            "１２３４５６７８９０１２",
        ] {
            assert_eq!(AccountId::parse(bad).unwrap_err(), MESSAGE, "{bad:?}");
        }
    }

    #[test]
    fn state_bucket_name() {
        let a = AccountId::parse("123456789012").unwrap();
        assert_eq!(
            a.state_bucket_name().as_str(),
            "infrakitchen-123456789012-bucket"
        );
    }

    #[test]
    fn serde_is_a_plain_string() {
        let a = AccountId::parse("123456789012").unwrap();
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, "\"123456789012\"");
        assert_eq!(serde_json::from_str::<AccountId>(&json).unwrap(), a);
        assert_eq!(
            serde_json::from_str::<AccountId>("\" 123456789012 \"").unwrap(),
            a
        );
        let e = serde_json::from_str::<AccountId>("\"12\"").unwrap_err();
        assert!(e.to_string().contains(MESSAGE), "{e}");
        // The form's number is not an account ID: it would lose leading zeros.
        assert!(serde_json::from_str::<AccountId>("123456789012").is_err());
    }
}
