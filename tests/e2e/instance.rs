//! The test instance itself (see `passport_tests::instance`): scripts run as the SSM agent would run
//! them, users they create exist only inside, SSH logins work against pinned host keys, `pkill -u`
//! inside reaches the instance's processes and nothing of the host's, and stopping leaves nothing
//! behind. Needs root; no control plane.

use std::{
    fs,
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, ensure};
use passport_tests::{
    instance::Instance,
    ssh,
    wait::{eventually, give_up},
};

use crate::{E2e, alone};

const USER: &str = "rs-0000abcd";

pub fn trials() -> Vec<E2e> {
    vec![
        alone(
            "instance::scripts_create_users_only_inside",
            scripts_create_users_only_inside,
        ),
        alone(
            "instance::ssh_login_with_pinned_host_keys",
            ssh_login_with_pinned_host_keys,
        ),
        alone(
            "instance::pkill_inside_spares_the_host",
            pkill_inside_spares_the_host,
        ),
        alone("instance::stop_leaves_nothing_behind", stop_leaves_nothing_behind),
    ]
}

/// Boots an instance and reports how long that took (the per-instance start time).
async fn start() -> Result<Instance> {
    let started = Instant::now();
    let instance = Instance::start().await?;
    eprintln!("instance {} started in {:?}", instance.id(), started.elapsed());
    Ok(instance)
}

/// A script like passport's provisioning would send: bash via the shebang, under `sh -c`.
fn create_user_script() -> String {
    format!(
        "#!/bin/bash\nset -euo pipefail\n\
         useradd --create-home --shell /bin/bash --user-group --comment passport -- {USER}\n\
         usermod --password '*' -- {USER}\n\
         echo \"created {USER}\"\n\
         echo \"shell=$BASH_VERSION script=$0 cwd=$PWD id=$AWS_SSM_INSTANCE_ID\"\n"
    )
}

async fn scripts_create_users_only_inside() -> Result<()> {
    let instance = start().await?;
    let outcome = instance.run_script(&create_user_script()).await?.ok()?;
    ensure!(outcome.stdout.contains(&format!("created {USER}")), "{outcome:?}");
    // Run as the agent runs it: the orchestration file, bash from the shebang, cwd /usr/bin.
    let orchestration = format!(
        "script=/var/lib/amazon/ssm/{}/document/orchestration/",
        instance.id()
    );
    ensure!(
        outcome.stdout.contains(&orchestration),
        "not run from the orchestration directory: {outcome:?}"
    );
    ensure!(
        outcome
            .stdout
            .contains("/awsrunShellScript/0.awsrunShellScript/_script.sh"),
        "{outcome:?}"
    );
    ensure!(
        outcome.stdout.contains("shell=5."),
        "the shebang's bash did not run the script: {outcome:?}"
    );
    ensure!(
        outcome
            .stdout
            .contains(&format!("cwd=/usr/bin id={}", instance.id())),
        "{outcome:?}"
    );

    // A failing script is an outcome, with its exit code and both streams.
    let failed = instance.run_script("echo out; echo err >&2; exit 7").await?;
    ensure!(
        failed.exit_code == 7 && failed.stdout == "out\n" && failed.stderr == "err\n",
        "{failed:?}"
    );

    let inside = instance.exec(&["getent", "passwd", USER]).await?.ok()?;
    ensure!(inside.stdout.starts_with(&format!("{USER}:x:")), "{inside:?}");
    ensure!(
        inside
            .stdout
            .trim_end()
            .ends_with(&format!(":/home/{USER}:/bin/bash")),
        "{inside:?}"
    );
    let home = instance
        .exec(&["stat", "-c", "%U %a", &format!("/home/{USER}")])
        .await?
        .ok()?;
    ensure!(home.stdout.starts_with(USER), "home directory inside: {home:?}");
    ensure!(
        instance.root().join("home").join(USER).is_dir(),
        "no home seen through {}",
        instance.root().display()
    );

    let host = tokio::process::Command::new("getent")
        .args(["passwd", USER])
        .output()
        .await?;
    ensure!(
        !host.status.success(),
        "{USER} exists on the host: {}",
        String::from_utf8_lossy(&host.stdout)
    );
    ensure!(
        !Path::new("/home").join(USER).exists(),
        "/home/{USER} exists on the host"
    );
    let host_passwd = fs::read_to_string("/etc/passwd")?;
    ensure!(
        !host_passwd.contains(USER),
        "the host's /etc/passwd mentions {USER}"
    );
    instance.stop();
    Ok(())
}

