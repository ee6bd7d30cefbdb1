//! The operator binary against a real apiserver: it refuses to start without its CRDs, serves health
//! and metrics with nothing but its least-privilege RBAC, and exits cleanly on SIGTERM.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use passport_tests::{
    ControlPlane, binaries::workspace_binary, controlplane, operator::OperatorProcess, wait,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{E2e, alone, test};

pub fn trials() -> Vec<E2e> {
    vec![
        alone(
            "operator::refuses_to_start_without_crds",
            refuses_to_start_without_crds,
        ),
        alone("operator::standby_takes_over_the_lease", standby_takes_over),
        test("operator::serves_health_and_stops_on_sigterm", |env| async move {
            let plane = env.plane().await?;
            serves_health_and_stops_on_sigterm(plane).await
        }),
    ]
}

async fn refuses_to_start_without_crds() -> Result<()> {
    let bare = controlplane::start().await?;
    let output = Command::new(workspace_binary("passport-operator", "passport-operator")?)
        .env("KUBECONFIG", bare.admin_kubeconfig())
        .args(["--http-addr", "127.0.0.1:0"])
        .output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        !output.status.success(),
        "operator started without CRDs: {stderr}"
    );
    ensure!(
        stderr.contains("CRD accessrequests.passport.dev")
            && stderr.contains("kubectl apply -f deploy/crds.yaml"),
        "the refusal does not name the CRD and how to install it: {stderr}"
    );
    Ok(())
}

async fn serves_health_and_stops_on_sigterm(plane: &ControlPlane) -> Result<()> {
    let operator = OperatorProcess::start(plane, &[])?;
    let port = operator.http_port();
    let checks = async {
        let ready = wait_for_ok(port, "/readyz").await?;
        ensure!(ready.ends_with("ok"), "/readyz: {ready}");
        let health = http_get(port, "/healthz").await?;
        ensure!(
            health.starts_with("HTTP/1.1 200") && health.ends_with("ok"),
            "/healthz: {health}"
        );
        let metrics = http_get(port, "/metrics").await?;
        ensure!(
            metrics.contains("passport_build_info{version="),
            "/metrics: {metrics}"
        );
        ensure!(
            metrics.contains("passport_reconciliations_total"),
            "/metrics: {metrics}"
        );
        Ok(())
    };
    checks
        .await
        .with_context(|| format!("operator log:\n{}", operator.log_tail()))?;
    let clean = operator.terminate(Duration::from_secs(10))?;
    ensure!(
        clean,
        "operator did not exit cleanly after SIGTERM:\n{}",
        operator.log_tail()
    );
    Ok(())
}

/// Polls the operator's HTTP endpoint `path` (a port: nothing to watch) until it answers 200.
pub(crate) async fn wait_for_ok(port: u16, path: &str) -> Result<String> {
    wait::eventually(Duration::from_secs(30), || async move {
        let response = http_get(port, path)
            .await
            .with_context(|| format!("{path} never answered"))?;
        ensure!(
            response.starts_with("HTTP/1.1 200"),
            "{path} never became ready: {response}"
        );
        Ok(response)
    })
    .await
}

/// A minimal HTTP/1.1 GET, enough to read the operator's plain-text endpoints.
async fn http_get(port: u16, path: &str) -> Result<String> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    Ok(response.trim_end().to_owned())
}

/// Two replicas: one holds the Lease; when it dies without releasing, the other takes over.
async fn standby_takes_over() -> Result<()> {
    let plane = controlplane::start_with_crds().await?;
    let first = OperatorProcess::start(&plane, &[("POD_NAME", "replica-a".to_owned())])?;
    let leases: Api<Lease> = Api::namespaced(plane.admin_client().await?, "passport-system");
    let held_by = |holder: &'static str| {
        move |lease: Option<&Lease>| {
            lease
                .and_then(|l| l.spec.as_ref())
                .and_then(|s| s.holder_identity.as_deref())
                == Some(holder)
        }
    };
    wait::object(&leases, LEASE, Duration::from_secs(30), held_by("replica-a"))
        .await
        .context("replica-a never led")?;
    let second = OperatorProcess::start(&plane, &[("POD_NAME", "replica-b".to_owned())])?;
    wait_for_ok(second.http_port(), "/readyz").await?;
    let lease = leases.get_opt(LEASE).await?;
    ensure!(
        held_by("replica-a")(lease.as_ref()),
        "the standby took the lease from a live leader"
    );
    first.kill();
    let started = Instant::now();
    wait::object(&leases, LEASE, Duration::from_secs(40), held_by("replica-b"))
        .await
        .with_context(|| format!("replica-b never took over:\n{}", second.log_tail()))?;
    eprintln!(
        "standby took over {:?} after the leader was killed",
        started.elapsed()
    );
    Ok(())
}

/// The Lease the operator's replicas elect their leader with.
const LEASE: &str = "passport-operator";
