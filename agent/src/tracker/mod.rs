//! The primary tracker. See issue "Primary tracker".

pub mod http;

/// One tracked service. (Filled in by the tracker work.)
pub struct Tracker;
