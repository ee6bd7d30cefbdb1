//! Workloads on the local control plane ([`crate::Options::workloads`]): kube-scheduler places pods,
//! kube-controller-manager's deployment and replicaset controllers make them, and kwok (a fake
//! node, built by `build.sh` with its node and pod stages in `kwok-stages.yaml`) reports them
//! Running and Ready without running any container. Images need not exist.

use std::{collections::BTreeMap, path::Path, time::Duration};

use anyhow::{Context, Result, ensure};
use k8s_openapi::{
    api::core::v1::{Node, NodeStatus},
    apimachinery::pkg::{api::resource::Quantity, apis::meta::v1::ObjectMeta},
};
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};

use crate::{ControlPlane, controlplane::free_ports, wait::eventually};

/// kube-controller-manager's controllers when workloads run: those of
/// [`crate::Options::controller_manager`] and what turns a Deployment into pods.
pub(crate) const CONTROLLERS: &str = "garbagecollector,namespace,deployment,replicaset";

/// The fake node's name.
pub const NODE: &str = "kwok-node-0";

impl ControlPlane {
    /// Starts kube-scheduler and kwok, registers the fake node and waits until it is Ready and
    /// schedulable.
    pub(crate) async fn start_workloads(&self, bin: &Path) -> Result<()> {
        let scheduler = self.kubeconfig_for("system:kube-scheduler", &["system:masters"])?;
        self.run(
            "kube-scheduler",
            &bin.join("kube-scheduler"),
            &[
                format!("--kubeconfig={}", scheduler.display()),
                "--leader-elect=false".to_owned(),
                "--secure-port=0".to_owned(),
                "--v=0".to_owned(),
            ],
        )?;
        let kwok = self.kubeconfig_for("kwok", &["system:masters"])?;
        let [port] = free_ports()?;
        self.run(
            "kwok",
            &bin.join("kwok"),
            &[
                format!("--kubeconfig={}", kwok.display()),
                format!("--config={}", bin.join("kwok-stages.yaml").display()),
                "--manage-all-nodes=true".to_owned(),
                format!("--server-address=127.0.0.1:{port}"),
                "--node-ip=127.0.0.1".to_owned(),
            ],
        )?;
        self.register_fake_node().await
    }

    async fn register_fake_node(&self) -> Result<()> {
        let nodes: Api<Node> = Api::all(self.admin_client().await?);
        let labels = [
            ("kubernetes.io/hostname", NODE),
            ("kubernetes.io/os", "linux"),
            ("type", "kwok"),
        ];
        let node = Node {
            metadata: ObjectMeta {
                name: Some(NODE.to_owned()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                ),
                annotations: Some([("kwok.x-k8s.io/node".to_owned(), "fake".to_owned())].into()),
                ..ObjectMeta::default()
            },
            // What kwok reports (its default lacks ephemeral-storage, which pods may request).
            status: Some(NodeStatus {
                allocatable: Some(capacity()),
                capacity: Some(capacity()),
                ..NodeStatus::default()
            }),
            ..Node::default()
        };
        nodes
            .create(&PostParams::default(), &node)
            .await
            .context("creating the kwok node")?;
        // The apiserver taints every new node not-ready (admission plugin TaintNodesByCondition);
        // the node lifecycle controller, which would lift it once kwok reports Ready, does not run.
        let untaint: serde_yaml::Value = serde_yaml::from_str("spec: {taints: null}")?;
        nodes
            .patch(NODE, &PatchParams::default(), &Patch::Merge(&untaint))
            .await
            .context("removing the new node's not-ready taint")?;
        eventually(Duration::from_secs(60), || async {
            self.ensure_running().map_err(crate::give_up)?;
            let node = nodes.get(NODE).await?;
            let ready = node
                .status
                .and_then(|status| status.conditions)
                .unwrap_or_default()
                .iter()
                .any(|condition| condition.type_ == "Ready" && condition.status == "True");
            ensure!(ready, "kwok has not reported node {NODE} Ready yet");
            Ok(())
        })
        .await
    }
}

/// The fake node's capacity: a roomy machine.
fn capacity() -> BTreeMap<String, Quantity> {
    [
        ("cpu", "32"),
        ("memory", "256Gi"),
        ("ephemeral-storage", "1Ti"),
        ("pods", "110"),
    ]
    .into_iter()
    .map(|(resource, amount)| (resource.to_owned(), Quantity(amount.to_owned())))
    .collect()
}
