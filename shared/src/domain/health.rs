//! An integration's health, as the scheduled health check last found it: `ok`, or
//! `failing` since a time, at a step, with the hint a person can act on.

use super::values::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Ok,
    Failing,
}

impl HealthStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Ok => "ok",
            HealthStatus::Failing => "failing",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "ok" => Ok(HealthStatus::Ok),
            "failing" => Ok(HealthStatus::Failing),
            _ => Err("must be \"ok\" or \"failing\"".into()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub status: HealthStatus,
    /// When it entered this status (kept while it stays there).
    pub since: Timestamp,
    /// The last check that reached a verdict.
    pub checked_at: Timestamp,
    /// Failing only: the step that failed (`credentials`, `assume_role`, `state_bucket`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// Failing only: what happened, in a sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Failing only: what to do about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// What one check found, before it is compared with what was recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    Failing {
        step: String,
        detail: String,
        hint: Option<String>,
    },
}

/// How a check changed an integration's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// First verdict, or the same status as before.
    None,
    BecameFailing,
    Recovered,
}

impl Health {
    /// The health after `verdict` at `now`, given the recorded one: `since` moves only
    /// when the status changes (a first verdict starts it now).
    pub fn next(
        previous: Option<&Health>,
        verdict: Verdict,
        now: &Timestamp,
    ) -> (Health, Transition) {
        let status = match verdict {
            Verdict::Ok => HealthStatus::Ok,
            Verdict::Failing { .. } => HealthStatus::Failing,
        };
        let (since, transition) = match previous {
            Some(p) if p.status == status => (p.since.clone(), Transition::None),
            Some(_) if status == HealthStatus::Failing => (now.clone(), Transition::BecameFailing),
            Some(_) => (now.clone(), Transition::Recovered),
            // A first check that fails is a transition too: the integration was never
            // known to be healthy, but someone must hear that it is not.
            None if status == HealthStatus::Failing => (now.clone(), Transition::BecameFailing),
            None => (now.clone(), Transition::None),
        };
        let (step, detail, hint) = match verdict {
            Verdict::Ok => (None, None, None),
            Verdict::Failing { step, detail, hint } => (Some(step), Some(detail), hint),
        };
        (
            Health {
                status,
                since,
                checked_at: now.clone(),
                step,
                detail,
                hint,
            },
            transition,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        Timestamp::parse(s).expect("a timestamp")
    }

    fn failing(step: &str) -> Verdict {
        Verdict::Failing {
            step: step.into(),
            detail: "denied".into(),
            hint: Some("fix it".into()),
        }
    }

    #[test]
    fn since_moves_only_when_the_status_changes() {
        let t1 = at("2026-01-01T00:00:00.000Z");
        let t2 = at("2026-01-02T00:00:00.000Z");
        let t3 = at("2026-01-03T00:00:00.000Z");
        let (ok, tr) = Health::next(None, Verdict::Ok, &t1);
        assert_eq!(
            (ok.status, &ok.since, tr),
            (HealthStatus::Ok, &t1, Transition::None)
        );
        let (bad, tr) = Health::next(Some(&ok), failing("credentials"), &t2);
        assert_eq!(tr, Transition::BecameFailing);
        assert_eq!(bad.since, t2);
        assert_eq!(bad.step.as_deref(), Some("credentials"));
        let (still, tr) = Health::next(Some(&bad), failing("assume_role"), &t3);
        assert_eq!(tr, Transition::None);
        assert_eq!(still.since, t2, "failing since the first failure");
        assert_eq!(still.checked_at, t3);
        assert_eq!(still.step.as_deref(), Some("assume_role"));
        let (back, tr) = Health::next(Some(&still), Verdict::Ok, &t3);
        assert_eq!(tr, Transition::Recovered);
        assert_eq!((back.since, back.step, back.hint), (t3, None, None));
    }

    #[test]
    fn a_first_check_that_fails_is_reported_as_a_transition() {
        let t = at("2026-01-01T00:00:00.000Z");
        let (h, tr) = Health::next(None, failing("credentials"), &t);
        assert_eq!(
            (h.status, tr),
            (HealthStatus::Failing, Transition::BecameFailing)
        );
    }

    #[test]
    fn status_words_round_trip() {
        for s in [HealthStatus::Ok, HealthStatus::Failing] {
            assert_eq!(HealthStatus::parse(s.as_str()), Ok(s));
        }
        assert!(HealthStatus::parse("bad").is_err());
    }
}
