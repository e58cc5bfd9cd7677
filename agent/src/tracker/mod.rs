//! The primary tracker. See issue "Primary tracker".

pub mod http;

/// One tracked service. (Filled in by the tracker work.)
pub struct Tracker;

// TEMPORARY stub so the cache's `primary` source compiles before the tracker lands; the
// tracker's real `get_bytes` replaces it at merge.
impl Tracker {
    pub async fn get_bytes(&self, _path: &str) -> Result<bytes::Bytes, String> {
        Err("the primary tracker is not built yet".into())
    }
}
