//! The environment the suite shares: one control plane with passport's CRDs, started on first use.

use std::{
    path::PathBuf,
    sync::atomic::{AtomicU32, Ordering},
};

use anyhow::Result;
use k8s_openapi::api::core::v1::Namespace;
use kube::{Api, api::PostParams};
use passport_tests::{ControlPlane, aws::AwsEmulator, controlplane, fixtures, operator::OperatorProcess};
use tokio::sync::OnceCell;

#[derive(Debug, Default)]
pub struct Env {
    plane: OnceCell<ControlPlane>,
    emulator: OnceCell<AwsEmulator>,
    operator: OnceCell<OperatorProcess>,
    namespaces: AtomicU32,
}

impl Env {
    /// The shared control plane, started (and given the CRDs) on first use.
    pub async fn plane(&self) -> Result<&ControlPlane> {
        self.plane.get_or_try_init(controlplane::start_with_crds).await
    }

    /// The shared AWS emulator (moto with passport's extension), started on first use.
    pub async fn emulator(&self) -> Result<&AwsEmulator> {
        self.emulator.get_or_try_init(AwsEmulator::start).await
    }

    /// The operator serving the shared control plane, talking to the shared emulator.
    pub async fn operator(&self) -> Result<&OperatorProcess> {
        let plane = self.plane().await?;
        let emulator = self.emulator().await?;
        self.operator
            .get_or_try_init(|| async { OperatorProcess::start(plane, &emulator.env_vars()) })
            .await
    }

    /// A namespace of this test's own, created fresh.
    pub async fn namespace(&self, prefix: &str) -> Result<String> {
        let plane = self.plane().await?;
        let name = format!("{prefix}-{}", self.namespaces.fetch_add(1, Ordering::Relaxed));
        let api: Api<Namespace> = Api::all(plane.admin_client().await?);
        api.create(&PostParams::default(), &fixtures::namespace(&name))
            .await?;
        Ok(name)
    }

    pub async fn admin_kubeconfig(&self) -> Result<PathBuf> {
        Ok(self.plane().await?.admin_kubeconfig())
    }

    /// Stops the control plane, if this run started one; statics are never dropped, so this is
    /// what leaves no process behind.
    pub async fn shutdown(&self) {
        if let Some(operator) = self.operator.get() {
            operator.kill();
        }
        if let Some(plane) = self.plane.get() {
            plane.stop();
        }
    }
}
