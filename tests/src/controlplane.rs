//! passport's local control plane: [`local_controlplane`] with passport's users (alice, bob, carol)
//! and cluster name, its binaries from passport's cache (`tests/controlplane/build.sh`), and
//! passport's CRDs installed when asked.

use std::path::{Path, PathBuf};

use anyhow::Result;
use local_controlplane::{
    ControlPlane, User,
    binaries::{cached_build, with_binaries},
};

/// The cluster's name in kubeconfigs: contexts are `<user>@passport-local`.
pub const CLUSTER_NAME: &str = "passport-local";

/// The ordinary users every control plane has. They hold no rights until a test grants them some.
pub fn users() -> Vec<User> {
    vec![
        User::new("alice", ["developers"]),
        User::new("bob", ["developers"]),
        User::new("carol", ["sre", "approvers"]),
    ]
}

/// A bare control plane with passport's users: no CRDs, no RBAC.
pub async fn start() -> Result<ControlPlane> {
    ControlPlane::options()
        .binaries(binaries_dir()?)
        .cluster_name(CLUSTER_NAME)
        .users(users())
        .start()
        .await
}

/// A control plane with passport's users and CRDs (Established).
pub async fn start_with_crds() -> Result<ControlPlane> {
    let plane = start().await?;
    crate::crds::install(&plane.admin_client().await?).await?;
    Ok(plane)
}

/// A control plane of its own with passport's users that runs workloads: kube-scheduler,
/// kube-controller-manager and a kwok fake node (built on first use). No CRDs.
pub async fn start_with_workloads() -> Result<ControlPlane> {
    let bin = binaries_with(&["kube-controller-manager", "kube-scheduler", "kwok"]).await?;
    ControlPlane::options()
        .binaries(bin)
        .cluster_name(CLUSTER_NAME)
        .users(users())
        .workloads(true)
        .start()
        .await
}

/// The control-plane binaries' directory, with the optional `names` too (built on first use if
/// the directory [`binaries_dir`] names lacks them).
pub async fn binaries_with(names: &'static [&'static str]) -> Result<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("controlplane/build.sh");
    tokio::task::spawn_blocking(move || with_binaries(binaries_dir()?, &script, names)).await?
}

/// Where the control-plane binaries are: `PASSPORT_CONTROLPLANE_BIN`, or whatever passport's cached
/// build script reports (it builds them on first use).
pub fn binaries_dir() -> Result<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("controlplane/build.sh");
    cached_build("PASSPORT_CONTROLPLANE_BIN", &script)
}
