//! `passport-dev`: passport's whole access lifecycle on this machine, on real parts and no cloud: a
//! kube-apiserver + etcd with passport's CRDs, RBAC and admission policy; moto as AWS (SSM, STS); an
//! isolated Debian OpenSSH server as the EC2 instance; the operator under its own identity. Alice
//! asks for access, logs in with a certificate from passport's CA, completes the request, and is out.
//! Then everything stays up for you to explore until Ctrl-C.

use std::{fs, path::PathBuf, time::Duration};

use anyhow::{Context, Result, ensure};
use clap::Parser;
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use passport_crds::{AccessRequest, Phase};
use passport_tests::{
    ControlPlane, USERS,
    aws::{AwsEmulator, Platform},
    crds,
    instance::Instance,
    kubectl,
    operator::OperatorProcess,
    requests::wait_phase,
    ssh::SshClient,
};

#[derive(Debug, Parser)]
#[command(about = "Run passport's access lifecycle locally on real parts")]
struct Args {
    /// Where to write kubeconfigs for admin, alice, bob and carol.
    #[arg(long, default_value = ".passport-dev")]
    state_dir: PathBuf,
    /// Stop after the walkthrough instead of waiting for Ctrl-C (for scripted runs).
    #[arg(long)]
    no_wait: bool,
}

const REQUEST: &str = "cpu-alarm-inc123";

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    step("starting kube-apiserver and etcd on loopback");
    let started = std::time::Instant::now();
    let plane = ControlPlane::start().await?;
    println!("    kube-apiserver ready in {:.1?}", started.elapsed());
    crds::install(&plane.admin_client().await?).await?;
    let admin = plane.admin_kubeconfig();
    for file in ["deploy/rbac.yaml", "deploy/admission.yaml"] {
        kubectl::run(&admin, &["apply", "-f", &repo.join(file).to_string_lossy()], None)?.ok()?;
    }
    step("starting the AWS emulator (moto: SSM, STS) and an instance (Debian OpenSSH, isolated)");
    let aws = AwsEmulator::start().await?;
    let instance = Instance::start().await?;
    aws.register_agent(instance.id(), Platform::Linux, Some(instance.runner_argv()))
        .await?;
    step("starting passport-operator as system:serviceaccount:passport-system:passport-operator");
    let operator = OperatorProcess::start(&plane, &aws.env_vars())?;

    step(&format!(
        "admin: AwsAccount prod, team-a's policy auto-approving alice on {}",
        instance.id()
    ));
    kubectl::apply(&admin, &setup(instance.id()))?.ok()?;
    let state = write_kubeconfigs(&plane, &args.state_dir)?;
    let alice = plane.user_kubeconfig("alice");
    step("alice: kubectl apply an AccessRequest (1h, reason, ticket)");
    kubectl::apply(&alice, &request(instance.id()))?.ok()?;

    let api: Api<AccessRequest> = Api::namespaced(plane.admin_client().await?, "team-a");
    let log = || format!("--- operator log ---\n{}", operator.log_tail());
    let active = wait_phase(&api, REQUEST, Phase::Active, Duration::from_secs(90), log).await?;
    let status = active.status.clone().context("no status")?;
    let user = status.username.clone().context("no username")?;
    println!(
        "    phase Active, user {user} on {}, expires {:?}",
        instance.id(),
        status.expires_at.map(|t| t.0)
    );
    print!(
        "{}",
        kubectl::run(&admin, &["get", "ar", "-n", "team-a"], None)?.stdout
    );

    step(&format!(
        "alice: ssh {user}@{} with a certificate from passport's CA",
        instance.id()
    ));
    let ssh = SshClient::new(&instance, &ca_key(&plane).await?, &user, "-1m:+5m").await?;
    let (ok, stdout, stderr) = ssh.run("whoami; id").await?;
    ensure!(ok, "login failed: {stderr}");
    print!("    {}", stdout.replace('\n', "\n    "));
    let mut session = ssh.hold_open()?;

    step("alice: kubectl patch … spec.completed=true (done early)");
    let done = serde_json::json!({ "spec": { "completed": true } });
    let alice_api: Api<AccessRequest> =
        Api::namespaced(passport_tests::controlplane::client_from(&alice).await?, "team-a");
    alice_api
        .patch(REQUEST, &PatchParams::default(), &Patch::Merge(&done))
        .await?;
    wait_phase(&api, REQUEST, Phase::Completed, Duration::from_secs(60), log).await?;
    let closed = tokio::time::timeout(Duration::from_secs(10), session.wait())
        .await
        .is_ok();
    let (still_in, _, refused) = ssh.run("whoami").await?;
    println!(
        "    open session killed: {closed}; new login refused: {}",
        !still_in
    );
    println!("    ssh said: {}", refused.lines().last().unwrap_or_default());
    let gone = !instance.exec(&["id", &user]).await?.success();
    println!("    user {user} removed from the instance: {gone}");

    step("the logbook (Kubernetes Events on the request)");
    let events = kubectl::run(
        &admin,
        &[
            "get",
            "events.events.k8s.io",
            "-n",
            "team-a",
            "--sort-by=.metadata.creationTimestamp",
            "-o",
            "custom-columns=ACTION:.action,REASON:.reason,NOTE:.note",
        ],
        None,
    )?;
    print!("{}", events.stdout);

    println!(
        "\nEverything is still running. Explore:\n  export KUBECONFIG={}\n  kubectl get passport -A\n  \
         kubectl describe ar -n team-a {REQUEST}\nAs alice: KUBECONFIG={}\nOperator metrics: http://127.0.0.1:{}/metrics",
        state.join("admin.kubeconfig").display(),
        state.join("alice.kubeconfig").display(),
        operator.http_port(),
    );
    if !args.no_wait {
        println!("Ctrl-C stops everything.");
        tokio::signal::ctrl_c().await?;
    }
    let clean = operator.terminate(Duration::from_secs(10))?;
    plane.stop();
    eprintln!("stopped (operator exited cleanly: {clean})");
    Ok(())
}

