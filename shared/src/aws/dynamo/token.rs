//! The opaque `next_token` of a listing: where the previous page stopped, and the filter
//! it was for. Every decoded field is checked before it reaches DynamoDB.

use crate::error::{Error, Result};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// Continuation token: where the previous page stopped, and the filter it was for.
#[derive(Serialize, Deserialize)]
pub(super) struct Token {
    pub v: u8,
    pub id: String,
    pub name_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

pub(super) fn encode_token(t: &Token) -> Result<String> {
    let json =
        serde_json::to_vec(t).map_err(|e| Error::internal_from("serialising a page token", e))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json))
}

pub(super) fn decode_token(raw: &str, label: &Option<String>) -> Result<Token> {
    let bad = || Error::validation("next_token", "is not a token this API returned");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw)
        .map_err(|_| bad())?;
    let t: Token = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    // Every decoded field is checked: a forged sort key (empty, too long) would otherwise
    // reach DynamoDB as an invalid ExclusiveStartKey and come back as a 503.
    let name_key_ok = crate::domain::IntegrationName::parse(&t.name_key).is_ok()
        && t.name_key == t.name_key.to_lowercase();
    if t.v != 1 || crate::domain::IntegrationId::parse(&t.id).is_err() || !name_key_ok {
        return Err(bad());
    }
    if &t.label != label {
        return Err(Error::validation(
            "next_token",
            "belongs to a listing with another label filter",
        ));
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trip_and_tamper() {
        let t = Token {
            v: 1,
            id: "01J00000000000000000000000".into(),
            name_key: "aws-prod".into(),
            label: Some("prod".into()),
        };
        let raw = encode_token(&t).unwrap();
        let back = decode_token(&raw, &Some("prod".into())).unwrap();
        assert_eq!(back.name_key, "aws-prod");
        assert!(decode_token(&raw, &None).is_err());
        assert!(decode_token("not-a-token", &None).is_err());
        assert!(decode_token(&format!("{raw}x"), &Some("prod".into())).is_err());
        // Forged sort keys: empty, far too long, not a lower-cased name.
        for forged in ["", &"a".repeat(2000), "AWS-Prod", "a b"] {
            let t = Token {
                v: 1,
                id: "01J00000000000000000000000".into(),
                name_key: forged.to_owned(),
                label: None,
            };
            assert!(
                decode_token(&encode_token(&t).unwrap(), &None).is_err(),
                "{forged:?}"
            );
        }
    }
}
