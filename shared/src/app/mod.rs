//! Use cases: what the service does, in terms of domain values and ports only. Nothing
//! here knows HTTP, Lambda events or the AWS SDK.

pub mod connection;
pub mod integrations;
pub mod provisioning;
pub mod test_connection;
