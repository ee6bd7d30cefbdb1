//! `passport-dev`: passport's whole access lifecycle on this machine, on real parts and no cloud: a
//! kube-apiserver + etcd with passport's CRDs, RBAC and admission policy; moto as AWS (SSM, STS); an
//! isolated Debian OpenSSH server as the EC2 instance; the operator under its own identity. Alice
//! asks for access, logs in with a certificate from passport's CA — through Session Manager: AWS's own
//! session-manager-plugin and the emulator's data channel, or directly with `--direct` — completes the
//! request, and is out. Then it writes `<state dir>/env.sh` and `alice.env`/`bob.env`/`carol.env` to
//! continue from any shell, proves alice's from an empty environment, and everything stays up for you
//! to explore until Ctrl-C.

#[path = "passport-dev/workstation.rs"]
mod workstation;

use std::{
    fs,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::{Context, Result, ensure};
use clap::Parser;
use kube::Api;
use passport_crds::{AccessRequest, Phase};
use passport_tests::{
    ControlPlane,
    aws::{AwsEmulator, Platform},
    binaries::workspace_binary,
    cloudevents::Receiver,
    controlplane, crds, fixtures,
    instance::Instance,
    kubectl,
    operator::OperatorProcess,
    requests::wait_phase,
    session_manager::plugin_dir,
    wait::eventually,
};
use workstation::{NAMESPACE, Reach};

#[derive(Debug, Parser)]
#[command(about = "Run passport's access lifecycle locally on real parts")]
struct Args {
    /// Where to write kubeconfigs for admin, alice, bob and carol.
    #[arg(long, default_value = ".passport-dev")]
    state_dir: PathBuf,
    /// Stop after the walkthrough instead of waiting for Ctrl-C (for scripted runs).
    #[arg(long)]
    no_wait: bool,
    /// Reach the instance directly (PASSPORT_DIRECT_ENDPOINTS) instead of through Session Manager,
    /// as for instances the workstation can reach.
    #[arg(long)]
    direct: bool,
}

const REQUEST: &str = "cpu-alarm-inc123";

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    step("starting kube-apiserver and etcd on loopback");
    let started = std::time::Instant::now();
    let plane = controlplane::start().await?;
    println!("    kube-apiserver ready in {:.1?}", started.elapsed());
    crds::install(&plane.admin_client().await?).await?;
    let admin = plane.admin_kubeconfig();
    for file in ["deploy/rbac.yaml", "deploy/admission.yaml"] {
        kubectl::run(&admin, &["apply", "-f", &repo.join(file).to_string_lossy()], None)?.ok()?;
    }
    step("starting the AWS emulator (moto: SSM, STS) and an instance (Debian OpenSSH, isolated)");
    let aws = AwsEmulator::start().await?;
    let instance = Instance::start().await?;
    // Its sshd is the instance's port 22 for Session Manager sessions.
    let sshd = ([127, 0, 0, 1], instance.ssh_port()).into();
    aws.register_agent_with_ports(
        instance.id(),
        Platform::Linux,
        Some(instance.runner_argv()),
        &[(22, sshd)],
    )
    .await?;
    step("starting an audit receiver (CloudEvents over HTTP, the PyPI cloudevents SDK)");
    let receiver = Receiver::start(false, None)?;
    println!("    listening at {}", receiver.url());
    step("starting passport-operator as system:serviceaccount:passport-system:passport-operator");
    let mut env = aws.env_vars();
    env.push(("PASSPORT_LOGBOOK_SINK", receiver.url()));
    let operator = OperatorProcess::start(&plane, &env)?;

    step(&format!(
        "admin: AwsAccount prod, team-a's policy auto-approving alice on {}",
        instance.id()
    ));
    kubectl::apply(&admin, &setup(instance.id())?)?.ok()?;
    let state = write_kubeconfigs(&plane, &args.state_dir)?;
    let cli = workspace_binary("kubectl-passport", "kubectl-passport")?;
    let reach = Reach {
        path: vec![
            cli.parent()
                .context("kubectl-passport's directory")?
                .to_path_buf(),
            plugin_dir()?,
        ],
        aws_endpoint: aws.endpoint().to_owned(),
        direct: args
            .direct
            .then(|| format!("{}=127.0.0.1:{}", instance.id(), instance.ssh_port())),
        instance: instance.id().to_owned(),
    };
    let alice = Plugin::new(&plane, &state, "alice", &cli, &reach)?;

    step("alice$ kubectl passport request cpu-alarm-inc123 --instance … --reason … --ticket INC-123 --wait");
    let args_request = [
        "request",
        REQUEST,
        "--instance",
        instance.id(),
        "--reason",
        "CloudWatch CPU alarm on app01",
        "--ticket",
        "INC-123",
        "--duration",
        "1h",
        "--wait",
    ];
    alice.run(&args_request).await?;
    alice.run(&["list"]).await?;

    step(&format!(
        "alice$ ssh -F \"$(kubectl passport ssh-config)\" {} 'whoami; id'   ({})",
        instance.id(),
        if args.direct {
            "direct to the instance's sshd"
        } else {
            "through Session Manager: AWS's session-manager-plugin, the emulator's data channel"
        }
    ));
    let config = alice.output(&["ssh-config", REQUEST]).await?;
    let ssh = |remote: &str| {
        let mut command = tokio::process::Command::new("ssh");
        command
            .args(["-F", config.trim(), instance.id(), remote])
            .envs(alice.env())
            .kill_on_drop(true);
        command
    };
    let login = ssh("whoami; id").output().await?;
    ensure!(
        login.status.success(),
        "login failed: {}",
        String::from_utf8_lossy(&login.stderr)
    );
    print!(
        "    {}",
        String::from_utf8_lossy(&login.stdout).replace('\n', "\n    ")
    );
    let user = String::from_utf8_lossy(&login.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    let mut session = ssh("sleep 600")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    tokio::time::sleep(Duration::from_millis(500)).await;

    step("alice$ kubectl passport complete cpu-alarm-inc123   (done early)");
    alice.run(&["complete", REQUEST]).await?;
    let api: Api<AccessRequest> = Api::namespaced(plane.admin_client().await?, "team-a");
    let log = || format!("--- operator log ---\n{}", operator.log_tail());
    wait_phase(&api, REQUEST, Phase::Completed, Duration::from_secs(60), log).await?;
    let closed = tokio::time::timeout(Duration::from_secs(10), session.wait())
        .await
        .is_ok();
    let again = ssh("whoami").output().await?;
    println!(
        "    open session killed: {closed}; new login refused: {}",
        !again.status.success()
    );
    let said = String::from_utf8_lossy(&again.stderr).into_owned();
    let why = said
        .lines()
        .find(|l| l.contains("kubectl-passport"))
        .or(said.lines().last());
    println!("    ssh said: {}", why.unwrap_or_default());
    let gone = !instance.exec(&["id", &user]).await?.success();
    println!("    user {user} removed from the instance: {gone}");

    step("alice$ kubectl passport logbook cpu-alarm-inc123");
    alice.run(&["logbook", REQUEST]).await?;

    step("the audit receiver: every Logbook record, delivered as a CloudEvent");
    let entries = api
        .get(REQUEST)
        .await?
        .status
        .and_then(|s| s.logbook)
        .map_or(0, |r| r.entries.len());
    let delivered = eventually(Duration::from_secs(30), || async {
        let events = receiver.events()?;
        ensure!(
            events.len() >= entries,
            "{} of {entries} delivered so far",
            events.len()
        );
        Ok(events)
    })
    .await?;
    for event in &delivered {
        let a = &event["attributes"];
        println!(
            "    {}  {:<45} id={}  subject={}",
            a["time"].as_str().unwrap_or_default(),
            a["type"].as_str().unwrap_or_default(),
            a["id"].as_str().unwrap_or_default(),
            a["subject"].as_str().unwrap_or_default()
        );
    }

    step(&format!(
        "continuing from any shell: {}",
        state.join("env.sh").display()
    ));
    let env_sh = workstation::write(&state, &reach, &["alice", "bob", "carol"])?;
    print!("    {}", env_sh.trim_end().replace('\n', "\n    "));
    println!();
    step(&format!(
        "a shell with an empty environment: . {}; kubectl passport request … --wait; ssh …",
        state.join("alice.env").display()
    ));
    let shown = workstation::check_from_plain_shell(&state, "from-a-plain-shell").await?;
    print!("    {}", shown.trim_end().replace('\n', "\n    "));
    println!();

    println!(
        "\nEverything is still running. Explore:\n  export KUBECONFIG={}\n  kubectl get passport -A\n  \
         kubectl describe ar -n {NAMESPACE} {REQUEST}\nAs alice (or bob, carol), from any shell:\n  . {}\n  \
         kubectl passport request my-access --instance \"$PASSPORT_DEMO_INSTANCE\" --reason 'exploring' --wait\n  \
         ssh -F \"$(kubectl passport ssh-config)\" \"$PASSPORT_DEMO_INSTANCE\"\nOperator metrics: http://127.0.0.1:{}/metrics",
        state.join("admin.kubeconfig").display(),
        state.join("alice.env").display(),
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

/// What an administrator sets up: the account, team-a's policy, and the developers' rights.
fn setup(instance_id: &str) -> Result<String> {
    let account = fixtures::account("prod")
        .role_arn("arn:aws:iam::123456789012:role/passport")
        .external_id("passport-demo")
        .allowed_namespaces(["team-a"]);
    let policy = fixtures::policy("app-servers")
        .namespace("team-a")
        .requester_groups(["developers"])
        .instances([instance_id])
        .max_duration("4h")
        .auto_approve_users(["alice"])
        .default_account("prod");
    let developers = fixtures::role_binding(
        "team-a",
        "developers",
        "passport-requester",
        &[("Group", "developers")],
    );
    fixtures::manifest(&[&fixtures::namespace("team-a"), &account, &policy, &developers])
}

/// The kubectl plugin as one user runs it: their kubeconfig, namespace team-a, their own cache dir,
/// and the instance reached as `Reach` says (Session Manager, or directly).
struct Plugin {
    binary: PathBuf,
    kubeconfig: PathBuf,
    cache: PathBuf,
    reach: Vec<(&'static str, String)>,
}

impl Plugin {
    fn new(plane: &ControlPlane, state: &Path, user: &str, binary: &Path, reach: &Reach) -> Result<Self> {
        let cache = state.join(format!("{user}-cache"));
        fs::create_dir_all(&cache)?;
        Ok(Self {
            binary: binary.to_path_buf(),
            kubeconfig: plane.user_kubeconfig(user),
            cache,
            reach: reach.env(),
        })
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("KUBECONFIG", self.kubeconfig.display().to_string()),
            ("XDG_CACHE_HOME", self.cache.display().to_string()),
        ];
        env.extend(self.reach.iter().cloned());
        env
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&self.binary);
        command.args(["-n", NAMESPACE]).args(args).envs(self.env());
        command
    }

    /// Runs a verb with its output shown indented.
    async fn run(&self, args: &[&str]) -> Result<()> {
        let output = self.command(args).output().await?;
        let shown = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        );
        print!("    {}", shown.trim_end().replace('\n', "\n    "));
        println!();
        ensure!(
            output.status.success(),
            "kubectl passport {} failed",
            args.join(" ")
        );
        Ok(())
    }

    async fn output(&self, args: &[&str]) -> Result<String> {
        let output = self.command(args).output().await?;
        ensure!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(String::from_utf8(output.stdout)?)
    }
}

fn write_kubeconfigs(plane: &ControlPlane, dir: &Path) -> Result<PathBuf> {
    fs::create_dir_all(dir)?;
    let dir = dir.canonicalize()?;
    fs::copy(plane.admin_kubeconfig(), dir.join("admin.kubeconfig"))?;
    for user in plane.users() {
        fs::copy(
            plane.user_kubeconfig(&user.name),
            dir.join(format!("{}.kubeconfig", user.name)),
        )?;
    }
    Ok(dir)
}
