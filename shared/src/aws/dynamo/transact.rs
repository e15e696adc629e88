//! Running a transaction: which items failed their condition, and re-running one that
//! only lost a `TransactionConflict` to a concurrent transaction.

use super::DynamoStore;
use crate::error::{Dependency, Result};
use crate::ports::WriteOutcome;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::TransactWriteItem;

/// Why DynamoDB cancelled a transaction, as far as the caller can act on it.
#[derive(Debug, PartialEq, Eq)]
enum Cancellation {
    /// Which items failed their condition (`true`): the caller's outcome.
    Conditions(Vec<bool>),
    /// Another transaction held one of the items (`TransactionConflict`): nothing was
    /// written and the same transaction may simply be tried again.
    Conflict,
}

/// Classifies the per-item reason codes of a `TransactionCanceledException`. A failed
/// condition decides the outcome even when another item also conflicted; any other
/// reason (throttling, validation, ...) is not a cancellation the caller can act on.
fn classify_cancellation(codes: &[Option<&str>]) -> Option<Cancellation> {
    let failed: Vec<bool> = codes
        .iter()
        .map(|c| *c == Some("ConditionalCheckFailed"))
        .collect();
    if failed.iter().any(|f| *f) {
        Some(Cancellation::Conditions(failed))
    } else if codes.contains(&Some("TransactionConflict")) {
        Some(Cancellation::Conflict)
    } else {
        None
    }
}

/// Which items of a cancelled transaction failed their condition, or whether it only
/// ran into a concurrent transaction on the same items.
fn cancelled_items(err: &SdkError<TransactWriteItemsError>) -> Option<Cancellation> {
    let SdkError::ServiceError(e) = err else {
        return None;
    };
    let TransactWriteItemsError::TransactionCanceledException(tc) = e.err() else {
        return None;
    };
    let codes: Vec<Option<&str>> = tc.cancellation_reasons().iter().map(|r| r.code()).collect();
    classify_cancellation(&codes)
}

/// Bounds for re-running a transaction that lost a `TransactionConflict`: a few tries
/// with short jittered backoff, never longer than `CONFLICT_RETRY_BUDGET` in all.
const CONFLICT_ATTEMPTS: u32 = 8;
const CONFLICT_RETRY_BUDGET: std::time::Duration = std::time::Duration::from_millis(2_000);

/// Full jitter: a random delay up to 20 ms * 2^retry (at most 320 ms).
fn conflict_backoff(retry: u32) -> std::time::Duration {
    use std::hash::{BuildHasher, Hasher};
    let cap_ms = 20u64 << retry.min(4);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(retry);
    std::time::Duration::from_millis(1 + h.finish() % cap_ms)
}

