//! A point in time as the records store it.

use serde::{Deserialize, Deserializer, Serialize};
use std::cmp::Ordering;
use std::hash::{Hash, Hasher};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// A time written `2026-11-26T05:35:10.000Z`: always UTC, always three fraction digits.
/// Stored times are also compared as strings (in DynamoDB conditions), so every time
/// this code writes has the same width: `time`'s own RFC 3339 output drops trailing
/// zeros, and `...:05Z` would sort after `...:05.5Z`.
///
/// `parse` also reads any RFC 3339 time, as records written before the fixed width hold,
/// and keeps its text as it was (rewriting it would change stored records on read).
/// Comparisons (`Eq`, `Ord`, `Hash`) are of the instant, never of the text: `...:05Z`
/// and `...:05.000Z` are equal.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Timestamp {
    text: String,
    /// `text`'s instant, in UTC.
    at: OffsetDateTime,
}

impl Timestamp {
    pub fn now() -> Self {
        Self::from(OffsetDateTime::now_utc())
    }

    /// The time `ago` before now: a threshold for "older than". An `ago` beyond the
    /// calendar gives its first day rather than a panic.
    pub fn ago(ago: std::time::Duration) -> Self {
        let ago = time::Duration::try_from(ago).unwrap_or(time::Duration::MAX);
        Self::from(OffsetDateTime::now_utc().saturating_sub(ago))
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        match OffsetDateTime::parse(s, &Rfc3339) {
            Ok(t) => Ok(Timestamp {
                text: s.to_owned(),
                at: t.to_offset(UtcOffset::UTC),
            }),
            Err(_) => Err("must be an RFC 3339 time such as 2026-11-26T05:35:10.000Z".into()),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The instant, in UTC.
    pub fn instant(&self) -> OffsetDateTime {
        self.at
    }

    /// Is the stored time `at` earlier than `threshold`? A missing time counts as
    /// earlier: such a record can always be recovered (and so can an unreadable one,
    /// read with [`Timestamp::deserialize_lenient`]).
    pub fn is_before(at: Option<&Timestamp>, threshold: &Timestamp) -> bool {
        at.is_none_or(|a| a < threshold)
    }

    /// For `#[serde(default, deserialize_with = "Timestamp::deserialize_lenient")]` on
    /// an `Option<Timestamp>` field of a stored record: an unreadable time is read as
    /// none, so the record stays readable (and its time counts as earlier, see
    /// [`Timestamp::is_before`]). A value that is not a string is still an error.
    pub fn deserialize_lenient<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Timestamp>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        Ok(text.and_then(|t| Timestamp::parse(&t).ok()))
    }
}

/// The fixed-width text of `t` (in UTC, to the millisecond; finer digits are dropped).
impl From<OffsetDateTime> for Timestamp {
    fn from(t: OffsetDateTime) -> Self {
        let t = t.to_offset(UtcOffset::UTC);
        // The instant is cut to what the text holds, so a parsed copy is equal.
        let at = t
            .replace_nanosecond(u32::from(t.millisecond()) * 1_000_000)
            .unwrap_or(t);
        let text = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        );
        Timestamp { text, at }
    }
}

impl PartialEq for Timestamp {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}

impl Eq for Timestamp {}

impl PartialOrd for Timestamp {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Timestamp {
    fn cmp(&self, other: &Self) -> Ordering {
        self.at.cmp(&other.at)
    }
}

impl Hash for Timestamp {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Always UTC (see `at`), so equal instants hash alike.
        self.at.hash(state);
    }
}

