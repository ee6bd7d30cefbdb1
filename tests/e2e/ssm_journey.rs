//! The Session Manager path end to end, with no direct endpoint: `kubectl passport` gets scoped STS
//! credentials from the operator, starts sessions with passport's own documents, and hands them to
//! AWS's real session-manager-plugin, which carries ssh, scp, rsync, `ssh -L` and `connect` through the
//! emulator's data channel to the instance's sshd; for a Windows-platform instance, `connect`
//! forwards a local port to the service standing in for RDP on its 3389. The emulator's record shows
//! every session opened by the request's scoped role session with a passport document. (`rsync -e`
//! needs rsync on both sides: scripts/install-deps.sh and the instance's rootfs have it.)

use std::{net::SocketAddr, path::Path, process::Stdio, time::Duration, time::Instant};

use anyhow::{Context, Result, ensure};
use passport_crds::Phase;
use passport_tests::{
    aws::{AwsEmulator, Platform},
    instance::Instance,
    session_manager::{RDP_DOCUMENT, SSH_DOCUMENT, plugin_dir},
    wait::eventually,
};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    process::Command,
};

use crate::{
    E2e,
    cli::{
        request_active,
        support::{self, Plugin, output},
    },
    scenario::{Scenario, on_instance, on_shared_stack},
    test,
};

const MB: usize = 1 << 20;
const TIMEOUT: Duration = Duration::from_secs(90);

pub fn trials() -> Vec<E2e> {
    vec![
        on_instance(
            "session_manager::journey_ssh_scp_forward_connect_through_the_plugin",
            "ssmjourney",
            |s, instance| Box::pin(journey(s, instance)),
        ),
        test(
            "session_manager::windows_connect_forwards_rdp_through_the_plugin",
            |env| async move {
                let instance = windows_instance_id();
                let s = on_shared_stack(&env, "ssmrdp", &["alice"], &[instance.as_str()]).await?;
                windows(&s, &instance).await
            },
        ),
    ]
}

/// The CLI as `user`, with no direct endpoint: the plugin on PATH and the emulator as AWS.
fn through_plugin(s: &Scenario<'_>, user: &str) -> Result<Plugin> {
    Plugin::new(s.plane.user_kubeconfig(user), &s.namespace, String::new())
}

/// What a workstation needs for the Session Manager path: the plugin first on PATH, AWS's endpoint
/// (the emulator). No credentials: the CLI hands the plugin the scoped ones the operator sealed.
fn via_ssm(mut command: Command, emulator: &AwsEmulator) -> Result<Command> {
    let path = std::env::var("PATH").unwrap_or_default();
    command
        .env("PATH", format!("{}:{path}", plugin_dir()?.display()))
        .env("AWS_ENDPOINT_URL", emulator.endpoint())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN");
    Ok(command)
}

async fn run(command: Command, what: &str) -> Result<support::Run> {
    output(command, 300).await?.ok(what)
}

async fn journey(s: &Scenario<'_>, instance: &Instance) -> Result<()> {
    // The instance's sshd is its port 22 for Session Manager sessions.
    let sshd: SocketAddr = ([127, 0, 0, 1], instance.ssh_port()).into();
    s.emulator
        .register_agent_with_ports(
            instance.id(),
            Platform::Linux,
            Some(instance.runner_argv()),
            &[(22, sshd)],
        )
        .await?;
    let alice = through_plugin(s, "alice")?;
    let id = instance.id();
    let name = request_active(s, &alice, instance).await?;
    let user = crate::scenario::username(&s.requests.get(&name).await?)?;
    let config = run(via_ssm(alice.command(&["ssh-config"]), s.emulator)?, "ssh-config")
        .await?
        .stdout
        .trim()
        .to_owned();
    let ssh = |args: &[&str]| -> Result<Command> {
        let mut all = vec!["-F", config.as_str(), "-o", "BatchMode=yes"];
        all.extend_from_slice(args);
        via_ssm(alice.tool("ssh", &all), s.emulator)
    };
    let whoami = run(ssh(&[id, "whoami"])?, "ssh whoami through the plugin").await?;
    ensure!(whoami.stdout.trim() == user, "ssh says {:?}", whoami.stdout);

    scp_both_ways(s, &alice, &config, id).await?;
    rsync(s, &alice, &config, id).await?;
    forward(&ssh, id, instance.ssh_port()).await?;

    // connect to a prompt: through the plugin, then the same through direct mode.
    let connect = ["connect", &name, "--", "-tt", "-o", "BatchMode=yes"];
    let through = time_to_prompt(via_ssm(alice.command(&connect), s.emulator)?).await?;
    let direct = Plugin::new(
        s.plane.user_kubeconfig("alice"),
        &s.namespace,
        format!("{id}=127.0.0.1:{}", instance.ssh_port()),
    )?;
    // With alice's cache, so both reuse the certificate the journey already holds.
    let mut direct_connect = direct.command(&connect);
    direct_connect.env("XDG_CACHE_HOME", alice.cache_dir());
    let direct = time_to_prompt(direct_connect).await?;
    println!(
        "session manager: connect to a shell prompt {through:.2} s through the plugin, {direct:.2} s direct"
    );

    sessions_were_scoped(s.emulator, id, SSH_DOCUMENT).await?;
    revocation_ends_open_sessions(s, &alice, &ssh, &name, id).await
}

