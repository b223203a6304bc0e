// Included by the build scripts of the crates that print a version: sets CAIRN_GIT_COMMIT to
// the commit being built (12 hex digits), or "unknown" outside a git checkout. A
// CAIRN_GIT_COMMIT in the environment wins (packagers).

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
    // Rebuild when HEAD moves: the HEAD file, the branch it names and the packed refs, each
    // where git keeps it (a linked worktree keeps branches in the common directory). Only
    // files that exist are watched: a missing one would rebuild every time.
    let mut watch = vec!["HEAD".to_string(), "packed-refs".to_string()];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watch.push(branch);
    }
    for name in watch {
        if let Some(path) = git(&["rev-parse", "--path-format=absolute", "--git-path", &name])
            && std::path::Path::new(&path).exists()
        {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=CAIRN_GIT_COMMIT={commit}");
}
