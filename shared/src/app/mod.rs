//! Use cases: what the service does, in terms of domain values and ports only. Nothing
//! here knows HTTP, Lambda events or the AWS SDK.

pub mod connection;
pub mod integrations;
pub mod provisioning;
pub mod test_connection;

/// In-memory fakes of every port, and the use cases' unit tests through them.
#[cfg(test)]
pub(crate) mod fakes;
#[cfg(test)]
mod tests;
