//! How long the assumed role's session lasts.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Whole seconds from 900 to 43200, STS's limits for `AssumeRole`; 3600 by default.
/// Stored and shown as a JSON number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct SessionDuration(u32);

const RANGE: &str = "must be a whole number of seconds from 900 to 43200";

impl SessionDuration {
    pub const MIN: u32 = 900;
    pub const MAX: u32 = 43200;
    pub const DEFAULT: u32 = 3600;

    /// The form's JSON number. JSON Schema counts `900.0` (and `9e2`) as the integer
    /// 900, so they are accepted as 900; `900.5` is refused, naming its fraction.
    pub fn parse(n: &serde_json::Number) -> Result<Self, String> {
        if let Some(s) = n.as_u64() {
            return match u32::try_from(s) {
                Ok(s) => Self::try_from(s),
                Err(_) => Err(RANGE.into()),
            };
        }
        match n.as_f64() {
            Some(f) if f.is_finite() && f.fract() != 0.0 => {
                Err(format!("{RANGE}: {n} has a fractional part"))
            }
            // Whole and in range, so the cast is exact.
            Some(f) if (900.0..=43200.0).contains(&f) => Ok(SessionDuration(f as u32)),
            _ => Err(RANGE.into()),
        }
    }

    /// The form's value of any JSON type (`null` is the caller's: absent or default).
    pub fn parse_value(v: &serde_json::Value) -> Result<Self, String> {
        match v {
            serde_json::Value::Number(n) => Self::parse(n),
            _ => Err("must be a number (seconds, 900 to 43200)".into()),
        }
    }

    pub fn as_secs(self) -> u32 {
        self.0
    }
}

impl Default for SessionDuration {
    fn default() -> Self {
        SessionDuration(Self::DEFAULT)
    }
}

impl TryFrom<u32> for SessionDuration {
    type Error = String;
    fn try_from(s: u32) -> Result<Self, String> {
        if (Self::MIN..=Self::MAX).contains(&s) {
            Ok(SessionDuration(s))
        } else {
            Err(RANGE.into())
        }
    }
}

impl PartialEq<u32> for SessionDuration {
    fn eq(&self, other: &u32) -> bool {
        self.0 == *other
    }
}

impl From<SessionDuration> for u32 {
    fn from(d: SessionDuration) -> u32 {
        d.0
    }
}

impl fmt::Display for SessionDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn secs(v: Value) -> Result<u32, String> {
        SessionDuration::parse_value(&v).map(SessionDuration::as_secs)
    }

    #[test]
    fn session_duration_accepts_whole_floats() {
        for (given, want) in [
            (json!(900.0), 900),
            (json!(43200.0), 43200),
            (json!(3600), 3600),
            (json!(900), 900),
            (json!(43200), 43200),
        ] {
            assert_eq!(secs(given), Ok(want));
        }
        // Exponent notation is a JSON number like any other.
        let n: Value = serde_json::from_str("9e2").unwrap();
        assert_eq!(secs(n), Ok(900));

        assert_eq!(
            secs(json!(900.5)).unwrap_err(),
            "must be a whole number of seconds from 900 to 43200: 900.5 has a fractional part"
        );
        for out in [
            json!(899.0),
            json!(899),
            json!(43201),
            json!(-900.0),
            json!(1e300),
            json!(-1),
            json!(u64::MAX),
            json!(u64::from(u32::MAX) + 900),
        ] {
            assert_eq!(
                secs(out.clone()).unwrap_err(),
                "must be a whole number of seconds from 900 to 43200",
                "{out}"
            );
        }
        for not_a_number in [json!("900"), json!(true), json!([900]), json!(null)] {
            assert_eq!(
                secs(not_a_number).unwrap_err(),
                "must be a number (seconds, 900 to 43200)"
            );
        }
    }

    #[test]
    fn default_is_an_hour() {
        assert_eq!(SessionDuration::default().as_secs(), 3600);
        assert_eq!(
            SessionDuration::try_from(3600),
            Ok(SessionDuration::default())
        );
    }

    #[test]
    fn serde_is_a_plain_number() {
        let d = SessionDuration::try_from(1800).unwrap();
        assert_eq!(serde_json::to_string(&d).unwrap(), "1800");
        assert_eq!(serde_json::from_str::<SessionDuration>("1800").unwrap(), d);
        assert_eq!(d.to_string(), "1800");
        let e = serde_json::from_str::<SessionDuration>("60").unwrap_err();
        assert!(e.to_string().contains(RANGE), "{e}");
        assert!(serde_json::from_str::<SessionDuration>("\"1800\"").is_err());
    }
}