string_value!(Timestamp.text);

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap()
    }

    #[test]
    fn timestamps_have_one_width_and_sort_by_time() {
        let whole = Timestamp::from(datetime!(2026-11-26 05:35:05 UTC));
        let half = Timestamp::from(datetime!(2026-11-26 05:35:05.5 UTC));
        let later = Timestamp::from(datetime!(2026-11-26 05:35:06.001 UTC));
        assert_eq!(whole.as_str(), "2026-11-26T05:35:05.000Z");
        assert_eq!(half.as_str(), "2026-11-26T05:35:05.500Z");
        assert!(whole.as_str() < half.as_str() && half.as_str() < later.as_str());
        assert!(whole < half && half < later);
        // Other offsets are written in UTC.
        assert_eq!(
            Timestamp::from(datetime!(2026-11-26 07:35:05.25 +02:00)).as_str(),
            "2026-11-26T05:35:05.250Z"
        );
        // Every millisecond of a few seconds: same width, and strictly increasing.
        let start = datetime!(2026-12-31 23:59:58 UTC);
        let all: Vec<Timestamp> = (0..3000)
            .map(|ms| Timestamp::from(start + time::Duration::milliseconds(ms)))
            .collect();
        assert!(all.iter().all(|t| t.as_str().len() == 24));
        assert!(all
            .windows(2)
            .all(|w| w[0].as_str() < w[1].as_str() && w[0] < w[1]));
        assert_eq!(Timestamp::now().as_str().len(), 24);
    }

    #[test]
    fn what_is_written_parses_back_equal() {
        let t = Timestamp::from(datetime!(2026-11-26 05:35:05.123456789 UTC));
        assert_eq!(t.as_str(), "2026-11-26T05:35:05.123Z");
        let back = ts(t.as_str());
        assert_eq!(back, t);
        assert_eq!(back.instant(), t.instant());
        let now = Timestamp::now();
        assert_eq!(ts(now.as_str()), now);
    }

    #[test]
    fn before_compares_times_not_text() {
        // The variable-width form written by earlier versions still compares as time.
        let before =
            |at: &str, threshold: &str| Timestamp::is_before(Some(&ts(at)), &ts(threshold));
        assert!(!before("2026-11-26T05:35:05Z", "2026-11-26T05:35:04.500Z"));
        assert!(before("2026-11-26T05:35:05Z", "2026-11-26T05:35:05.500Z"));
        assert!(!before(
            "2026-11-26T05:35:05.5Z",
            "2026-11-26T05:35:05.000Z"
        ));
        assert!(!before("2026-11-26T05:35:05Z", "2026-11-26T05:35:05.000Z"));
        assert!(before(
            "2026-11-26T07:35:04+02:00",
            "2026-11-26T05:35:05.000Z"
        ));
        assert!(Timestamp::is_before(None, &ts("2026-11-26T05:35:05.000Z")));
        // Old and new spellings of one instant are one time, but keep their text.
        let old = ts("2026-11-26T05:35:05Z");
        assert_eq!(old, ts("2026-11-26T05:35:05.000Z"));
        assert_eq!(old.as_str(), "2026-11-26T05:35:05Z");
    }

    #[test]
    fn ago_is_in_the_past() {
        let now = Timestamp::now();
        let hour = Timestamp::ago(std::time::Duration::from_secs(3600));
        assert!(hour < now);
        assert!(Timestamp::ago(std::time::Duration::ZERO) >= now);
        // Far beyond the calendar: the earliest time, not a panic.
        assert!(Timestamp::ago(std::time::Duration::MAX) < hour);
    }

    #[test]
    fn unreadable_times_are_refused() {
        // `time` reads a space for the 'T' (RFC 3339 allows it), as `is_before` did.
        assert_eq!(ts("2026-11-26 05:35:05Z"), ts("2026-11-26T05:35:05Z"));
        for bad in [
            "",
            "garbage",
            "2026-11-26",
            "2026-11-26T05:35:05",
            "2026-13-26T05:35:05Z",
        ] {
            assert_eq!(
                Timestamp::parse(bad).unwrap_err(),
                "must be an RFC 3339 time such as 2026-11-26T05:35:10.000Z",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn serde_is_a_plain_string() {
        let t = ts("2026-11-26T05:35:05.000Z");
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"2026-11-26T05:35:05.000Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
        // An old record's text is written back as it was.
        let old: Timestamp = serde_json::from_str("\"2026-11-26T05:35:05Z\"").unwrap();
        assert_eq!(
            serde_json::to_string(&old).unwrap(),
            "\"2026-11-26T05:35:05Z\""
        );
        assert!(serde_json::from_str::<Timestamp>("\"garbage\"").is_err());
        assert_eq!(format!("{t:?}"), "Timestamp(\"2026-11-26T05:35:05.000Z\")");
    }

    #[test]
    fn lenient_reading_keeps_records_readable() {
        #[derive(Deserialize)]
        struct Record {
            #[serde(default, deserialize_with = "Timestamp::deserialize_lenient")]
            at: Option<Timestamp>,
        }
        let read = |j: &str| serde_json::from_str::<Record>(j).unwrap().at;
        assert_eq!(
            read(r#"{"at":"2026-11-26T05:35:05Z"}"#),
            Some(ts("2026-11-26T05:35:05Z"))
        );
        assert_eq!(read(r#"{"at":"garbage"}"#), None);
        assert_eq!(read(r#"{"at":null}"#), None);
        assert_eq!(read(r#"{}"#), None);
        assert!(serde_json::from_str::<Record>(r#"{"at":5}"#).is_err());
    }
}
