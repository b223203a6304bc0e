// Included by the build scripts of the crates that print a version: sets CAIRN_GIT_COMMIT to
// the commit being built (12 hex digits), or "unknown"
// outside a git checkout. A CAIRN_GIT_COMMIT in the environment wins (packagers).

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-env-changed=CAIRN_GIT_COMMIT");
    if let Ok(c) = std::env::var("CAIRN_GIT_COMMIT") {
        println!("cargo:rustc-env=CAIRN_GIT_COMMIT={c}");
        return;
    }
    // Rebuild when HEAD moves: the HEAD file, the branch it names, and packed refs.
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        println!("cargo:rerun-if-changed={dir}/HEAD");
        println!("cargo:rerun-if-changed={dir}/packed-refs");
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={dir}/{branch}");
        }
    }
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=CAIRN_GIT_COMMIT={commit}");
}
