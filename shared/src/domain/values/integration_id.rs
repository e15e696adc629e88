//! The integration's ID: a ULID, so IDs sort by creation time.

use serde::{Deserialize, Serialize};

/// 26 characters of Crockford base32, as `ulid` reads them. Kept exactly as given (not
/// re-encoded): it is the record's key, and another spelling would be another key.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IntegrationId(String);

impl IntegrationId {
    /// A fresh ID: a new ULID in its canonical (upper case) spelling.
    // No `Default`: a default that is different every time would surprise.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        IntegrationId(ulid::Ulid::new().to_string())
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        // The length is checked first by `ulid` too; restated as the rule it is.
        if s.len() == 26 && ulid::Ulid::from_string(s).is_ok() {
            Ok(IntegrationId(s.to_owned()))
        } else {
            Err("must be an integration ID: a ULID of 26 characters (e.g. 01JDQ3V5R8WZ6K2M4N7P9QASTB)"
                .into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

string_value!(IntegrationId.0);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_parse_and_differ() {
        let a = IntegrationId::new();
        let b = IntegrationId::new();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 26);
        assert_eq!(IntegrationId::parse(a.as_str()).as_ref(), Ok(&a));
        assert!(a
            .as_str()
            .bytes()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()));
    }

    #[test]
    fn what_the_service_accepted() {
        for ok in [
            "01JDQ3V5R8WZ6K2M4N7P9QASTB",
            "00000000000000000000000000",
            "7ZZZZZZZZZZZZZZZZZZZZZZZZZ",
            // `ulid` reads lower case too; such an ID finds no record (keys are upper case).
            "01jdq3v5r8wz6k2m4n7p9qastb",
        ] {
            assert_eq!(IntegrationId::parse(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "",
            "01JDQ3V5R8WZ6K2M4N7P9QAST",
            "01JDQ3V5R8WZ6K2M4N7P9QASTBB",
            "01JDQ3V5R8WZ6K2M4N7P9QASTU",
            "01JDQ3V5R8WZ6K2M4N7P9QAST ",
            "01JDQ3V5R8WZ6K2M4N7P9QAST\u{C9}",
            "../../../../etc/passwd0000",
        ] {
            assert_eq!(
                IntegrationId::parse(bad).unwrap_err(),
                "must be an integration ID: a ULID of 26 characters (e.g. 01JDQ3V5R8WZ6K2M4N7P9QASTB)",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn serde_is_a_plain_string() {
        let id = IntegrationId::parse("01JDQ3V5R8WZ6K2M4N7P9QASTB").unwrap();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"01JDQ3V5R8WZ6K2M4N7P9QASTB\"");
        assert_eq!(serde_json::from_str::<IntegrationId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<IntegrationId>("\"not-an-id\"").is_err());
        assert_eq!(
            format!("{id:?}"),
            "IntegrationId(\"01JDQ3V5R8WZ6K2M4N7P9QASTB\")"
        );
    }
}