/// Completing the request ends its open sessions: the operator calls TerminateSession on the session
/// an ssh still holds, and that ssh ends.
async fn revocation_ends_open_sessions(
    s: &Scenario<'_>,
    alice: &Plugin,
    ssh: &(dyn Fn(&[&str]) -> Result<Command> + Sync),
    name: &str,
    id: &str,
) -> Result<()> {
    let before: Vec<String> = s
        .emulator
        .sessions()
        .await?
        .into_iter()
        .map(|x| x.session_id)
        .collect();
    let mut held = ssh(&[id, "sleep 600"])?
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let open = eventually(Duration::from_secs(60), || async {
        let sessions = s.emulator.sessions().await?;
        sessions
            .into_iter()
            .find(|x| x.target == id && x.status == "Connected" && !before.contains(&x.session_id))
            .context("no new Connected session yet")
    })
    .await?;
    run(
        via_ssm(alice.command(&["complete", name]), s.emulator)?,
        "complete",
    )
    .await?;
    s.wait_phase(name, Phase::Completed, TIMEOUT).await?;
    tokio::time::timeout(Duration::from_secs(30), held.wait())
        .await
        .context("the ssh held open through the plugin outlived the request")??;
    let ended = eventually(Duration::from_secs(30), || async {
        let session = s
            .emulator
            .sessions()
            .await?
            .into_iter()
            .find(|x| x.session_id == open.session_id);
        let session = session.context("the session is gone from the record")?;
        ensure!(
            session.status == "Terminated" && session.terminated_by.iter().any(|arn| *arn != session.owner),
            "not terminated by the operator: {session:?}"
        );
        Ok(session)
    })
    .await?;
    println!(
        "session manager: revocation ended session {} ({:?})",
        ended.session_id, ended.terminated_by
    );
    Ok(())
}

/// Seconds from starting `connect` (ssh -tt: a terminal on the instance) until the shell's prompt
/// arrives; then the shell is told to exit.
async fn time_to_prompt(mut connect: Command) -> Result<f64> {
    let started = Instant::now();
    let mut child = connect
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdout = child.stdout.take().context("stdout")?;
    let mut seen = Vec::new();
    let prompt = tokio::time::timeout(TIMEOUT, async {
        let mut buffer = [0u8; 4096];
        while !seen.windows(2).any(|w| w == b"$ ") {
            let read = stdout.read(&mut buffer).await?;
            ensure!(read > 0, "connect ended before a prompt");
            seen.extend_from_slice(&buffer[..read]);
        }
        Ok(())
    })
    .await;
    let elapsed = started.elapsed().as_secs_f64();
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(b"exit\n").await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    prompt
        .context("no prompt in time")?
        .with_context(|| format!("connect printed {:?}", String::from_utf8_lossy(&seen)))?;
    Ok(elapsed)
}

/// 10 MB up and back with scp through the plugin, byte-exact, with the rate each way.
async fn scp_both_ways(s: &Scenario<'_>, alice: &Plugin, config: &str, id: &str) -> Result<()> {
    let (up, down) = (
        alice.cache_dir().join("up.bin"),
        alice.cache_dir().join("down.bin"),
    );
    let data: Vec<u8> = (0..10 * MB)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&up, &data)?;
    let remote = format!("{id}:/tmp/passport-ssm-10mb.bin");
    for (from, to, what) in [
        (up.to_string_lossy(), remote.clone().into(), "scp to the instance"),
        (
            remote.clone().into(),
            down.to_string_lossy(),
            "scp from the instance",
        ),
    ] {
        let started = Instant::now();
        let scp = alice.tool("scp", &["-F", config, "-o", "BatchMode=yes", &from, &to]);
        run(via_ssm(scp, s.emulator)?, what).await?;
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "session manager: {what}, 10 MB in {seconds:.1} s ({:.0} KB/s)",
            data.len() as f64 / seconds / 1024.0
        );
    }
    ensure!(
        std::fs::read(&down)? == data,
        "scp through the plugin changed the file"
    );
    Ok(())
}

