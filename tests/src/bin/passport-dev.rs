//! `passport-dev`: passport on this machine, no cloud and no cluster needed. Brings up a real local
//! control plane with passport's CRDs and RBAC, runs the operator against it under its own
//! least-privilege identity, and prints how to point `kubectl` at it. Ctrl-C stops everything.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{Context, Result};
use clap::Parser;
use passport_tests::{ControlPlane, USERS, binaries::workspace_binary, crds, kubectl};

const OPERATOR_IDENTITY: &str = "system:serviceaccount:passport-system:passport-operator";

#[derive(Debug, Parser)]
#[command(about = "Run passport locally against a real kube-apiserver")]
struct Args {
    /// Where to write kubeconfigs for admin, alice, bob and carol (kept after exit).
    #[arg(long, default_value = ".passport-dev")]
    state_dir: PathBuf,
    /// Stop after this many seconds instead of waiting for Ctrl-C (for scripted runs).
    #[arg(long)]
    exit_after: Option<u64>,
    /// Address of the operator's /healthz, /readyz and /metrics.
    #[arg(long, default_value = "127.0.0.1:8080")]
    operator_http: String,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    eprintln!("starting etcd and kube-apiserver on loopback…");
    let plane = ControlPlane::start().await?;
    crds::install(&plane.admin_client().await?).await?;
    let admin = plane.admin_kubeconfig();
    kubectl::run(&admin, &["apply", "-f", &repo.join("deploy/rbac.yaml").to_string_lossy()], None)?.ok()?;

    fs::create_dir_all(&args.state_dir)?;
    let state = args.state_dir.canonicalize()?;
    fs::copy(&admin, state.join("admin.kubeconfig"))?;
    for user in USERS {
        fs::copy(plane.user_kubeconfig(user.name), state.join(format!("{}.kubeconfig", user.name)))?;
    }

    let operator_kubeconfig = plane.kubeconfig_for(OPERATOR_IDENTITY, &["system:serviceaccounts"])?;
    let mut operator = start_operator(&operator_kubeconfig, &args.operator_http)?;
    kubectl::run(&admin, &["apply", "-f", &repo.join("deploy/examples").to_string_lossy()], None)?.ok()?;

    println!(
        "\npassport is running locally.\n\
         \n  export KUBECONFIG={admin}\n  kubectl get passport -A\n  kubectl get ar -n team-a\n\
         \nAs an ordinary user (no rights until granted): KUBECONFIG={alice}\n\
         Operator health and metrics: http://{http}/healthz  http://{http}/metrics\n\
         \nCtrl-C stops the operator and the control plane.",
        admin = state.join("admin.kubeconfig").display(),
        alice = state.join("alice.kubeconfig").display(),
        http = args.operator_http,
    );
    match args.exit_after {
        Some(seconds) => tokio::time::sleep(Duration::from_secs(seconds)).await,
        None => tokio::signal::ctrl_c().await?,
    }
    eprintln!("stopping…");
    let _ = Command::new("kill").args(["-TERM", &operator.id().to_string()]).status();
    let status = operator.wait()?;
    plane.stop();
    eprintln!("operator exited with {status}; control plane stopped");
    Ok(())
}

fn start_operator(kubeconfig: &Path, http_addr: &str) -> Result<Child> {
    let binary = workspace_binary("passport-operator", "passport-operator")?;
    Command::new(&binary)
        .env("KUBECONFIG", kubeconfig)
        .args(["--http-addr", http_addr])
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))
}