/// A key pair for `user`'s login, its authorized_keys installed inside, and a known_hosts file; all
/// in `dir`. Returns the private key's path.
async fn prepare_login(instance: &Instance, dir: &Path) -> Result<std::path::PathBuf> {
    instance.run_script(&create_user_script()).await?.ok()?;
    let key = dir.join("id_ed25519");
    ssh::generate_key(&key, &["-t", "ed25519"]).await?;
    let public = fs::read_to_string(key.with_extension("pub"))?;
    let install = format!(
        "#!/bin/bash\nset -euo pipefail\n\
         install -d -m 0700 -o {USER} -g {USER} /home/{USER}/.ssh\n\
         printf '%s\\n' '{}' >/home/{USER}/.ssh/authorized_keys\n\
         chown {USER}:{USER} /home/{USER}/.ssh/authorized_keys\n\
         chmod 0600 /home/{USER}/.ssh/authorized_keys\n",
        public.trim()
    );
    instance.run_script(&install).await?.ok()?;
    fs::write(dir.join("known_hosts"), instance.known_hosts())?;
    Ok(key)
}

/// `ssh` as [`USER`] with the key from [`prepare_login`], host keys pinned by `dir/known_hosts`.
fn ssh(instance: &Instance, dir: &Path, key: &Path, command: &str) -> tokio::process::Command {
    let known_hosts = dir.join("known_hosts");
    ssh::pinned_command(key, None, &known_hosts, USER, instance.ssh_port(), command)
}

async fn ssh_login_with_pinned_host_keys() -> Result<()> {
    let instance = start().await?;
    let dir = tempfile::tempdir()?;
    let key = prepare_login(&instance, dir.path()).await?;
    ensure!(
        instance
            .host_keys()
            .iter()
            .any(|key| key.starts_with("ssh-ed25519 ")),
        "{:?}",
        instance.host_keys()
    );

    let output = ssh(&instance, dir.path(), &key, "whoami").output().await?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    ensure!(
        output.status.success() && stdout.trim() == USER,
        "ssh whoami: {} {stdout}{}\nsshd log:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        instance.log_tail()
    );

    // sshd survives a reload the way passport's provisioning does it (SIGHUP to the PID in its pid
    // file) and still lets the user in.
    let reload = "#!/bin/bash\nset -euo pipefail\npid=\"$(cat /run/sshd.pid)\"\n\
                  [ \"$(cat /proc/$pid/comm)\" = sshd ]\nkill -HUP \"$pid\"\n";
    instance.run_script(reload).await?.ok()?;
    eventually(Duration::from_secs(20), || async {
        if !instance.is_running() {
            return Err(give_up(anyhow!(
                "the instance stopped after sshd's reload; sshd log:\n{}",
                instance.log_tail()
            )));
        }
        let again = ssh(&instance, dir.path(), &key, "whoami").output().await?;
        ensure!(
            again.status.success() && String::from_utf8_lossy(&again.stdout).trim() == USER,
            "no login after sshd's reload: {}\nsshd log:\n{}",
            String::from_utf8_lossy(&again.stderr),
            instance.log_tail()
        );
        Ok(())
    })
    .await?;
    ensure!(
        instance.log_tail().contains("Received SIGHUP; restarting."),
        "sshd did not reload"
    );

    // The pinning is real: another instance's keys under this one's address make ssh refuse it.
    let stranger = start().await?;
    let wrong = stranger.known_hosts().replace(
        &format!(":{}]", stranger.ssh_port()),
        &format!(":{}]", instance.ssh_port()),
    );
    fs::write(dir.path().join("known_hosts"), wrong)?;
    let refused = ssh(&instance, dir.path(), &key, "whoami").output().await?;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    ensure!(!refused.status.success(), "ssh accepted an unknown host key");
    ensure!(
        stderr.contains("HOST IDENTIFICATION HAS CHANGED") || stderr.contains("verification failed"),
        "{stderr}"
    );
    stranger.stop();
    instance.stop();
    Ok(())
}