/// `rsync -e "ssh -F config"` of a directory to the instance and back, through the plugin.
async fn rsync(s: &Scenario<'_>, alice: &Plugin, config: &str, id: &str) -> Result<()> {
    let (tree, back) = (
        alice.cache_dir().join("tree"),
        alice.cache_dir().join("tree-back"),
    );
    std::fs::create_dir_all(tree.join("sub"))?;
    std::fs::write(tree.join("a.txt"), "passport rsync\n")?;
    std::fs::write(tree.join("sub/b.bin"), vec![7u8; 300_000])?;
    let shell = format!("ssh -F {config} -o BatchMode=yes");
    let remote = format!("{id}:/tmp/passport-rsync/");
    let source = format!("{}/", tree.display());
    let target = format!("{}/", back.display());
    for (from, to, what) in [
        (&source, &remote, "rsync to the instance"),
        (&remote, &target, "rsync back"),
    ] {
        let copy = alice.tool("rsync", &["-a", "-e", &shell, from, to]);
        run(via_ssm(copy, s.emulator)?, what).await?;
    }
    ensure!(
        std::fs::read(back.join("sub/b.bin"))? == vec![7u8; 300_000]
            && std::fs::read_to_string(back.join("a.txt"))? == "passport rsync\n",
        "rsync through the plugin changed the tree"
    );
    Ok(())
}

/// `ssh -L` through the tunnel to a service behind the instance (its own sshd, on the loopback port
/// it shares with the host).
async fn forward(ssh: &(dyn Fn(&[&str]) -> Result<Command> + Sync), id: &str, service: u16) -> Result<()> {
    let port = support::free_port()?;
    let target = format!("{port}:127.0.0.1:{service}");
    let mut child = ssh(&["-o", "ExitOnForwardFailure=yes", "-N", "-L", &target, id])?
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let banner = eventually(Duration::from_secs(60), || async {
        let answer = passport_tests::ssh::banner(port).await?;
        ensure!(answer.starts_with("SSH-2.0-"), "{answer:?}");
        Ok(answer)
    })
    .await;
    let _ = child.kill().await;
    banner.map(drop)
}

/// Every session to `id` was opened by a passport role session (`passport-…`) with `document`.
async fn sessions_were_scoped(emulator: &AwsEmulator, id: &str, document: &str) -> Result<()> {
    let sessions: Vec<_> = emulator
        .sessions()
        .await?
        .into_iter()
        .filter(|x| x.target == id)
        .collect();
    ensure!(!sessions.is_empty(), "the gateway saw no session to {id}");
    for session in &sessions {
        let role_session = session.owner.rsplit('/').next().unwrap_or_default();
        ensure!(
            session.owner.contains(":assumed-role/") && role_session.starts_with("passport-"),
            "session {} was opened by {}",
            session.session_id,
            session.owner
        );
        ensure!(session.document_name == document, "{session:?}");
    }
    let carried: u64 = sessions
        .iter()
        .map(|x| x.bytes_from_client + x.bytes_to_client)
        .sum();
    println!(
        "session manager: {} sessions to {id}, {carried} bytes carried",
        sessions.len()
    );
    Ok(())
}

fn windows_instance_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    format!("i-0{:016x}", nanos ^ 0x5e55)
}

/// A Windows-platform instance (the fake PowerShell sets its account up) whose 3389 is a service that
/// greets every connection: `connect` forwards a local port to it through the plugin (smux).
async fn windows(s: &Scenario<'_>, instance: &str) -> Result<()> {
    let rdp = TcpListener::bind("127.0.0.1:0").await?;
    let rdp_address = rdp.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = rdp.accept().await {
            tokio::spawn(async move {
                let _ = stream.write_all(b"RDP stand-in\n").await;
                let mut sink = Vec::new();
                let _ = stream.read_to_end(&mut sink).await;
            });
        }
    });
    let state = tempfile::tempdir()?;
    let runner = vec![
        "python3".to_owned(),
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("aws/fake_windows.py")
            .display()
            .to_string(),
        instance.to_owned(),
        state.path().display().to_string(),
        "member".to_owned(),
    ];
    s.emulator
        .register_agent_with_ports(instance, Platform::Windows, Some(runner), &[(3389, rdp_address)])
        .await?;
    s.bind("passport-requester", "Group", "developers")?;
    s.request("rdp", "alice", "1h", &[instance])?;
    s.wait_phase("rdp", Phase::Active, TIMEOUT).await?;
    let alice = through_plugin(s, "alice")?;
    let mut connect = via_ssm(alice.command(&["connect", "rdp", instance]), s.emulator)?;
    let mut child = connect.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let mut stdout = BufReader::new(child.stdout.take().context("stdout")?);
    let mut printed = String::new();
    while !printed.contains("Password: ") {
        let read = tokio::time::timeout(TIMEOUT, stdout.read_line(&mut printed)).await??;
        ensure!(read > 0, "connect ended after printing {printed:?}");
    }
    let host = printed
        .lines()
        .find_map(|l| l.strip_prefix("Host: localhost:"))
        .context("no Host line")?
        .trim()
        .to_owned();
    let greeting = eventually(Duration::from_secs(60), || async {
        let mut stream = TcpStream::connect(("127.0.0.1", host.parse::<u16>()?)).await?;
        let mut line = vec![0; 13];
        tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut line)).await??;
        Ok(line)
    })
    .await?;
    let _ = child.kill().await;
    ensure!(
        greeting == b"RDP stand-in\n",
        "read {greeting:?} through the forward"
    );
    sessions_were_scoped(s.emulator, instance, RDP_DOCUMENT).await
}
