//! Entry points for non-HTTP events: the DynamoDB stream and the sweeper's schedule, and
//! the provision-bucket function's dispatch over its three triggers.

pub mod health_check;
pub mod provision_bucket;
pub mod stream;
