//! SHA-1 (`ssh-rsa`) certificates for old servers, on real parts: two instances, a default (modern)
//! sshd and one that, like OpenSSH before 8.2 configured for it (or before 7.2 by necessity), takes
//! only `ssh-rsa` CA signatures (`CASignatureAlgorithms ssh-rsa`). Through the config `kubectl
//! passport ssh-config --key-type rsa` writes, an RSA-key user logs in to both: the modern one with
//! the rsa-sha2-512 certificate, the old one with the `ssh-rsa` one offered after it (its log shows
//! the SHA-2 one refused first). An Ed25519 key still logs in to the modern one.

// The same helpers `cli` uses (its module keeps them private); not all are needed here.
#[path = "cli_support.rs"]
#[allow(dead_code, clippy::duplicate_mod)]
mod support;

use anyhow::{Context, Result, ensure};
use passport_tests::{aws::Platform, instance::Instance};

use crate::{
    E2e,
    scenario::{Scenario, on_shared_stack, online_instance},
    test,
};
use support::{Plugin, output, until_allowed};

/// What the old server is told: only SHA-1 CA signatures (sshd's `-o`, which wins over the
/// sshd_config the provisioning script edits).
const SHA1_ONLY: &str = "CASignatureAlgorithms=ssh-rsa";

pub fn trials() -> Vec<E2e> {
    vec![test(
        "sha1_certs::rsa_logs_in_to_sha1_only_and_default_sshd_ed25519_to_default",
        |env| async move {
            let emulator = env.emulator().await?;
            let modern = online_instance(emulator).await?;
            let old = Instance::start_with_sshd_options(&[SHA1_ONLY]).await?;
            emulator
                .register_agent(old.id(), Platform::Linux, Some(old.runner_argv()))
                .await?;
            let s = on_shared_stack(&env, "sha1", &["alice"], &[modern.id(), old.id()]).await?;
            checks(&s, &modern, &old).await
        },
    )]
}

async fn checks(s: &Scenario<'_>, modern: &Instance, old: &Instance) -> Result<()> {
    let direct = format!(
        "{}=127.0.0.1:{},{}=127.0.0.1:{}",
        modern.id(),
        modern.ssh_port(),
        old.id(),
        old.ssh_port()
    );
    let alice = Plugin::new(s.plane.user_kubeconfig("alice"), &s.namespace, direct)?;
    s.bind("passport-requester", "Group", "developers")?;
    until_allowed(&alice, &["list"]).await?;
    let request = [
        "request",
        "--instance",
        modern.id(),
        "--instance",
        old.id(),
        "--reason",
        "e2e: SHA-1 certificates for an old sshd",
        "--duration",
        "1h",
        "--wait",
        "--account",
        &s.account,
    ];
    let run = alice.run(&request).await?.ok("request --wait")?;
    let name = run
        .stdout
        .lines()
        .find(|l| l.starts_with("AccessRequest ") && l.contains(" is Active"))
        .and_then(|l| l.split_whitespace().nth(1))
        .with_context(|| format!("no Active line in {}\n{}", run.stdout, run.stderr))?
        .to_owned();
    let user = crate::scenario::username(&s.requests.get(&name).await?)?;

    // RSA: the config offers the SHA-2 certificate, then the ssh-rsa one.
    let config = ssh_config(&alice, &["ssh-config", &name, "--key-type", "rsa"]).await?;
    let text = std::fs::read_to_string(&config)?;
    ensure!(
        text.contains("id_rsa-cert.pub\n  CertificateFile ")
            && text
                .contains("id_rsa-sha1-cert.pub\n  PubkeyAcceptedAlgorithms +ssh-rsa-cert-v01@openssh.com\n"),
        "the RSA entries do not offer both certificates:\n{text}"
    );
    for instance in [modern, old] {
        let whoami = whoami(&alice, &config, instance).await?;
        ensure!(
            whoami == user,
            "rsa on {}: logged in as {whoami:?}",
            instance.id()
        );
    }
    let written = std::fs::read_dir(config.parent().context("config dir")?)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect::<Vec<_>>();
    ensure!(
        written.iter().any(|n| n == "id_rsa-sha1-cert.pub"),
        "no SHA-1 certificate file beside the key: {written:?}"
    );
    let sha1 = std::fs::read_to_string(config.with_file_name("id_rsa-sha1-cert.pub"))?;
    let sha1_path = config.with_file_name("id_rsa-sha1-cert.pub");
    let described = output(
        alice.tool("ssh-keygen", &["-L", "-f", &sha1_path.to_string_lossy()]),
        30,
    )
    .await?
    .ok("ssh-keygen -L")?;
    ensure!(
        described.stdout.contains("(using ssh-rsa)") && sha1.starts_with("ssh-rsa-cert-v01@openssh.com "),
        "{}",
        described.stdout
    );
    // The old server was offered the SHA-2 certificate first and refused it for its CA signature:
    // the login it let in was the ssh-rsa one.
    let log = old.log_tail();
    ensure!(
        log.contains("certificate signature algorithm rsa-sha2-512"),
        "the SHA-1-only sshd did not refuse the SHA-2 certificate first; its log:\n{log}"
    );

    // Ed25519 (the default key type): one certificate, the modern server.
    let config = ssh_config(&alice, &["ssh-config", &name]).await?;
    let text = std::fs::read_to_string(&config)?;
    ensure!(
        !text.contains("-sha1-cert.pub") && !text.contains("PubkeyAcceptedAlgorithms"),
        "an Ed25519 entry names SHA-1 things:\n{text}"
    );
    let whoami = whoami(&alice, &config, modern).await?;
    ensure!(whoami == user, "ed25519: logged in as {whoami:?}");
    Ok(())
}

async fn ssh_config(alice: &Plugin, args: &[&str]) -> Result<std::path::PathBuf> {
    let path = alice.run(args).await?.ok(&args.join(" "))?.stdout;
    Ok(std::path::PathBuf::from(path.trim()))
}

async fn whoami(alice: &Plugin, config: &std::path::Path, instance: &Instance) -> Result<String> {
    let config = config.to_string_lossy();
    let run = output(
        alice.tool(
            "ssh",
            &["-F", &config, "-o", "BatchMode=yes", instance.id(), "whoami"],
        ),
        60,
    )
    .await?
    .ok(&format!("ssh -F config {} whoami", instance.id()))
    .with_context(|| format!("sshd log of {}:\n{}", instance.id(), instance.log_tail()))?;
    Ok(run.stdout.trim().to_owned())
}