fn step(what: &str) {
    println!("\n==> {what}");
}

fn setup(instance_id: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-a\n---\n\
         apiVersion: passport.dev/v1alpha1\nkind: AwsAccount\nmetadata:\n  name: prod\nspec:\n  \
         roleArn: arn:aws:iam::123456789012:role/passport\n  region: us-east-1\n  externalId: passport-demo\n  \
         allowedNamespaces: [team-a]\n---\n\
         apiVersion: passport.dev/v1alpha1\nkind: AccessPolicy\nmetadata:\n  name: app-servers\n  namespace: team-a\nspec:\n  \
         requesters:\n    groups: [developers]\n  targets:\n    instanceIds: [{instance_id}]\n  maxDuration: 4h\n  \
         autoApprove:\n  - users: [alice]\n  defaultAccount: prod\n---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: developers\n  namespace: team-a\n\
         roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: passport-requester}}\n\
         subjects:\n- {{apiGroup: rbac.authorization.k8s.io, kind: Group, name: developers}}\n"
    )
}

fn request(instance_id: &str) -> String {
    format!(
        "apiVersion: passport.dev/v1alpha1\nkind: AccessRequest\nmetadata:\n  name: {REQUEST}\n  namespace: team-a\n  \
         annotations:\n    passport.dev/requester-groups: developers\n\
         spec:\n  requester: alice\n  reason: CloudWatch CPU alarm on app01\n  ticket: INC-123\n  duration: 1h\n  \
         targets:\n  - instanceId: {instance_id}\n"
    )
}

/// Stands in for `kubectl passport connect` until the CLI exists: an admin reads the CA key.
async fn ca_key(plane: &ControlPlane) -> Result<Vec<u8>> {
    let secrets: Api<Secret> = Api::namespaced(plane.admin_client().await?, "passport-system");
    let data = secrets
        .get("passport-ssh-ca")
        .await?
        .data
        .context("CA Secret without data")?;
    Ok(data.get("ed25519").context("no ed25519 CA key")?.0.clone())
}

fn write_kubeconfigs(plane: &ControlPlane, dir: &PathBuf) -> Result<PathBuf> {
    fs::create_dir_all(dir)?;
    let dir = dir.canonicalize()?;
    fs::copy(plane.admin_kubeconfig(), dir.join("admin.kubeconfig"))?;
    for user in USERS {
        fs::copy(
            plane.user_kubeconfig(user.name),
            dir.join(format!("{}.kubeconfig", user.name)),
        )?;
    }
    Ok(dir)
}
