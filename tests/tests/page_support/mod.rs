//! Shared by the status-page tests: headless Debian `chromium` (a fresh profile per run, a
//! bounded run time, its console captured from its log) and reading the page's values back
//! (`data-metric` / `data-value`) to compare them with `/metrics`. Not a test file itself.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one browser run may take before it is killed (a loaded CI machine is slow).
const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);

/// The browser under test. A missing browser fails the test: `tests/setup/chromium.sh`
/// installs it.
pub fn chromium() -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join("chromium");
        if p.is_file() {
            return p;
        }
    }
    panic!("chromium not found on PATH: run tests/setup/chromium.sh (tests/run.sh does)");
}

/// What one headless run printed: stdout (the DOM with `--dump-dom`) and the console
/// messages of the page (chromium logs each as `INFO:CONSOLE...] "text", source: URL (line)`).
pub struct Run {
    pub stdout: String,
    pub console: Vec<String>,
    pub stderr: String,
}

/// Run headless chromium on `url` with `args` (plus a fresh profile, no sandbox as root, and
/// console logging to stderr).
pub fn run(url: &str, args: &[&str]) -> Run {
    let profile = tempfile::tempdir().unwrap();
    let out = tempfile::NamedTempFile::new().unwrap();
    let err = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new(chromium())
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
            "--enable-logging=stderr",
            "--v=0",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(out.reopen().unwrap())
        .stderr(err.reopen().unwrap())
        .spawn()
        .expect("spawn chromium");
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(
                status.success(),
                "chromium exited with {status}: {}",
                std::fs::read_to_string(err.path()).unwrap_or_default()
            );
            break;
        }
        if started.elapsed() > BROWSER_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within {BROWSER_TIMEOUT:?} on {url}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let stderr = std::fs::read_to_string(err.path()).unwrap_or_default();
    let console = stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_string)
        .collect();
    Run {
        stdout: std::fs::read_to_string(out.path()).unwrap_or_default(),
        console,
        stderr,
    }
}

/// The DOM of `url` after its scripts ran.
pub fn dump_dom(url: &str) -> Run {
    run(url, &["--dump-dom", "--virtual-time-budget=2000"])
}

/// A full-page-height screenshot of `url` into `png`.
pub fn screenshot(url: &str, png: &Path, width: u32, height: u32) -> Run {
    let r = run(
        url,
        &[
            &format!("--screenshot={}", png.display()),
            &format!("--window-size={width},{height}"),
            "--virtual-time-budget=2000",
        ],
    );
    let bytes =
        std::fs::read(png).unwrap_or_else(|e| panic!("no screenshot at {}: {e}", png.display()));
    assert!(
        bytes.starts_with(b"\x89PNG"),
        "{} is not a PNG",
        png.display()
    );
    r
}

/// Where the tests keep their screenshots: `$CARGO_TARGET_DIR/page-artifacts` (or the
/// workspace's `target/`), kept after the run.
pub fn artifact_dir() -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| lookout_e2e::repo_root().join("target"));
    let dir = target.join("page-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

/// The value of attribute `attr` in every element that has it, in document order.
pub fn attr_values(html: &str, attr: &str) -> Vec<String> {
    let needle = format!(" {attr}=\"");
    html.match_indices(&needle)
        .filter_map(|(i, _)| {
            let rest = &html[i + needle.len()..];
            rest.find('"').map(|end| unescape(&rest[..end]))
        })
        .collect()
}

/// Every `data-metric="K" data-value="V"` pair on the page (the page writes them side by side).
pub fn page_values(html: &str) -> Vec<(String, String)> {
    let keys = attr_values(html, "data-metric");
    let mut out = Vec::new();
    let needle = " data-metric=\"";
    for (i, (pos, _)) in html.match_indices(needle).enumerate() {
        let rest = &html[pos..];
        let tag_end = rest.find('>').unwrap_or(rest.len());
        let tag = &rest[..tag_end];
        let value = attr_values(tag, "data-value").into_iter().next();
        if let Some(v) = value {
            out.push((keys[i].clone(), v));
        }
    }
    out
}

/// `/metrics` as `name{sorted labels}` → value text, the key format of `data-metric`.
pub fn metrics_by_key(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let Some((head, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (name, labels) = match head.find('{') {
            Some(i) => (&head[..i], &head[i + 1..head.len() - 1]),
            None => (head, ""),
        };
        let mut pairs = split_labels(labels);
        pairs.sort();
        let key = if pairs.is_empty() {
            name.to_string()
        } else {
            let inner: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            format!("{name}{{{}}}", inner.join(","))
        };
        out.insert(key, value.to_string());
    }
    out
}

/// `a="x",b="y"` → pairs, with values kept escaped as exposed.
fn split_labels(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(eq) = rest.find("=\"") {
        let key = rest[..eq].trim_start_matches(',').trim().to_string();
        let body = &rest[eq + 2..];
        let mut end = 0;
        let bytes = body.as_bytes();
        while end < bytes.len() {
            if bytes[end] == b'\\' {
                end += 2;
                continue;
            }
            if bytes[end] == b'"' {
                break;
            }
            end += 1;
        }
        out.push((key, body[..end.min(body.len())].to_string()));
        rest = &body[(end + 1).min(body.len())..];
    }
    out
}
