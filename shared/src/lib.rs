//! The InfraKitchen AWS integration service, shared by its Lambda functions.
//!
//! Dependencies point one way: `http` and `events` (entry points) call `app` (use cases),
//! which works on `domain` (validated values and records) through `ports` (traits for the
//! outside world); `aws` implements the ports with the AWS SDK; `error` is the use cases'
//! error type, shared by ports and adapters; `wiring` builds it all once.
//! `tests/layering.rs` checks the direction.

pub mod app;
pub mod aws;
pub mod domain;
pub mod error;
pub mod events;
pub mod http;
pub mod ports;
pub mod telemetry;
pub mod wiring;
