//! The domain: validated values, the integration record and its state bucket, and the
//! policy documents of the setup guide. Pure data and rules: no I/O.

pub mod integration;
pub mod policies;

pub use integration::*;
