//! `kubectl passport` on real parts, as alice would use it: request and wait, then ssh, scp and
//! `ssh -L` by instance id through `ssh-config`, `connect` with Ed25519 and RSA keys, extend, complete
//! (after which ssh is refused with the plugin's one line), bob refused on alice's request, and bad
//! input answered with one line each. Tunnels are direct (PASSPORT_DIRECT_ENDPOINTS to the instance's
//! loopback sshd); the Session Manager path is exercised up to StartSession.

#[path = "cli_checks.rs"]
mod checks;
#[path = "cli_doctor.rs"]
mod doctor;
#[path = "cli_support.rs"]
pub(crate) mod support;

use std::time::Duration;

use anyhow::{Context, Result, anyhow, ensure};
use kube::{Api, api::ListParams};
use passport_crds::{CredentialRequest, Phase};
use passport_tests::{
    instance::Instance,
    kubectl,
    ssh::banner,
    wait::{eventually, give_up},
};

use crate::scenario::{on_instance, on_shared_stack};
use crate::{E2e, benchmark, scenario::Scenario, test};
use checks::{bad_input, bench, session_manager_path, valid_before_within_expiry};
use support::{Plugin, free_port, output, until_allowed};

const PROVISION_TIMEOUT: Duration = Duration::from_secs(60);

pub fn trials() -> Vec<E2e> {
    vec![
        on_instance(
            "cli::journey_request_ssh_scp_forward_complete",
            "cli",
            |s, instance| Box::pin(journey(s, instance)),
        ),
        test("cli::bad_input_is_one_line", |env| async move {
            let s = on_shared_stack(&env, "clibad", &["dave"], &["i-0ddddddddddddddd4"]).await?;
            bad_input(&s).await
        }),
        test(
            "cli::doctor_explains_each_check_and_fails_when_use_is_blocked",
            |env| async move {
                let s = on_shared_stack(&env, "clidoctor", &["alice"], &[doctor::INSTANCE]).await?;
                doctor::doctor(&s).await
            },
        ),
        test(
            "cli::ssh_config_for_one_instance_says_why_not",
            |env| async move {
                let s = on_shared_stack(&env, "clione", &["dave"], &[doctor::INSTANCE]).await?;
                doctor::ssh_config_for_one_instance_says_why_not(&s).await
            },
        ),
        benchmark(on_instance("cli::bench_connect", "clibench", |s, instance| {
            Box::pin(bench(s, instance))
        })),
    ]
}

pub(crate) fn plugin_for(s: &Scenario<'_>, user: &str, instance: &Instance) -> Result<Plugin> {
    let direct = format!("{}=127.0.0.1:{}", instance.id(), instance.ssh_port());
    Plugin::new(s.plane.user_kubeconfig(user), &s.namespace, direct)
}

/// `request --wait` as alice; returns the generated request name.
pub(crate) async fn request_active(s: &Scenario<'_>, alice: &Plugin, instance: &Instance) -> Result<String> {
    s.bind("passport-requester", "Group", "developers")?;
    let args = [
        "request",
        "--instance",
        instance.id(),
        "--reason",
        "e2e: the CLI journey",
        "--duration",
        "1h",
        "--wait",
        "--account",
        &s.account,
    ];
    until_allowed(alice, &["list"]).await?;
    let run = alice.run(&args).await?.ok("request --wait")?;
    let line = run
        .stdout
        .lines()
        .find(|l| l.starts_with("AccessRequest ") && l.contains(" is Active"))
        .with_context(|| format!("no Active line in {}\n{}", run.stdout, run.stderr))?;
    let name = line.split_whitespace().nth(1).context("no name")?.to_owned();
    ensure!(name.starts_with("alice-"), "generated name {name}");
    Ok(name)
}