async fn pkill_inside_spares_the_host() -> Result<()> {
    let instance = start().await?;
    let dir = tempfile::tempdir()?;
    let key = prepare_login(&instance, dir.path()).await?;
    let uid = instance
        .exec(&["id", "-u", USER])
        .await?
        .ok()?
        .stdout
        .trim()
        .to_owned();

    // A session held open, and on the host a process of the very same uid.
    let mut session = ssh(&instance, dir.path(), &key, "sleep 600")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    // (--pdeathsig: it dies with this test even if the run is killed.)
    let mut host_process = tokio::process::Command::new("setpriv")
        .args([
            "--pdeathsig=KILL",
            &format!("--reuid={uid}"),
            &format!("--regid={uid}"),
            "--clear-groups",
        ])
        .args(["--", "sleep", "600"])
        .kill_on_drop(true)
        .spawn()
        .context("starting a host process as the instance user's uid")?;
    let host_pid = host_process.id().context("no pid")?;

    let inside = &instance;
    eventually(Duration::from_secs(20), || {
        let ended = session.try_wait();
        async move {
            if let Some(status) = ended? {
                return Err(give_up(anyhow!(
                    "the ssh session ended early ({status}); sshd log:\n{}",
                    inside.log_tail()
                )));
            }
            let found = inside.exec(&["pgrep", "-u", USER, "-x", "sleep"]).await?;
            ensure!(found.success(), "the session's sleep never showed up inside");
            Ok(())
        }
    })
    .await?;
    let seen = instance.exec(&["pgrep", "-u", USER]).await?.ok()?;
    ensure!(
        !seen.stdout.lines().any(|pid| pid.trim() == host_pid.to_string()),
        "the host process is visible inside"
    );

    let kill = format!("#!/bin/bash\npkill -KILL -u {USER}\necho \"pkill exit $?\"\n");
    let killed = instance.run_script(&kill).await?.ok()?;
    ensure!(killed.stdout.contains("pkill exit 0"), "{killed:?}");

    let status = tokio::time::timeout(Duration::from_secs(20), session.wait())
        .await
        .context("the ssh session survived pkill inside the instance")??;
    ensure!(
        !status.success(),
        "ssh exited successfully although its session was killed"
    );
    // A killed process may take a moment to be reaped.
    eventually(Duration::from_secs(5), || async {
        let left = instance.exec(&["pgrep", "-u", USER]).await?;
        ensure!(left.exit_code == 1, "processes of {USER} left inside: {left:?}");
        Ok(())
    })
    .await?;

    ensure!(
        host_process.try_wait()?.is_none(),
        "pkill inside the instance killed a host process of uid {uid}"
    );
    let status = fs::read_to_string(format!("/proc/{host_pid}/status"))?;
    ensure!(
        status
            .lines()
            .any(|line| line.starts_with("State:") && !line.contains("zombie")),
        "{status}"
    );
    host_process.kill().await?;
    instance.stop();
    Ok(())
}

