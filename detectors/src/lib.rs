//! Pure detectors.

pub mod timeout;
