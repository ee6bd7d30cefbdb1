//! `connect`: credentials for one instance, then ssh (Linux) or an RDP tunnel with the unsealed
//! password (Windows). Host keys are pinned under the instance id; nothing is trusted on first use.

use std::{io::Write, os::unix::process::CommandExt, process::ExitCode};

use anyhow::{Context, Result, anyhow, bail};
use passport_crds::sealed::WINDOWS_PASSWORD;

use super::{proxy, reach::reach};
use crate::{
    args::ConnectArgs,
    cluster::{access_request, session::Session},
    transport::{
        session_manager::{self, Document},
        ssh_command, tcp,
    },
    ui::format::{OutputFormat, structured},
    workstation::{issued::Issued, key_dir::KeyDir, sealing},
};

/// The RDP port on a Windows instance.
const RDP_PORT: u16 = 3389;

pub async fn run(session: &Session, args: &ConnectArgs, format: OutputFormat) -> Result<ExitCode> {
    let reach = reach(session, &args.name, args.instance.as_deref(), &args.tunnel).await?;
    if access_request::is_windows(&reach.request, &reach.instance) {
        // On a domain controller the account is the request's own domain account, not the usual name.
        let username = access_request::target_username(&reach.request, &reach.instance)
            .unwrap_or(&reach.issued.username);
        let target = RdpTarget {
            instance: &reach.instance,
            username,
        };
        return rdp(&reach.keys, &reach.issued, &target, reach.direct.clone(), format).await;
    }
    let exe = std::env::current_exe().context("locating this binary for ssh's ProxyCommand")?;
    let proxy = proxy::invocation(session, &exe, &args.name, &args.tunnel).command(false);
    let ssh_args = ssh_command::connect_args(
        &reach.keys,
        &reach.instance,
        &reach.issued.username,
        &proxy,
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

fn print_rdp(details: &RdpDetails<'_>, format: OutputFormat) -> Result<()> {
    if !structured(format, details)? {
        print!("{}", rdp_text(details));
        eprintln!(
            "kubectl-passport: RDP to {} is forwarded to {}; the tunnel stays open until Ctrl-C",
            details.instance, details.host
        );
    }
    std::io::stdout().flush()?;
    Ok(())
}

/// The lines the seeds print, exactly; what else a person needs to know goes to stderr.
fn rdp_text(details: &RdpDetails<'_>) -> String {
    format!(
        "Windows Login Credentials:\nHost: {}\nUsername: {}\nPassword: {}\n",
        details.host, details.username, details.password
    )
}

/// The Windows instance to reach and the account to log on as.
struct RdpTarget<'a> {
    instance: &'a str,
    username: &'a str,
}

/// Unseals the instance's password, opens a local port forward to its RDP port and holds it until
/// Ctrl-C.
async fn rdp(
    keys: &KeyDir,
    issued: &Issued,
    target: &RdpTarget<'_>,
    direct: Option<String>,
    format: OutputFormat,
) -> Result<ExitCode> {
    let RdpTarget { instance, username } = *target;
    let password = sealing::unseal(keys, issued.sealed(), WINDOWS_PASSWORD, Some(instance))?;
    let password =
        String::from_utf8(password).map_err(|_| anyhow!("the sealed Windows password is not UTF-8"))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("opening a local port")?;
    let port = listener.local_addr()?.port();
    let details = RdpDetails {
        instance,
        host: format!("localhost:{port}"),
        username,
        password: &password,
    };
    match direct {
        Some(address) => {
            print_rdp(&details, format)?;
            tokio::select! {
                result = tcp::forward(listener, address) => result?,
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        None => {
            // The plugin listens on the port itself.
            drop(listener);
            let document = Document::PortForwarding { local: port };
            let plugin = session_manager::open(keys, issued, instance, RDP_PORT, document).await?;
            let program = plugin.get_program().to_string_lossy().into_owned();
            let mut child = tokio::process::Command::from(plugin)
                .stdout(std::process::Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("running {program}"))?;
            print_rdp(&details, format)?;
            tokio::select! {
                status = child.wait() => {
                    let status = status?;
                    if !status.success() {
                        bail!("{} ended with {status}: the tunnel is closed", session_manager::PLUGIN);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rdp_credentials_are_printed_as_the_seeds_print_them() {
        let details = RdpDetails {
            instance: "i-0123456789abcdef0",
            host: "localhost:53389".into(),
            username: "rs-5f3a9c21",
            password: "pa55-word",
        };
        assert_eq!(
            rdp_text(&details),
            "Windows Login Credentials:\nHost: localhost:53389\nUsername: rs-5f3a9c21\nPassword: pa55-word\n"
        );
    }
}
