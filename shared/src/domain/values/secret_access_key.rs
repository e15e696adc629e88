//! The IAM user's secret access key, as the form brings it in.

use secrecy::{ExposeSecret, SecretString};
use std::fmt;

/// 40 characters of `A-Z a-z 0-9 / +`, surrounding whitespace trimmed (keys are pasted).
/// It stays wrapped (zeroed on drop, never shown): no `Display`, no `Serialize`, a
/// redacted `Debug`; the records hold only its KMS ciphertext. No `PartialEq`: nothing
/// needs to compare secrets.
#[derive(Clone)]
pub struct SecretAccessKey(SecretString);

impl SecretAccessKey {
    /// The message never echoes any part of the value.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.len() == 40
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'/' || b == b'+')
        {
            Ok(SecretAccessKey(SecretString::from(s.to_owned())))
        } else {
            Err("must be 40 characters of A-Z, a-z, 0-9, '/' and '+'".into())
        }
    }

    /// The wrapped key, for sealing it and for signing requests.
    pub fn secret(&self) -> &SecretString {
        &self.0
    }

    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
}

impl From<SecretAccessKey> for SecretString {
    fn from(k: SecretAccessKey) -> SecretString {
        k.0
    }
}

impl fmt::Debug for SecretAccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretAccessKey([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const MESSAGE: &str = "must be 40 characters of A-Z, a-z, 0-9, '/' and '+'";

    #[test]
    fn forty_characters_trimmed() {
        let k = SecretAccessKey::parse(&format!(" {SECRET}\t")).unwrap();
        assert_eq!(k.expose_secret(), SECRET);
        assert_eq!(SecretString::from(k).expose_secret(), SECRET);
        for bad in [
            "short",
            &SECRET[1..],
            &format!("{SECRET}x"),
            &SECRET.replace('/', "-"),
        ] {
            assert_eq!(SecretAccessKey::parse(bad).unwrap_err(), MESSAGE);
        }
    }

    #[test]
    fn never_shown() {
        let k = SecretAccessKey::parse(SECRET).unwrap();
        assert_eq!(format!("{k:?}"), "SecretAccessKey([REDACTED])");
    }

    proptest::proptest! {
        #[test]
        fn errors_never_echo_input(s in "[A-Za-z0-9/+ -]{8,45}") {
            if let Err(e) = SecretAccessKey::parse(&s) {
                proptest::prop_assert!(!e.contains(s.trim()));
            }
        }
    }
}
