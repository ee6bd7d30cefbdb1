//! `connect`: credentials for one instance, then ssh (Linux) or an RDP tunnel with the unsealed
//! password (Windows). Host keys are pinned under the instance id; nothing is trusted on first use.

use std::{os::unix::process::CommandExt, process::ExitCode};

use anyhow::{Context, Result, anyhow, bail};
use passport_crds::{KeyType, sealed::WINDOWS_PASSWORD};

use crate::{
    args::{ConnectArgs, Output},
    credentials::{self, Issued, Need},
    keys::KeyDir,
    output,
    proxy::{self, Document, MIN_VALIDITY},
    session::Session,
    sshcmd::{self, ProxySpec},
    ssm, target, tunnel,
};

/// The RDP port on a Windows instance.
const RDP_PORT: u16 = 3389;

pub async fn run(session: &Session, args: &ConnectArgs, format: Output) -> Result<ExitCode> {
    let request = session.request(&args.name).await?;
    target::ensure_active(&request)?;
    let instance = target::resolve_instance(&request, args.instance.as_deref())?;
    let direct = proxy::direct_for(&args.tunnel, &instance)?;
    if direct.is_none() {
        ssm::find_plugin()?;
    }
    let key_type = KeyType::from(args.tunnel.key_type);
    let keys = KeyDir::open(&session.context, &session.namespace, &args.name, key_type)?;
    let need = Need {
        min_validity: MIN_VALIDITY,
        aws_session: direct.is_none(),
    };
    let issued = credentials::ensure(session, &request, &keys, need).await?;
    if target::is_windows(&request, &instance) {
        return rdp(&keys, &issued, &instance, direct, format).await;
    }
    let exe = std::env::current_exe().context("locating this binary for ssh's ProxyCommand")?;
    let spec = ProxySpec {
        exe: &exe,
        kubeconfig: session.kubeconfig.as_deref(),
        context: &session.context,
        namespace: &session.namespace,
        request: &args.name,
        key_type,
        direct: &args.tunnel.direct,
    };
    let ssh_args = sshcmd::connect_args(
        &keys,
        &instance,
        &issued.username,
        &spec.command(false),
        &args.ssh_args,
    );
    tracing::debug!(?ssh_args, "running ssh");
    let err = std::process::Command::new("ssh").args(&ssh_args).exec();
    bail!("cannot run ssh: {err}; install the OpenSSH client")
}

/// What a person types into their RDP client.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct RdpDetails<'a> {
    instance: &'a str,
    host: String,
    username: &'a str,
    password: &'a str,
}

fn print_rdp(details: &RdpDetails<'_>, format: Output) -> Result<()> {
    if !output::structured(format, details)? {
        println!(
            "Windows instance {}: point your RDP client at {}",
            details.instance, details.host
        );
        println!("  Host:      {}", details.host);
        println!("  Username:  {}", details.username);
        println!("  Password:  {}", details.password);
        println!("The tunnel stays open until you press Ctrl-C.");
    }
    use std::io::Write;
    std::io::stdout().flush()?;
    Ok(())
}

/// Unseals the instance's password, opens a local port forward to its RDP port and holds it until
/// Ctrl-C.
async fn rdp(
    keys: &KeyDir,
    issued: &Issued,
    instance: &str,
    direct: Option<String>,
    format: Output,
) -> Result<ExitCode> {
    let password = credentials::unseal(keys, issued, WINDOWS_PASSWORD, Some(instance))?;
    let password =
        String::from_utf8(password).map_err(|_| anyhow!("the sealed Windows password is not UTF-8"))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("opening a local port")?;
    let port = listener.local_addr()?.port();
    let details = RdpDetails {
        instance,
        host: format!("localhost:{port}"),
        username: &issued.username,
        password: &password,
    };
    match direct {
        Some(address) => {
            print_rdp(&details, format)?;
            tokio::select! {
                result = tunnel::forward(listener, address) => result?,
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        None => {
            // The plugin listens on the port itself.
            drop(listener);
            let started = proxy::session_manager(
                keys,
                issued,
                instance,
                RDP_PORT,
                Document::PortForwarding { local: port },
            )
            .await?;
            let plugin = ssm::find_plugin()?;
            let creds = credentials::aws_session(keys, issued)?;
            let mut command = tokio::process::Command::from(ssm::plugin_command(&plugin, &started, &creds));
            let mut child = command
                .stdout(std::process::Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("running {}", plugin.display()))?;
            print_rdp(&details, format)?;
            tokio::select! {
                status = child.wait() => {
                    let status = status?;
                    if !status.success() {
                        bail!("{} ended with {status}: the tunnel is closed", ssm::PLUGIN);
                    }
                }
                _ = tokio::signal::ctrl_c() => {
                    let _ = child.kill().await;
                }
            }
        }
    }
    eprintln!("kubectl-passport: tunnel to {instance} closed");
    Ok(ExitCode::SUCCESS)
}
