//! An S3 bucket name, as the setup guide's bucket policy and the provisioner use it.

use super::{AccountId, Partition};
use serde::{Deserialize, Serialize};

/// 3 to 63 of `a-z 0-9 . -`, starting and ending with a letter or digit, no `..`.
/// Not trimmed.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BucketName(String);

impl BucketName {
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = (3..=63).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric())
            && !s.contains("..");
        if ok {
            Ok(BucketName(s.to_owned()))
        } else {
            Err("must be a valid S3 bucket name (3-63 of a-z 0-9 . -)".into())
        }
    }

    /// `infrakitchen-<account>-bucket`: 32 characters of digits, letters and '-', so
    /// always a valid name (checked by the test `the_state_bucket_name_is_valid`).
    pub(super) fn state_bucket_of(account: &AccountId) -> Self {
        BucketName(format!("infrakitchen-{account}-bucket"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `arn:<partition>:s3:::<bucket>`.
    pub fn arn(&self, partition: Partition) -> String {
        format!("arn:{partition}:s3:::{}", self.0)
    }
}

string_value!(BucketName.0);

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &str = "must be a valid S3 bucket name (3-63 of a-z 0-9 . -)";

    #[test]
    fn bucket_rules() {
        for ok in [
            "abc",
            "infrakitchen-123456789012-bucket",
            "a.b-c",
            &"a".repeat(63),
        ] {
            assert_eq!(BucketName::parse(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "ab",
            &"a".repeat(64),
            "Abc",
            "-abc",
            "abc-",
            ".abc",
            "a..b",
            "a_b",
            " abc",
            "abc ",
        ] {
            assert_eq!(BucketName::parse(bad).unwrap_err(), MESSAGE, "{bad:?}");
        }
    }

    #[test]
    fn the_state_bucket_name_is_valid() {
        for a in ["000000000000", "123456789012", "999999999999"] {
            let b = AccountId::parse(a).unwrap().state_bucket_name();
            assert_eq!(BucketName::parse(b.as_str()).as_ref(), Ok(&b));
        }
    }

    #[test]
    fn arns() {
        let b = BucketName::parse("infrakitchen-1-bucket").unwrap();
        assert_eq!(b.arn(Partition::Aws), "arn:aws:s3:::infrakitchen-1-bucket");
        assert_eq!(
            b.arn(Partition::AwsCn),
            "arn:aws-cn:s3:::infrakitchen-1-bucket"
        );
    }

    #[test]
    fn serde_is_a_plain_string() {
        let b = BucketName::parse("my-bucket").unwrap();
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(json, "\"my-bucket\"");
        assert_eq!(serde_json::from_str::<BucketName>(&json).unwrap(), b);
        let e = serde_json::from_str::<BucketName>("\"My_Bucket\"").unwrap_err();
        assert!(e.to_string().contains(MESSAGE), "{e}");
    }
}
