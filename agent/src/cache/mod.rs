//! The two-tier cache (memory + shared blob with versions). See issue "Two-tier cache".

pub mod http;

/// One configured cache. (Filled in by the cache work.)
pub struct Cache;