impl DynamoStore {
    pub(super) async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
        outcome_of: impl Fn(&[bool]) -> WriteOutcome,
    ) -> Result<WriteOutcome> {
        Ok(match self.transact_conditions(items).await? {
            None => WriteOutcome::Written,
            Some(failed) => outcome_of(&failed),
        })
    }

    /// Runs a transaction: `None` when written, else which items failed their condition.
    ///
    /// TransactWriteItems is idempotent through its ClientRequestToken: the SDK fills
    /// one per `send()` and keeps it across its own retries, so a retry after a time-out
    /// whose first attempt did land is not applied twice (the unit tests pin that).
    pub(super) async fn transact_conditions(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<Option<Vec<bool>>> {
        // Concurrent transactions on the same items (e.g. two creates of one name) can be
        // cancelled with `TransactionConflict` before either condition is evaluated. Run
        // it again: the rerun sees the winner's write and fails its condition (409/412).
        let started = std::time::Instant::now();
        let mut retry = 0;
        loop {
            let sent = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            let e = match sent {
                Ok(_) => return Ok(None),
                Err(e) => e,
            };
            match cancelled_items(&e) {
                Some(Cancellation::Conditions(failed)) => return Ok(Some(failed)),
                Some(Cancellation::Conflict)
                    if retry + 1 < CONFLICT_ATTEMPTS
                        && started.elapsed() < CONFLICT_RETRY_BUDGET =>
                {
                    let pause = conflict_backoff(retry);
                    tracing::debug!(retry, ?pause, "transaction conflict; trying again");
                    tokio::time::sleep(pause).await;
                    retry += 1;
                }
                _ => {
                    return Err(crate::aws::unavailable(
                        Dependency::DynamoDb,
                        "TransactWriteItems",
                        e,
                    ))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancellations_are_classified_by_their_reason_codes() {
        use Cancellation::*;
        let ccf = Some("ConditionalCheckFailed");
        let conflict = Some("TransactionConflict");
        assert_eq!(
            classify_cancellation(&[Some("None"), ccf]),
            Some(Conditions(vec![false, true]))
        );
        // A failed condition decides even when another item conflicted.
        assert_eq!(
            classify_cancellation(&[conflict, ccf]),
            Some(Conditions(vec![false, true]))
        );
        assert_eq!(
            classify_cancellation(&[conflict, Some("None")]),
            Some(Conflict)
        );
        assert_eq!(classify_cancellation(&[None, conflict]), Some(Conflict));
        // Anything else is the dependency's problem (a retryable 503).
        assert_eq!(
            classify_cancellation(&[Some("ThrottlingError"), Some("None")]),
            None
        );
        assert_eq!(classify_cancellation(&[]), None);
    }

    fn cancelled(codes: &[&str]) -> TransactWriteItemsError {
        use aws_sdk_dynamodb::types::error::TransactionCanceledException;
        use aws_sdk_dynamodb::types::CancellationReason;
        let mut e = TransactionCanceledException::builder().message("cancelled");
        for c in codes {
            e = e.cancellation_reasons(CancellationReason::builder().code(*c).build());
        }
        TransactWriteItemsError::TransactionCanceledException(e.build())
    }

    async fn transact_with(rule: &aws_smithy_mocks::Rule) -> Result<WriteOutcome> {
        let client = aws_smithy_mocks::mock_client!(
            aws_sdk_dynamodb,
            aws_smithy_mocks::RuleMode::MatchAny,
            [rule]
        );
        DynamoStore::new(client, "table")
            .transact(vec![], |failed| {
                if failed.get(1) == Some(&true) {
                    WriteOutcome::NameTaken
                } else {
                    WriteOutcome::Stale
                }
            })
            .await
    }

    #[tokio::test]
    async fn a_conflicting_transaction_is_run_again_until_its_condition_decides() {
        use aws_smithy_mocks::mock;
        let rule = mock!(aws_sdk_dynamodb::Client::transact_write_items)
            .sequence()
            .error(|| cancelled(&["None", "TransactionConflict"]))
            .times(2)
            .error(|| cancelled(&["None", "ConditionalCheckFailed"]))
            .build();
        assert!(matches!(
            transact_with(&rule).await,
            Ok(WriteOutcome::NameTaken)
        ));
        assert_eq!(rule.num_calls(), 3);

        let rule = mock!(aws_sdk_dynamodb::Client::transact_write_items)
            .sequence()
            .error(|| cancelled(&["TransactionConflict", "None"]))
            .output(|| {
                aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsOutput::builder()
                    .build()
            })
            .build();
        assert!(matches!(
            transact_with(&rule).await,
            Ok(WriteOutcome::Written)
        ));
        assert_eq!(rule.num_calls(), 2);
    }

    #[tokio::test]
    async fn every_transaction_carries_a_client_request_token() {
        use aws_smithy_mocks::mock;
        // The token is what makes the SDK's own retries idempotent in DynamoDB.
        let rule = mock!(aws_sdk_dynamodb::Client::transact_write_items)
            .match_requests(|r| r.client_request_token().is_some_and(|t| !t.is_empty()))
            .then_output(|| {
                aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsOutput::builder()
                    .build()
            });
        let client = aws_smithy_mocks::mock_client!(
            aws_sdk_dynamodb,
            aws_smithy_mocks::RuleMode::MatchAny,
            [&rule]
        );
        let store = DynamoStore::new(client, "table");
        assert_eq!(store.transact_conditions(vec![]).await.unwrap(), None);
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn endless_conflicts_give_up_in_bounded_time_as_unavailable() {
        use aws_smithy_mocks::mock;
        let rule = mock!(aws_sdk_dynamodb::Client::transact_write_items)
            .sequence()
            .error(|| cancelled(&["TransactionConflict", "TransactionConflict"]))
            .repeatedly()
            .build();
        let started = std::time::Instant::now();
        let outcome = transact_with(&rule).await;
        assert!(
            matches!(outcome, Err(crate::error::Error::Unavailable { .. })),
            "{outcome:?}"
        );
        assert!(rule.num_calls() <= CONFLICT_ATTEMPTS as usize);
        assert!(started.elapsed() < CONFLICT_RETRY_BUDGET + std::time::Duration::from_secs(1));
    }

    #[test]
    fn conflict_backoff_is_short_jittered_and_bounded() {
        for retry in 0..CONFLICT_ATTEMPTS {
            let d = conflict_backoff(retry);
            assert!(d >= std::time::Duration::from_millis(1));
            assert!(d <= std::time::Duration::from_millis(320), "{d:?}");
        }
        let worst: u64 = (0..CONFLICT_ATTEMPTS).map(|r| 20u64 << r.min(4)).sum();
        assert!(worst < 3_000, "{worst} ms");
    }
}
