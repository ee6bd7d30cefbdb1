//! The workspace's own binaries, built on demand so a test always runs the current code.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
};

use anyhow::{Context, Result, bail};

/// Builds `bin` of `package` (a no-op when it is current) and returns its path in the target directory
/// this test binary was built into. With `PASSPORT_BIN_DIR` set, takes `bin` from that directory
/// instead, unbuilt (e.g. binaries built from another checkout, for the bench).
pub fn workspace_binary(package: &str, bin: &str) -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("PASSPORT_BIN_DIR") {
        let path = PathBuf::from(dir).join(bin);
        anyhow::ensure!(path.exists(), "PASSPORT_BIN_DIR holds no {}", path.display());
        return Ok(path);
    }
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
        .args(["build", "--quiet", "--package", package, "--bin", bin])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::null())
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build --package {package} --bin {bin} failed ({status})");
    }
    // This executable lives in <target>/<profile>/deps/ (tests) or <target>/<profile>/ (binaries).
    let exe = std::env::current_exe()?;
    let mut dir = exe
        .parent()
        .context("executable without a directory")?
        .to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(bin);
    anyhow::ensure!(path.exists(), "{} was not built where expected", path.display());
    Ok(path)
}
