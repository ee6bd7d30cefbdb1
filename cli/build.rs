//! Embeds the git commit the plugin is built from as `PASSPORT_GIT_COMMIT` (`kubectl passport
//! version`): the variable of that name when the build sets it (release builds from an archive),
//! else `git rev-parse`, else `unknown` (built outside git).

use std::{path::Path, process::Command};

fn main() {
    println!("cargo:rerun-if-env-changed=PASSPORT_GIT_COMMIT");
    let commit = std::env::var("PASSPORT_GIT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=PASSPORT_GIT_COMMIT={}", commit.trim());
}

/// The commit `HEAD` names, re-read whenever `HEAD` or the branch it points at moves.
fn git_commit() -> Option<String> {
    let git = |args: &[&str]| {
        let out = Command::new("git").args(args).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    let git_dir = git(&["rev-parse", "--absolute-git-dir"])?;
    let git_dir = Path::new(&git_dir);
    println!("cargo:rerun-if-changed={}", git_dir.join("HEAD").display());
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        let common = git(&["rev-parse", "--path-format=absolute", "--git-common-dir"])?;
        println!(
            "cargo:rerun-if-changed={}",
            Path::new(&common).join(&branch).display()
        );
        println!(
            "cargo:rerun-if-changed={}",
            Path::new(&common).join("packed-refs").display()
        );
    }
    git(&["rev-parse", "--short=12", "HEAD"])
}