async fn journey(s: &Scenario<'_>, instance: &Instance) -> Result<()> {
    let alice = plugin_for(s, "alice", instance)?;
    let id = instance.id();
    let me = alice.run(&["whoami", "-o", "json"]).await?.ok("whoami")?;
    let me: serde_json::Value = serde_json::from_str(&me.stdout)?;
    ensure!(
        me["username"] == "alice" && me["groups"].to_string().contains("developers"),
        "{me}"
    );

    let name = request_active(s, &alice, instance).await?;
    let request = s.requests.get(&name).await?;
    let groups = request.metadata.annotations.clone().unwrap_or_default();
    ensure!(
        groups.get("passport.dev/requester-groups").map(String::as_str) == Some("developers"),
        "{groups:?}"
    );
    let user = crate::scenario::username(&request)?;
    let list = alice.run(&["list"]).await?.ok("list")?;
    ensure!(
        list.stdout.contains(&name) && list.stdout.contains("Active"),
        "{}",
        list.stdout
    );
    let get = alice.run(&["get", &name]).await?.ok("get")?;
    ensure!(
        get.stdout.contains(&user) && get.stdout.contains("Ready"),
        "{}",
        get.stdout
    );

    // ssh, scp and ssh -L by instance id through the generated config.
    let config = alice
        .run(&["ssh-config"])
        .await?
        .ok("ssh-config")?
        .stdout
        .trim()
        .to_owned();
    let whoami = output(
        alice.tool("ssh", &["-F", &config, "-o", "BatchMode=yes", id, "whoami"]),
        60,
    )
    .await?;
    let whoami = whoami.ok("ssh -F config whoami")?;
    ensure!(
        whoami.stdout.trim() == user,
        "ssh says {:?}, not {user}",
        whoami.stdout
    );
    doctor::ssh_config_for_one_instance(&alice, id, &user).await?;
    renews_an_expiring_certificate(s, &alice, &config, &name, id, &user).await?;
    scp_round_trip(&alice, &config, id).await?;
    port_forward(&alice, &config, instance).await?;

    // connect, with both key types.
    for key_type in ["ed25519", "rsa"] {
        let run = alice
            .run(&[
                "connect",
                &name,
                "--key-type",
                key_type,
                "--",
                "-o",
                "BatchMode=yes",
                "whoami",
            ])
            .await?
            .ok(&format!("connect --key-type {key_type}"))?;
        ensure!(
            run.stdout.trim() == user,
            "connect ({key_type}) logged in as {:?}",
            run.stdout
        );
    }
    let other = alice.run(&["connect", &name, "i-0aaaaaaaaaaaaaaa1"]).await?;
    other.one_error_line(&format!(
        "instance i-0aaaaaaaaaaaaaaa1 is not in AccessRequest {name}; its instances: {id}"
    ))?;

    // extend: growing works, shrinking shows the apiserver's refusal.
    alice
        .run(&["extend", &name, "--by", "30m"])
        .await?
        .ok("extend --by")?;
    ensure!(
        s.requests.get(&name).await?.spec.duration == "1h30m",
        "not extended"
    );
    let shrink = alice.run(&["extend", &name, "--to", "30m"]).await?;
    shrink.one_error_line("may only grow")?;
    let logbook = alice.run(&["logbook", &name]).await?.ok("logbook")?;
    ensure!(
        logbook.stdout.contains("Created") && logbook.stdout.contains("Provisioned"),
        "{}",
        logbook.stdout
    );
    // An administrator deletes every Event of the namespace: the trail is still whole, from the
    // durable record, with who did what and each entry's stable id.
    kubectl::run(
        &s.plane.admin_kubeconfig(),
        &["delete", "events", "--all", "-n", &s.namespace],
        None,
    )?
    .ok()?;
    let trail = alice
        .run(&["logbook", &name, "-o", "json"])
        .await?
        .ok("logbook -o json")?;
    let trail: serde_json::Value = serde_json::from_str(&trail.stdout)?;
    let recorded: Vec<(&str, &str)> = trail["entries"]
        .as_array()
        .context("no entries")?
        .iter()
        .filter(|e| e["source"] == "record")
        .map(|e| {
            (
                e["what"].as_str().unwrap_or_default(),
                e["id"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    ensure!(
        ["Created", "Approved", "Provisioned", "Extended"]
            .iter()
            .all(|what| recorded.iter().any(|(w, id)| w == what && !id.is_empty())),
        "the record lost entries once the Events were deleted: {recorded:?}"
    );

    // bob cannot get credentials for alice's request.
    let bob = plugin_for(s, "bob", instance)?;
    let refused = bob
        .run(&["connect", &name, "--", "-o", "BatchMode=yes", "whoami"])
        .await?;
    ensure!(
        refused.code != Some(0) && refused.stdout.trim() != user,
        "bob connected: {refused:?}"
    );
    ensure!(
        refused.stderr.contains("RequesterMismatch") || refused.stderr.contains("you may not"),
        "bob's refusal: {}",
        refused.stderr
    );
    refused.one_error_line("refused")?;

    session_manager_path(s, &alice, &name, id).await?;
    valid_before_within_expiry(s, &name).await?;

    // complete: access ends, and ssh says why.
    alice.run(&["complete", &name]).await?.ok("complete")?;
    s.wait_phase(&name, Phase::Completed, PROVISION_TIMEOUT).await?;
    let after = output(
        alice.tool("ssh", &["-F", &config, "-o", "BatchMode=yes", id, "whoami"]),
        60,
    )
    .await?;
    ensure!(
        after.code != Some(0),
        "ssh still works after completion: {after:?}"
    );
    ensure!(
        after
            .stderr
            .contains(&format!("AccessRequest {name} is Completed: access has ended")),
        "ssh's stderr: {}",
        after.stderr
    );
    alice
        .run(&["connect", &name])
        .await?
        .one_error_line("is Completed: access has ended")?;
    Ok(())
}

/// A certificate about to expire (its record says 30s left) is replaced before ssh reads it: one
/// more CredentialRequest, and the login still works.
async fn renews_an_expiring_certificate(
    s: &Scenario<'_>,
    alice: &Plugin,
    config: &str,
    name: &str,
    id: &str,
    user: &str,
) -> Result<()> {
    let api: Api<CredentialRequest> = Api::namespaced(s.admin.clone(), &s.namespace);
    let count = || async { Ok::<_, anyhow::Error>(api.list(&ListParams::default()).await?.items.len()) };
    let before = count().await?;
    let record = alice.cache_dir().join(format!(
        "passport/alice@passport-local/{}/{name}/id_ed25519.issued.json",
        s.namespace
    ));
    let mut issued: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&record)?)?;
    issued["validBefore"] = (jiff::Timestamp::now().as_second() + 30).into();
    std::fs::write(&record, issued.to_string())?;
    let again = output(
        alice.tool("ssh", &["-F", config, "-o", "BatchMode=yes", id, "whoami"]),
        60,
    )
    .await?;
    ensure!(
        again.ok("ssh after renewal")?.stdout.trim() == user,
        "wrong user after renewal"
    );
    ensure!(
        count().await? == before + 1,
        "the expiring certificate was not renewed once"
    );
    Ok(())
}

async fn scp_round_trip(alice: &Plugin, config: &str, id: &str) -> Result<()> {
    let local = alice.cache_dir().join("scp-out.txt");
    let back = alice.cache_dir().join("scp-back.txt");
    let content = format!("passport e2e {}\n", jiff::Timestamp::now());
    std::fs::write(&local, &content)?;
    let remote = format!("{id}:/tmp/passport-cli-e2e.txt");
    let (local_s, back_s) = (local.to_string_lossy(), back.to_string_lossy());
    output(
        alice.tool("scp", &["-F", config, "-o", "BatchMode=yes", &local_s, &remote]),
        60,
    )
    .await?
    .ok("scp to the instance")?;
    output(
        alice.tool("scp", &["-F", config, "-o", "BatchMode=yes", &remote, &back_s]),
        60,
    )
    .await?
    .ok("scp from the instance")?;
    ensure!(
        std::fs::read_to_string(&back)? == content,
        "scp round trip changed the file"
    );
    Ok(())
}

/// `ssh -L` through the instance to its own sshd (which listens on the loopback port it shares with
/// the host, not 22): the forwarded port answers with an SSH banner.
async fn port_forward(alice: &Plugin, config: &str, instance: &Instance) -> Result<()> {
    let (port, id) = (free_port()?, instance.id());
    let forward = format!("{port}:127.0.0.1:{}", instance.ssh_port());
    let mut ssh = alice.tool(
        "ssh",
        &[
            "-F",
            config,
            "-o",
            "BatchMode=yes",
            "-o",
            "ExitOnForwardFailure=yes",
            "-N",
            "-L",
            &forward,
            id,
        ],
    );
    let mut child = ssh
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let result = eventually(Duration::from_secs(30), || {
        let exited = child.try_wait();
        async move {
            if let Some(status) = exited? {
                return Err(give_up(anyhow!("ssh -L exited with {status}")));
            }
            let answer = banner(port).await;
            ensure!(
                answer.as_deref().is_ok_and(|text| text.starts_with("SSH-2.0-")),
                "no SSH banner through the forward on port {port}: {answer:?}"
            );
            Ok(())
        }
    })
    .await;
    let _ = child.kill().await;
    result
}
