//! Leader election on a Lease in the operator's namespace (kube-lease-manager), so several replicas
//! can run for availability while exactly one reconciles: two leaders would send every SSM command
//! twice.

use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::{sync::watch, task::JoinHandle};

/// The Lease's name; the operator's Role grants get/update/patch on exactly this name.
pub const LEASE_NAME: &str = "passport-operator";
/// A leader that stops renewing loses the lease after this long.
const LEASE_SECONDS: u64 = 15;
/// The leader renews this long before the lease would lapse.
const GRACE_SECONDS: u64 = 5;

type Watcher = JoinHandle<Result<kube_lease_manager::LeaseManager, LeaseManagerError>>;

#[derive(Debug)]
pub struct Leadership {
    state: watch::Receiver<bool>,
    watcher: Watcher,
}

impl Leadership {
    /// Starts competing for the lease as `identity` (the pod name, or anything unique).
    pub async fn start(client: Client, namespace: &str, identity: &str) -> Result<Self, LeaseManagerError> {
        let manager = LeaseManagerBuilder::new(client, LEASE_NAME)
            .with_namespace(namespace)
            .with_identity(identity)
            .with_duration(LEASE_SECONDS)
            .with_grace(GRACE_SECONDS)
            .build()
            .await?;
        let (state, watcher) = manager.watch().await;
        Ok(Self { state, watcher })
    }

    /// Resolves once this replica leads (or never, if the election stopped).
    pub async fn acquired(&mut self) {
        if self.state.wait_for(|leader| *leader).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Resolves if this replica stops leading.
    pub async fn lost(&mut self) {
        let _ = self.state.wait_for(|leader| !*leader).await;
    }

    /// Gives the lease up, so a standby takes over at once instead of after it lapses.
    pub async fn release(self) {
        drop(self.state);
        if tokio::time::timeout(Duration::from_secs(5), self.watcher)
            .await
            .is_err()
        {
            tracing::warn!("could not release the leader lease in time; it lapses in {LEASE_SECONDS}s");
        }
    }
}

/// This replica's identity in the election: the pod name when Kubernetes gives it one.
pub fn identity() -> String {
    std::env::var("POD_NAME").unwrap_or_else(|_| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!("{}-{}", host.trim(), std::process::id())
    })
}
