//! Where the control plane's binaries come from: a directory the caller names, or a build script that
//! builds them once per machine into a cache and prints the directory.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context, Result, bail};

/// Names a ready directory with `etcd` and `kube-apiserver` (and `kube-controller-manager`,
/// `toxiproxy` where used), skipping the build.
pub const BIN_ENV: &str = "LOCAL_CONTROLPLANE_BIN";

/// This crate's build script (`build.sh`): etcd and kube-apiserver from their Go modules (`go/`), cached
/// in `LOCAL_CONTROLPLANE_CACHE_DIR` (default `~/.cache/local-controlplane`).
pub fn build_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("build.sh")
}

/// `$LOCAL_CONTROLPLANE_BIN`, or what [`build_script`] reports (it builds on first use).
pub fn default_dir() -> Result<PathBuf> {
    cached_build(BIN_ENV, &build_script())
}

/// What a cached build script reports (a directory, on stdout), unless `env_var` names one already.
/// Such scripts build on first use per machine and print progress on stderr, passed through here.
pub fn cached_build(env_var: &str, script: &Path) -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(env_var) {
        return Ok(PathBuf::from(dir));
    }
    let output = Command::new("bash")
        .arg(script)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !output.status.success() {
        bail!(
            "{} failed ({}); see its output above",
            script.display(),
            output.status
        );
    }
    Ok(PathBuf::from(String::from_utf8(output.stdout)?.trim()))
}

/// `dir` if it holds every one of `names`; otherwise what `script` (a cached build script as above)
/// reports after building just those. For optional binaries a directory named by an environment
/// variable may lack, e.g. `kube-controller-manager` in a directory built before it was added.
pub fn with_binaries(dir: PathBuf, script: &Path, names: &[&str]) -> Result<PathBuf> {
    if names.iter().all(|name| dir.join(name).exists()) {
        return Ok(dir);
    }
    let output = Command::new("bash")
        .arg(script)
        .args(names)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !output.status.success() {
        bail!(
            "{} {} failed ({}); see its output above",
            script.display(),
            names.join(" "),
            output.status
        );
    }
    Ok(PathBuf::from(String::from_utf8(output.stdout)?.trim()))
}
