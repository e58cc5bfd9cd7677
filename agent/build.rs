//! Build information for `lookout version`: the git commit the binary is built from.
//!
//! `LOOKOUT_GIT_COMMIT` in the build environment wins (a package build from a tarball knows
//! its commit; a git checkout may not be there). Otherwise `git rev-parse HEAD` in the source
//! tree; outside a git checkout, or without git, the commit is `unknown` and the build goes on.
//! The script re-runs when HEAD moves (HEAD, the branch it points to, packed-refs), not on
//! every build.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=LOOKOUT_GIT_COMMIT");
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let commit = std::env::var("LOOKOUT_GIT_COMMIT")
        .ok()
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .or_else(|| git_commit(&dir))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=LOOKOUT_GIT_COMMIT={commit}");
}

/// Run git in `dir`; its trimmed stdout when it succeeds.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn git_commit(dir: &Path) -> Option<String> {
    let commit = git(dir, &["rev-parse", "--verify", "HEAD"])?;
    if !(commit.len() >= 40 && commit.bytes().all(|b| b.is_ascii_hexdigit())) {
        return None;
    }
    let mut watch = vec!["HEAD".to_string(), "packed-refs".to_string()];
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        watch.push(branch);
    }
    for name in watch {
        if let Some(p) = git(dir, &["rev-parse", "--git-path", &name]) {
            let p = dir.join(p);
            // A path that does not exist would make cargo re-run the script on every build.
            if p.exists() {
                println!("cargo:rerun-if-changed={}", p.display());
            }
        }
    }
    Some(commit)
}
