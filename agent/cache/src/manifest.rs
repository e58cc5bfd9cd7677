//! The manifest: the one small, mutable object per cache in the blob tier. It names the
//! current content-addressed data object and carries the fleet-wide refresh state (epoch,
//! consecutive failures, the current claim). Every change is a compare-and-swap on it.
//!
//! Format evolution: `format` is checked before anything else; a reader that does not know
//! the format keeps its last good version and never overwrites the manifest (a newer agent
//! wrote it).

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The manifest format this agent reads and writes.
pub const FORMAT: u32 = 1;

/// The largest manifest accepted (they are a few hundred bytes).
pub const MAX_MANIFEST_BYTES: u64 = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    /// Content version: increases by one each time the published content changes; 0 = none.
    pub version: u64,
    /// The data object of `version`.
    pub data: Option<DataRef>,
    /// Completed refresh attempts (successful or not), fleet-wide. Observers restart their
    /// local refresh deadline when they first see a new epoch.
    pub epoch: u64,
    /// Consecutive failed refresh attempts (source down): shortens the retry delay.
    pub failures: u32,
    /// Who is refreshing right now, if anybody.
    pub claim: Option<Claim>,
    /// The agent that wrote this manifest (for people troubleshooting).
    pub writer: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataRef {
    /// Lower-case hex SHA-256 of the data: also its object name.
    pub sha256: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claim {
    /// The claiming cache instance (host, pid and a random id).
    pub owner: String,
    /// Unique per claim: observers time a claim from when they first saw this nonce.
    pub nonce: String,
}

#[derive(Debug, Error, PartialEq)]
pub enum ManifestError {
    #[error("manifest format {0} is not supported (this agent knows format {FORMAT})")]
    UnknownFormat(u64),
    #[error("manifest is not valid: {0}")]
    Garbage(String),
}

impl Manifest {
    /// An empty manifest: nothing published yet.
    pub fn empty(writer: &str) -> Self {
        Self {
            format: FORMAT,
            version: 0,
            data: None,
            epoch: 0,
            failures: 0,
            claim: None,
            writer: writer.into(),
        }
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, ManifestError> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Garbage(e.to_string()))?;
        match value.get("format").and_then(|f| f.as_u64()) {
            Some(f) if f == FORMAT as u64 => {}
            Some(f) => return Err(ManifestError::UnknownFormat(f)),
            None => return Err(ManifestError::Garbage("no \"format\" field".into())),
        }
        let m: Manifest =
            serde_json::from_value(value).map_err(|e| ManifestError::Garbage(e.to_string()))?;
        match &m.data {
            None if m.version != 0 => {
                return Err(ManifestError::Garbage(format!(
                    "version {} names no data",
                    m.version
                )));
            }
            Some(d) if !is_sha256_hex(&d.sha256) => {
                return Err(ManifestError::Garbage(format!(
                    "data hash {:?} is not a SHA-256",
                    d.sha256
                )));
            }
            _ => {}
        }
        Ok(m)
    }

    pub fn to_bytes(&self) -> bytes::Bytes {
        // Serializing plain structs of strings and integers cannot fail.
        bytes::Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }
}

/// The key of the write-once marker of `version` under the cache `name`. Zero-padded so that
/// a listing sorts by version. A marker is created (create-if-absent) before any manifest
/// names its version, and it holds that version's [`DataRef`]: a version number, once taken,
/// names one content for good, and after a wipe the highest marker says where to publish next.
pub fn version_key(name: &str, version: u64) -> String {
    format!("{name}/versions/{version:020}")
}

/// The version of a marker key (see [`version_key`]); `None` for anything else.
pub fn marker_version(key: &str) -> Option<u64> {
    let last = key.rsplit('/').next()?;
    (last.len() == 20 && last.bytes().all(|b| b.is_ascii_digit()))
        .then(|| last.parse().ok())
        .flatten()
}

impl DataRef {
    /// Parse a version marker's body; it must name a SHA-256.
    pub fn parse_marker(bytes: &[u8]) -> Result<Self, ManifestError> {
        let d: DataRef =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Garbage(e.to_string()))?;
        if !is_sha256_hex(&d.sha256) {
            return Err(ManifestError::Garbage(format!(
                "marker hash {:?} is not a SHA-256",
                d.sha256
            )));
        }
        Ok(d)
    }

    pub fn to_bytes(&self) -> bytes::Bytes {
        bytes::Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }
}

pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejections() {
        let mut m = Manifest::empty("me");
        m.version = 3;
        m.data = Some(DataRef {
            sha256: "ab".repeat(32),
            size: 5,
        });
        m.claim = Some(Claim {
            owner: "o".into(),
            nonce: "n".into(),
        });
        assert_eq!(Manifest::parse(&m.to_bytes()).unwrap(), m);
        assert_eq!(
            Manifest::parse(br#"{"format": 7, "whatever": 1}"#),
            Err(ManifestError::UnknownFormat(7))
        );
        assert!(matches!(
            Manifest::parse(b"\x00garbage"),
            Err(ManifestError::Garbage(_))
        ));
        assert!(matches!(
            Manifest::parse(br#"{"format":1,"version":2,"data":null,"epoch":0,"failures":0,"claim":null,"writer":""}"#),
            Err(ManifestError::Garbage(_))
        ));
        let bad_hash = String::from_utf8(m.to_bytes().to_vec())
            .unwrap()
            .replace(&"ab".repeat(32), "../../etc/passwd");
        assert!(matches!(
            Manifest::parse(bad_hash.as_bytes()),
            Err(ManifestError::Garbage(_))
        ));
    }

    use proptest::prelude::*;

    fn arb_manifest() -> impl Strategy<Value = Manifest> {
        (
            any::<u64>(),
            proptest::option::of(("[0-9a-f]{64}", any::<u64>())),
            any::<u64>(),
            any::<u32>(),
            proptest::option::of(("\\PC{0,20}", "\\PC{0,20}")),
            "\\PC{0,30}",
        )
            .prop_map(|(version, data, epoch, failures, claim, writer)| {
                let data = data.map(|(sha256, size)| DataRef { sha256, size });
                Manifest {
                    format: FORMAT,
                    version: if data.is_some() { version } else { 0 },
                    data,
                    epoch,
                    failures,
                    claim: claim.map(|(owner, nonce)| Claim { owner, nonce }),
                    writer,
                }
            })
    }

    proptest! {
        /// Every manifest this agent writes reads back as itself.
        #[test]
        fn every_valid_manifest_round_trips(m in arb_manifest()) {
            prop_assert_eq!(Manifest::parse(&m.to_bytes()).unwrap(), m);
        }

        /// Any bytes: parsing never panics, and whatever it accepts is well formed (a data hash
        /// that is a SHA-256, no version without data, the known format).
        #[test]
        fn any_bytes_parse_to_a_well_formed_manifest_or_an_error(
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            if let Ok(m) = Manifest::parse(&bytes) {
                prop_assert_eq!(m.format, FORMAT);
                prop_assert!(m.data.as_ref().is_some_and(|d| is_sha256_hex(&d.sha256)) || m.version == 0);
            }
        }

        /// A valid manifest with one byte changed, dropped or inserted: never a panic, and an
        /// accepted result is still well formed.
        #[test]
        fn mutated_manifests_are_rejected_or_well_formed(
            m in arb_manifest(),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            op in 0u8..3,
        ) {
            let mut bytes = m.to_bytes().to_vec();
            let i = at.index(bytes.len());
            match op {
                0 => bytes[i] = byte,
                1 => { bytes.remove(i); }
                _ => bytes.insert(i, byte),
            }
            if let Ok(p) = Manifest::parse(&bytes) {
                prop_assert_eq!(p.format, FORMAT);
                prop_assert!(p.data.as_ref().is_some_and(|d| is_sha256_hex(&d.sha256)) || p.version == 0);
            }
        }

        /// Version markers: keys sort by version and read back; marker bodies must name a hash.
        #[test]
        fn markers_round_trip(v in any::<u64>(), w in any::<u64>(), sha in "[0-9a-f]{64}", size in any::<u64>()) {
            let (kv, kw) = (version_key("c", v), version_key("c", w));
            prop_assert_eq!(marker_version(&kv), Some(v));
            prop_assert_eq!(kv.cmp(&kw), v.cmp(&w));
            let d = DataRef { sha256: sha, size };
            prop_assert_eq!(DataRef::parse_marker(&d.to_bytes()).unwrap(), d);
            let bad = DataRef { sha256: "../x".into(), size };
            prop_assert!(DataRef::parse_marker(&bad.to_bytes()).is_err());
        }

        #[test]
        fn marker_version_rejects_other_keys(key in "\\PC{0,40}") {
            if let Some(v) = marker_version(&key) {
                let tail = format!("{:020}", v);
                prop_assert!(key.ends_with(&tail));
            }
        }
    }
}
