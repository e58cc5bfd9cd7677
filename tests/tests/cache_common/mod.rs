//! Shared by the cache tests: a private Azurite (blob service only) with container creation,
//! and the consistency checker that every cache test feeds its recorded reads into.
#![allow(dead_code)]

use base64::Engine;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
/// The documented, public development key of Azurite (not a secret).
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A private Azurite blob service on a free loopback port with its own data dir.
pub struct Azurite {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

fn azurite_bin() -> PathBuf {
    let prefix = std::env::var("AZURITE_PREFIX").unwrap_or_else(|_| "/opt/azurite".into());
    let bin = PathBuf::from(prefix).join("node_modules/.bin/azurite-blob");
    assert!(
        bin.exists(),
        "{} not found: run tests/setup/servers.sh (tests/run.sh does)",
        bin.display()
    );
    bin
}

impl Azurite {
    pub fn start() -> Azurite {
        let dir = tempfile::tempdir().unwrap();
        let port = lookout_e2e::free_port();
        let log = std::fs::File::create(dir.path().join("azurite.log")).unwrap();
        let child = Command::new(azurite_bin())
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .arg("--location")
            .arg(dir.path())
            .args(["--skipApiVersionCheck", "--loose", "--disableTelemetry"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn azurite-blob");
        let az = Azurite {
            child,
            port,
            _dir: dir,
        };
        lookout_e2e::wait_for("azurite to listen", Duration::from_secs(30), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        az
    }

    /// The Azurite process, for a nemesis that stops it (SIGSTOP) to make an outage.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{AZURITE_ACCOUNT}", self.port)
    }

    /// object_store options reaching this Azurite (path-style URLs, shared key).
    pub fn options(&self) -> BTreeMap<String, String> {
        [
            ("account_name", AZURITE_ACCOUNT.to_string()),
            ("access_key", AZURITE_KEY.to_string()),
            ("endpoint", self.endpoint()),
            ("allow_http", "true".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// The same options as a TOML inline table, for agent configs.
    pub fn options_toml(&self) -> String {
        let parts: Vec<String> = self
            .options()
            .iter()
            .map(|(k, v)| format!("{k} = \"{v}\""))
            .collect();
        format!("{{ {} }}", parts.join(", "))
    }

    /// Create a container with a SharedKey-signed `PUT ?restype=container` (object_store does
    /// not create containers).
    pub async fn create_container(&self, name: &str) {
        let date = httpdate(std::time::SystemTime::now());
        let version = "2021-08-06";
        let resource = format!("/{AZURITE_ACCOUNT}/{AZURITE_ACCOUNT}/{name}\nrestype:container");
        let to_sign = format!(
            "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n{resource}"
        );
        let key = base64::engine::general_purpose::STANDARD
            .decode(AZURITE_KEY)
            .unwrap();
        let sig =
            base64::engine::general_purpose::STANDARD.encode(hmac_sha256(&key, to_sign.as_bytes()));
        let url = format!("{}/{name}?restype=container", self.endpoint());
        let status = lookout_e2e::client()
            .put(&url)
            .header("x-ms-date", &date)
            .header("x-ms-version", version)
            .header("content-length", "0")
            .header(
                "authorization",
                format!("SharedKey {AZURITE_ACCOUNT}:{sig}"),
            )
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        assert!(
            status == 201 || status == 409,
            "create container {name}: HTTP {status}"
        );
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// HMAC-SHA256 (RFC 2104) over sha2, written out because it is ten lines and the tests need
/// nothing else of a MAC crate.
fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&ipad)
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize()
        .into()
}

/// RFC 1123 date for `x-ms-date`.
fn httpdate(t: std::time::SystemTime) -> String {
    let secs = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    let wd = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let mn = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(mo - 1) as usize];
    format!("{wd}, {d:02} {mn} {y} {h:02}:{m:02}:{s:02} GMT")
}

/// One recorded read: which server, when it started and ended on the test's one monotonic
/// clock, what version it returned, and whether it was a strong read.
#[derive(Debug, Clone)]
pub struct Read {
    pub server: usize,
    pub start: Instant,
    pub end: Instant,
    pub version: u64,
    pub strong: bool,
}

/// A time span during which a server is exempt from the freshness property (faults injected
/// on it, or it was restarting).
#[derive(Debug, Clone)]
pub struct Exempt {
    pub server: usize,
    pub from: Instant,
    pub to: Instant,
}

/// What the checker found; `violations` must be empty.
#[derive(Debug, Default)]
pub struct Verdict {
    pub reads: usize,
    pub strong_reads: usize,
    pub freshness_checked: usize,
    pub violations: Vec<String>,
}

impl Verdict {
    pub fn assert_ok(&self) {
        assert!(
            self.violations.is_empty(),
            "{} violations (first 10): {:#?}",
            self.violations.len(),
            &self.violations[..self.violations.len().min(10)]
        );
    }
}

/// Check the properties of the issue over `reads`:
/// 1. per server (restarts included), a read that starts after another ended returns ≥ its version;
/// 2. a strong read that starts after ANY read (any server) returned v returns ≥ v;
/// 3. every version published at P is served by every server not exempt over
///    [P, P + `fresh_within`] by a read ending no later than P + `fresh_within`.
pub fn check(
    reads: &[Read],
    publications: &BTreeMap<u64, Instant>,
    servers: usize,
    exempt: &[Exempt],
    fresh_within: Duration,
    run_end: Instant,
) -> Verdict {
    let mut v = Verdict {
        reads: reads.len(),
        strong_reads: reads.iter().filter(|r| r.strong).count(),
        ..Default::default()
    };
    // 1. Monotonic per server.
    let mut by_server: HashMap<usize, Vec<&Read>> = HashMap::new();
    for r in reads {
        by_server.entry(r.server).or_default().push(r);
    }
    for (s, rs) in &mut by_server {
        rs.sort_by_key(|r| r.end);
        // Max version among reads that ENDED before each read started.
        let mut ends: Vec<(Instant, u64)> = Vec::new();
        let mut best = 0;
        for r in rs.iter() {
            best = best.max(r.version);
            ends.push((r.end, best));
        }
        for r in rs.iter() {
            let i = ends.partition_point(|(e, _)| *e < r.start);
            if i > 0 && ends[i - 1].1 > r.version {
                v.violations.push(format!(
                    "server {s}: read returned {} after an earlier read on it returned {}",
                    r.version,
                    ends[i - 1].1
                ));
            }
        }
    }
    // 2. Strong reads see everything that finished before they started.
    let mut all: Vec<&Read> = reads.iter().collect();
    all.sort_by_key(|r| r.end);
    let mut prefix: Vec<(Instant, u64, usize)> = Vec::new();
    let mut best = (0, 0);
    for r in &all {
        if r.version > best.0 {
            best = (r.version, r.server);
        }
        prefix.push((r.end, best.0, best.1));
    }
    let t0 = reads.iter().map(|r| r.start).min();
    let at = |t: Instant| t0.map(|t0| t.duration_since(t0)).unwrap_or_default();
    for r in reads.iter().filter(|r| r.strong) {
        let i = prefix.partition_point(|(e, _, _)| *e < r.start);
        if i > 0 && prefix[i - 1].1 > r.version {
            v.violations.push(format!(
                "strong read on server {} over {:?}..{:?} returned {} after server {} had returned {}",
                r.server,
                at(r.start),
                at(r.end),
                r.version,
                prefix[i - 1].2,
                prefix[i - 1].1
            ));
        }
    }
    // 3. Freshness.
    for (&version, &published) in publications {
        let deadline = published + fresh_within;
        if deadline > run_end {
            continue;
        }
        for s in 0..servers {
            let exempted = exempt
                .iter()
                .any(|e| e.server == s && e.from <= deadline && e.to >= published);
            if exempted {
                continue;
            }
            v.freshness_checked += 1;
            let served = by_server.get(&s).is_some_and(|rs| {
                rs.iter()
                    .any(|r| r.version >= version && r.end <= deadline + Duration::from_millis(50))
            });
            if !served {
                v.violations.push(format!(
                    "server {s} did not serve version {version} within {fresh_within:?} of its publication"
                ));
            }
        }
    }
    v
}

/// Same version ⇒ same bytes, on every agent and every read: `reads` are (agent, version,
/// content hash). One violation per version served with a second hash.
pub fn same_version_same_bytes(reads: &[(usize, u64, String)]) -> Vec<String> {
    let mut first: BTreeMap<u64, (usize, &str)> = BTreeMap::new();
    let mut violations = Vec::new();
    let mut reported = std::collections::BTreeSet::new();
    for (agent, version, sha) in reads {
        let (a0, s0) = *first.entry(*version).or_insert((*agent, sha));
        if s0 != sha && reported.insert(*version) {
            violations.push(format!(
                "version {version}: agent {a0} served {}…, agent {agent} served {}…",
                &s0[..s0.len().min(12)],
                &sha[..sha.len().min(12)]
            ));
        }
    }
    violations
}

#[test]
fn same_version_same_bytes_catches_two_bodies() {
    let ok = [
        (0, 1, "aa".to_string()),
        (1, 1, "aa".into()),
        (1, 2, "bb".into()),
    ];
    assert!(same_version_same_bytes(&ok).is_empty());
    let bad = [
        (0, 1, "aa".to_string()),
        (1, 1, "cc".into()),
        (1, 1, "cc".into()),
    ];
    assert_eq!(same_version_same_bytes(&bad).len(), 1);
}

#[test]
fn checker_catches_violations() {
    let t0 = Instant::now();
    let ms = |n| t0 + Duration::from_millis(n);
    let r = |server, s, e, version, strong| Read {
        server,
        start: ms(s),
        end: ms(e),
        version,
        strong,
    };
    let pubs = BTreeMap::from([(2, ms(0))]);
    let ok = [
        r(0, 0, 10, 2, false),
        r(0, 20, 30, 2, true),
        r(1, 5, 15, 2, false),
    ];
    check(&ok, &pubs, 2, &[], Duration::from_millis(100), ms(1000)).assert_ok();
    let down = [
        r(0, 0, 10, 2, false),
        r(0, 20, 30, 1, false),
        r(1, 5, 15, 2, false),
    ];
    assert_eq!(
        check(&down, &pubs, 2, &[], Duration::from_millis(100), ms(1000))
            .violations
            .len(),
        1
    );
    let stale_strong = [r(0, 0, 10, 2, false), r(1, 20, 30, 1, true)];
    assert!(
        !check(
            &stale_strong,
            &BTreeMap::new(),
            2,
            &[],
            Duration::from_millis(100),
            ms(1000)
        )
        .violations
        .is_empty()
    );
    let late = [r(0, 500, 510, 2, false), r(1, 5, 15, 2, false)];
    assert_eq!(
        check(&late, &pubs, 2, &[], Duration::from_millis(100), ms(1000))
            .violations
            .len(),
        1
    );
}

/// SIGKILL an agent and start it again on the same config and data dir, logging with
/// `log_filter` (`LOOKOUT_LOG`) to the same file.
pub fn restart(agent: &mut lookout_e2e::Agent, log_filter: &str) {
    let _ = agent.child.kill();
    let _ = agent.child.wait();
    let log = std::fs::OpenOptions::new()
        .append(true)
        .open(&agent.log_path)
        .unwrap();
    agent.child = Command::new(lookout_e2e::lookout_bin())
        .arg("run")
        .arg("--config")
        .arg(&agent.config_path)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .env("LOOKOUT_LOG", log_filter)
        .spawn()
        .unwrap();
}

/// Wait (at most 30 s) until the agent on `port` answers /readyz with 200.
pub async fn wait_ready(port: u16) {
    let client = lookout_e2e::client();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await;
        if r.is_ok_and(|r| r.status() == 200) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "agent on port {port} not ready in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `[[cache]]` of the multi-agent tests: a command source that counts its loads in
/// `WORK/loads`, fails while `WORK/fail` exists, else prints `WORK/doc`; 200 ms checks, 1 s
/// refreshes and claims.
pub fn agents_cache_toml(work: &std::path::Path, blob: &str, options: &str) -> String {
    let script = format!(
        "echo x >> {w}/loads; sleep 0.2; if [ -e {w}/fail ]; then exit 1; fi; cat {w}/doc",
        w = work.display()
    );
    format!(
        "[[cache]]\nname = \"fleet\"\nsource = {{ command = [\"sh\", \"-c\", \"{script}\"] }}\nblob = \"{blob}\"\nblob_options = {options}\ncheck_interval = \"200ms\"\nrefresh_interval = \"1s\"\nclaim_ttl = \"1s\"\nsource_timeout = \"800ms\"\n"
    )
}

/// How many times the source of [`agents_cache_toml`] has loaded.
pub fn source_loads(work: &std::path::Path) -> usize {
    std::fs::read_to_string(work.join("loads"))
        .unwrap_or_default()
        .lines()
        .count()
}
