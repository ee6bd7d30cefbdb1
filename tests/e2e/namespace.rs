//! Deleting a namespace ends the access granted in it: with kube-controller-manager running (its
//! namespace and garbage-collector controllers), the namespace controller deletes every AccessRequest
//! in a deleted namespace; the operator's finalizer holds each one until the user it provisioned is
//! gone from every instance, and only then does the namespace finish terminating.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, ensure};
use futures::TryStreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, ResourceExt,
    api::DeleteParams,
    runtime::{WatchStreamExt, watcher},
};
use passport_crds::{AccessRequest, Phase};
use passport_tests::{
    ControlPlane, aws::AwsEmulator, controlplane, crds, operator::OperatorProcess, ssh::SshClient, wait,
};

use crate::{
    E2e, alone,
    scenario::{Scenario, online_instance, username},
};

const FINALIZER: &str = "passport.dev/revoke";
const NAMESPACE: &str = "doomed";

pub fn trials() -> Vec<E2e> {
    vec![alone(
        "namespace::deletion_revokes_before_the_namespace_goes",
        deletion_revokes,
    )]
}

/// A control plane of this test's own, with kube-controller-manager (built on first use).
async fn plane_with_controller_manager() -> Result<ControlPlane> {
    let bin = controlplane::binaries_with(&["kube-controller-manager"]).await?;
    let plane = ControlPlane::options()
        .binaries(bin)
        .cluster_name(controlplane::CLUSTER_NAME)
        .users(controlplane::users())
        .controller_manager(true)
        .start()
        .await?;
    crds::install(&plane.admin_client().await?).await?;
    Ok(plane)
}

async fn deletion_revokes() -> Result<()> {
    let started = Instant::now();
    let emulator = AwsEmulator::start().await?;
    let plane = plane_with_controller_manager().await?;
    let operator = OperatorProcess::start(&plane, &emulator.env_vars())?;
    let instance = online_instance(&emulator).await?;
    let s = Scenario::new(
        &plane,
        &emulator,
        &operator,
        NAMESPACE.into(),
        &["alice"],
        &[instance.id()],
    )
    .await?;
    s.request("r", "alice", "1h", &[instance.id()])?;
    let active = s.wait_phase("r", Phase::Active, Duration::from_secs(60)).await?;
    let user = username(&active)?;
    instance.exec(&["id", &user]).await?.ok()?;
    let ca = s.ca_private_key().await?;
    let client = SshClient::new(&instance, &ca, &active, "-1m:+10m").await?;
    let mut held = client.hold_open()?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    ensure!(held.try_wait()?.is_none(), "the held-open session ended early");

    // Every state of the request from now on, to show the finalizer held it while it was revoked.
    let seen = Arc::new(Mutex::new(Vec::<AccessRequest>::new()));
    let (listed_tx, listed_rx) = tokio::sync::oneshot::channel();
    let watch = tokio::spawn({
        let (requests, seen) = (s.requests.clone(), seen.clone());
        async move {
            let mut listed = Some(listed_tx);
            let stream = watcher(requests, watcher::Config::default()).default_backoff();
            let mut stream = std::pin::pin!(stream);
            while let Ok(Some(event)) = stream.try_next().await {
                match event {
                    watcher::Event::InitDone => {
                        if let Some(tx) = listed.take() {
                            let _ = tx.send(());
                        }
                    }
                    watcher::Event::Apply(r) | watcher::Event::InitApply(r) | watcher::Event::Delete(r) => {
                        seen.lock().unwrap_or_else(|p| p.into_inner()).push(r);
                    }
                    watcher::Event::Init => {}
                }
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), listed_rx)
        .await
        .context("the AccessRequest watch did not list in time")??;

    let deleting = Instant::now();
    let namespaces: Api<Namespace> = Api::all(s.admin.clone());
    namespaces.delete(NAMESPACE, &DeleteParams::default()).await?;
    s.wait_gone("r", Duration::from_secs(60)).await?;
    let request_gone = deleting.elapsed();
    let gone = |ns: Option<&Namespace>| ns.is_none();
    if let Err(err) = wait::object(&namespaces, NAMESPACE, Duration::from_secs(60), gone).await {
        let ns = namespaces.get_opt(NAMESPACE).await?.and_then(|ns| ns.status);
        anyhow::bail!("namespace {NAMESPACE} did not finish terminating ({err:#}): {ns:?}");
    }
    let namespace_gone = deleting.elapsed();
    watch.abort();

    let states = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let held_back = states
        .iter()
        .find(|r| r.metadata.deletion_timestamp.is_some() && r.finalizers().iter().any(|f| f == FINALIZER));
    ensure!(
        held_back.is_some(),
        "never saw the AccessRequest deleted while its finalizer held it: {:?}",
        states
            .iter()
            .map(|r| (
                r.metadata.deletion_timestamp.is_some(),
                r.finalizers().to_vec(),
                r.status.as_ref().map(|s| s.phase)
            ))
            .collect::<Vec<_>>()
    );
    let session = tokio::time::timeout(Duration::from_secs(10), held.wait()).await;
    ensure!(
        session.is_ok(),
        "the held-open SSH session survived the namespace"
    );
    let id = instance.exec(&["id", &user]).await?;
    ensure!(
        !id.success(),
        "user {user} still exists after its namespace was deleted"
    );
    let (ok, _, _) = client.run("whoami").await?;
    ensure!(!ok, "a new login succeeded after the namespace was deleted");
    let revokes = emulator
        .commands()
        .await?
        .iter()
        .filter(|c| c.is_for("revoke", &format!("{NAMESPACE}/r")))
        .count();
    ensure!(revokes >= 1, "no revoke command was sent for {NAMESPACE}/r");
    ensure!(
        plane.controller_manager_running(),
        "kube-controller-manager exited"
    );
    eprintln!(
        "namespace: request gone {request_gone:?} and namespace gone {namespace_gone:?} after the delete \
         ({revokes} revoke command(s)); trial took {:?}",
        started.elapsed()
    );
    Ok(())
}