async fn stop_leaves_nothing_behind() -> Result<()> {
    let instance = start().await?;
    let (pid, port, id) = (instance.host_pid(), instance.ssh_port(), instance.id().to_owned());
    let host_dir = instance.host_dir().to_path_buf();
    // Something running in the background, as scripts leave daemons behind.
    let daemon = "#!/bin/bash\nsetsid sleep 600 </dev/null >/dev/null 2>&1 &\nuseradd -m rs-0000dead\n";
    instance.run_script(daemon).await?.ok()?;
    ensure!(
        instance.exec(&["pgrep", "-x", "sleep"]).await?.success(),
        "the background sleep is not running"
    );
    let inside = processes_in_pid_namespace_of(pid)?;
    ensure!(
        inside.len() >= 2,
        "expected sshd and sleep in the instance, found {inside:?}"
    );
    let upper = format!("{}/mnt/upper", host_dir.display());
    ensure!(
        processes_with_mount_mentioning(&upper)? > 0,
        "cannot see the instance's overlay in any mountinfo"
    );
    ensure!(
        !fs::read_to_string("/proc/self/mounts")?.contains(&*host_dir.to_string_lossy()),
        "mount leaked to host"
    );

    let stopping = Instant::now();
    instance.stop();
    eprintln!("instance {id} stopped in {:?}", stopping.elapsed());
    ensure!(!instance.is_running(), "still running after stop");
    let survivors: Vec<&Process> = inside.iter().filter(|process| process.is_alive()).collect();
    ensure!(
        survivors.is_empty(),
        "processes of the instance survived stop: {survivors:?}"
    );
    ensure!(
        tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err(),
        "port {port} still accepts connections"
    );
    ensure!(
        processes_with_mount_mentioning(&upper)? == 0,
        "a mount of the instance survived stop"
    );
    ensure!(
        !fs::read_to_string("/proc/mounts")?.contains(&*host_dir.to_string_lossy()),
        "a mount is left on the host"
    );
    ensure!(
        !fs::read_to_string("/etc/passwd")?.contains("rs-0000dead"),
        "the user reached the host"
    );
    drop(instance);
    ensure!(!host_dir.exists(), "{} is left on the host", host_dir.display());
    Ok(())
}

/// A host process, identified by PID and start time so a recycled PID is not mistaken for it.
#[derive(Debug, PartialEq, Eq)]
struct Process {
    pid: String,
    start_time: String,
    comm: String,
}

impl Process {
    fn read(pid: &str) -> Option<Self> {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the parenthesised command name; the start time is field 22 of the line.
        let (head, rest) = stat.rsplit_once(')')?;
        let comm = head.split_once('(')?.1.to_owned();
        let start_time = rest.split_whitespace().nth(19)?.to_owned();
        Some(Self {
            pid: pid.to_owned(),
            start_time,
            comm,
        })
    }

    fn is_alive(&self) -> bool {
        Process::read(&self.pid).is_some_and(|now| now == *self)
    }
}

/// The host processes in the same PID namespace as `pid`.
fn processes_in_pid_namespace_of(pid: u32) -> Result<Vec<Process>> {
    let ns = fs::read_link(format!("/proc/{pid}/ns/pid"))?;
    let mut found = Vec::new();
    for name in proc_pids()? {
        if fs::read_link(format!("/proc/{name}/ns/pid")).is_ok_and(|link| link == ns)
            && let Some(process) = Process::read(&name)
        {
            found.push(process);
        }
    }
    Ok(found)
}

fn proc_pids() -> Result<Vec<String>> {
    let mut pids = Vec::new();
    for entry in fs::read_dir("/proc")? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.bytes().all(|b| b.is_ascii_digit()) {
            pids.push(name);
        }
    }
    Ok(pids)
}

/// How many host processes have a mount whose line in their mountinfo mentions `needle`.
fn processes_with_mount_mentioning(needle: &str) -> Result<usize> {
    Ok(proc_pids()?
        .iter()
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/mountinfo")).is_ok_and(|info| info.contains(needle))
        })
        .count())
}
