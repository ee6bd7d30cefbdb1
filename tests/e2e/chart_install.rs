//! The chart installs for real: on a local control plane that runs workloads (kube-scheduler,
//! kube-controller-manager, a kwok fake node: containers do not run, so the image need not exist),
//! `helm install --wait` succeeds and the operator's Deployment is Available; what the chart
//! renders with every option on passes the apiserver's strict validation (the ServiceMonitor and
//! PrometheusRule against the Prometheus Operator's CRDs, from tests/tools/build.sh); `helm uninstall` leaves only the CRDs, as the chart
//! documents. Also: the control plane reports its real version to `kubectl version`.

use std::{collections::BTreeSet, time::Duration};

use anyhow::{Context, Result, ensure};
use k8s_openapi::{
    api::apps::v1::Deployment,
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{Api, api::ListParams};
use local_controlplane::eventually;
use passport_tests::{
    ControlPlane, controlplane, kubectl,
    tools::{self, render, repo},
};

use crate::{E2e, alone, chart::EVERY_OPTION, test};

pub fn trials() -> Vec<E2e> {
    vec![
        alone(
            "chart::installs_with_helm_and_uninstalls_down_to_its_crds",
            installs_and_uninstalls,
        ),
        test(
            "controlplane::kubectl_version_reads_the_real_version",
            |env| async move { reports_its_version(env.plane().await?) },
        ),
    ]
}

const NAMESPACE: &str = "passport-system";

async fn installs_and_uninstalls() -> Result<()> {
    let plane = controlplane::start_with_workloads().await?;
    let admin = plane.admin_kubeconfig();
    kubectl::run(&admin, &["create", "namespace", NAMESPACE], None)?.ok()?;
    validates_strictly(&plane)?;

    let chart = tools::chart();
    let chart = chart.to_str().context("chart path")?;
    let started = std::time::Instant::now();
    let install = [
        "install",
        "passport",
        chart,
        "--namespace",
        NAMESPACE,
        "--wait",
        "--timeout=3m",
    ];
    if let Err(err) = tools::checked("helm", &install, Some(&admin)) {
        return Err(err.context(diagnostics(&plane)));
    }
    println!(
        "chart: helm install --wait took {:.1?} on the local control plane",
        started.elapsed()
    );
    let client = plane.admin_client().await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    // helm --wait counts ready pods; the Deployment's Available condition follows within moments.
    eventually(Duration::from_secs(30), || async {
        let status = deployments
            .get("passport-operator")
            .await?
            .status
            .unwrap_or_default();
        let available = status
            .conditions
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Available" && c.status == "True");
        ensure!(
            available && status.ready_replicas == Some(2),
            "passport-operator is not Available with 2 ready replicas after helm install --wait: \
             ready {:?}",
            status.ready_replicas
        );
        Ok(())
    })
    .await?;

    let manifest = tools::checked(
        "helm",
        &["get", "manifest", "passport", "-n", NAMESPACE],
        Some(&admin),
    )?;
    let installed = objects(&manifest)?;
    tools::checked(
        "helm",
        &["uninstall", "passport", "-n", NAMESPACE, "--wait"],
        Some(&admin),
    )?;
    eventually(Duration::from_secs(60), || async {
        let mut left = Vec::new();
        for object in installed
            .iter()
            .map(String::as_str)
            .chain(["pods", "replicasets.apps"])
        {
            let found = kubectl::run(
                &admin,
                &["get", object, "-n", NAMESPACE, "--ignore-not-found", "-o", "name"],
                None,
            )?
            .ok()?
            .stdout;
            left.extend(found.lines().map(str::to_owned));
        }
        ensure!(left.is_empty(), "left after helm uninstall: {}", left.join(", "));
        Ok(())
    })
    .await?;
    let crds: Api<CustomResourceDefinition> = Api::all(client);
    let kept: BTreeSet<String> = crds
        .list(&ListParams::default())
        .await?
        .into_iter()
        .filter_map(|crd| crd.metadata.name)
        .filter(|name| name.ends_with(".passport.dev"))
        .collect();
    ensure!(
        kept.len() == passport_crds::all_crds().len(),
        "helm uninstall documents that passport's CRDs stay; found only {kept:?}"
    );
    Ok(())
}

/// What the cluster shows of workloads and nodes, and the last lines of the logs of the processes
/// that run them: why a Deployment did not become Available.
fn diagnostics(plane: &ControlPlane) -> String {
    let mut report = String::from("the cluster then:\n");
    let shown = [
        vec!["get", "nodes,deployments,replicasets,pods", "-A", "-o", "wide"],
        vec!["get", "events", "-A"],
    ];
    for args in shown {
        match kubectl::run(&plane.admin_kubeconfig(), &args, None) {
            Ok(out) => report.push_str(&format!("{}{}\n", out.stdout, out.stderr)),
            Err(err) => report.push_str(&format!("kubectl {}: {err:#}\n", args.join(" "))),
        }
    }
    for process in ["kube-scheduler", "kube-controller-manager", "kwok"] {
        let log = std::fs::read_to_string(plane.dir().join(format!("{process}.log"))).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        report.push_str(&format!("--- {process}.log (last lines)\n"));
        for line in tail.into_iter().rev() {
            report.push_str(line);
            report.push('\n');
        }
    }
    report
}

/// The apiserver's strict validation (unknown or duplicate fields refused) of deploy/ and of the
/// chart with every option on, ServiceMonitor and PrometheusRule included (against the Prometheus
/// Operator's own CRDs, installed first), without changing anything.
fn validates_strictly(plane: &ControlPlane) -> Result<()> {
    let admin = plane.admin_kubeconfig();
    let monitoring = tools::dir()?.join("monitoring-crds.yaml");
    let monitoring = monitoring.to_str().context("non-UTF-8 path")?;
    kubectl::run(&admin, &["create", "-f", monitoring], None)?
        .ok()
        .context("installing the Prometheus Operator's CRDs")?;
    let established = [
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/servicemonitors.monitoring.coreos.com",
        "crd/prometheusrules.monitoring.coreos.com",
    ];
    kubectl::run(&admin, &established, None)?.ok()?;
    let deploy = repo().join("deploy");
    let mut args = vec!["apply", "--dry-run=server", "--validate=strict"];
    let files: Vec<String> = ["rbac.yaml", "admission.yaml", "operator.yaml"]
        .iter()
        .map(|file| deploy.join(file).display().to_string())
        .collect();
    for file in &files {
        args.extend(["-f", file]);
    }
    kubectl::run(&admin, &args, None)?
        .ok()
        .context("strict server-side validation of deploy/")?;
    kubectl::run(
        &admin,
        &["apply", "--dry-run=server", "--validate=strict", "-f", "-"],
        Some(&render(&EVERY_OPTION)?),
    )?
    .ok()
    .context("strict server-side validation of the chart with every option")?;
    Ok(())
}

/// `kind.version.group/name` (or `kind/name` for the core group) of every object in a manifest.
fn objects(manifest: &str) -> Result<Vec<String>> {
    let mut objects = Vec::new();
    for document in serde_yaml::Deserializer::from_str(manifest) {
        let value: serde_yaml::Value = serde::Deserialize::deserialize(document)?;
        let (Some(api_version), Some(kind), Some(name)) = (
            value["apiVersion"].as_str(),
            value["kind"].as_str(),
            value["metadata"]["name"].as_str(),
        ) else {
            continue;
        };
        let resource = match api_version.split_once('/') {
            Some((group, version)) => format!("{kind}.{version}.{group}"),
            None => kind.to_owned(),
        };
        objects.push(format!("{resource}/{name}"));
    }
    ensure!(!objects.is_empty(), "helm get manifest listed no object");
    Ok(objects)
}

/// `kubectl version` parses the server's version: the k8s.io/kubernetes release the wrapper
/// module builds (tests/local-controlplane/go/kube-apiserver/go.mod), not `v0.0.0-master`.
fn reports_its_version(plane: &ControlPlane) -> Result<()> {
    let go_mod = std::fs::read_to_string(repo().join("tests/local-controlplane/go/kube-apiserver/go.mod"))?;
    let release = go_mod
        .lines()
        .find_map(|line| line.trim().strip_prefix("k8s.io/kubernetes v"))
        .context("no k8s.io/kubernetes in the wrapper's go.mod")?;
    let out = kubectl::run(&plane.admin_kubeconfig(), &["version", "-o", "json"], None)?.ok()?;
    let version: serde_json::Value = serde_json::from_str(&out.stdout)?;
    let server = &version["serverVersion"];
    let mut parts = release.split('.');
    let expected = (
        format!("v{release}"),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    ensure!(
        server["gitVersion"] == expected.0.as_str()
            && server["major"] == expected.1
            && server["minor"] == expected.2,
        "kubectl version -o json reports {server}, expected {expected:?}; stderr: {}",
        out.stderr.trim()
    );
    Ok(())
}
