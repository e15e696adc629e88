//! Use cases: what the service does, in terms of domain values and ports only. Nothing
//! here knows HTTP, Lambda events or the AWS SDK.

pub mod connection;
pub mod health;
pub mod integrations;
pub mod keys;
pub mod provisioning;
pub mod test_connection;

/// In-memory fakes of every port (and the store contract suite the DynamoDB store runs
/// too, from the harness's tests, with the `fakes` feature).
#[cfg(any(test, feature = "fakes"))]
#[cfg_attr(not(test), allow(dead_code, unused_imports))]
pub mod fakes;
#[cfg(test)]
mod tests;
