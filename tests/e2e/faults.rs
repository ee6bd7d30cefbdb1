//! Network faults between the operator and what it talks to, on real connections: toxiproxy between
//! the operator and the apiserver (a TCP proxy in front of its TLS port; the operator's kubeconfig
//! names the proxy) and between the operator and AWS (the emulator, through `AWS_ENDPOINT_URL`).
//! Each fault gets a request of its own that starts while the fault is on, so the operator's first
//! calls for it go through that fault: added latency, connections reset when the answer comes
//! (the server acted, the client never hears), answers swallowed until the connection is closed, and
//! a full outage (connections refused). The same again when the requests are completed. Whatever
//! the faults hit, every request must reach Active and then Completed, no passport user may be left
//! on the instance, and the emulator must have received no more provisioning commands for a request
//! than the attempts it recorded before sending each.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, ResourceExt};
use passport_crds::{AccessRequest, Phase};
use passport_tests::{
    aws::AwsEmulator,
    controlplane,
    faults::{Fault, Proxy, Stream, Toxiproxy},
    instance::Instance,
    kubectl,
    operator::OperatorProcess,
    wait,
};

use crate::{
    E2e, alone,
    scenario::{Scenario, online_instance},
};

/// How long each fault lasts.
const STEP: Duration = Duration::from_secs(4);
/// Provisioning or revocation must be done this long after the link healed. A provisioning command
/// whose answer was lost gets a second revoke once it can no longer run (the operator waits
/// `UNCONFIRMED_GRACE`, 120 s, from when it was recorded), so this covers that wait.
const CONVERGE: Duration = Duration::from_secs(150);

pub fn trials() -> Vec<E2e> {
    vec![
        alone("faults::apiserver_link_faults_converge_without_leaks", || {
            link_faults(Link::Apiserver)
        }),
        alone("faults::aws_link_faults_converge_without_leaks", || {
            link_faults(Link::Aws)
        }),
    ]
}

/// Which of the operator's connections goes through the faulty proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Apiserver,
    Aws,
}

/// One fault, its request (`r-<name>`) and that request's requester.
struct Step {
    name: &'static str,
    requester: &'static str,
    /// `None`: the proxy is down.
    fault: Option<(Fault, Stream, f32)>,
}

fn steps() -> [Step; 4] {
    let latency = Fault::Latency {
        latency: Duration::from_millis(700),
        jitter: Duration::from_millis(300),
    };
    let reset = Fault::ResetPeer {
        after: Duration::ZERO,
    };
    let swallow = Fault::Timeout {
        after: Duration::from_secs(2),
    };
    [
        Step {
            name: "latency",
            requester: "alice",
            fault: Some((latency, Stream::Downstream, 1.0)),
        },
        // Half the connections: the first answer on them is a TCP reset.
        Step {
            name: "reset",
            requester: "bob",
            fault: Some((reset, Stream::Downstream, 0.5)),
        },
        // Half the connections: answers vanish, and the connection closes after 2 s.
        Step {
            name: "timeout",
            requester: "carol",
            fault: Some((swallow, Stream::Downstream, 0.5)),
        },
        Step {
            name: "down",
            requester: "dave",
            fault: None,
        },
    ]
}

async fn link_faults(link: Link) -> Result<()> {
    let started = Instant::now();
    let toxiproxy = Toxiproxy::start().await?;
    let emulator = AwsEmulator::start().await?;
    let plane = controlplane::start_with_crds().await?;
    let mut env = emulator.env_vars();
    let (proxy, operator) = match link {
        Link::Apiserver => {
            let upstream = plane.server().trim_start_matches("https://");
            let proxy = toxiproxy.proxy("apiserver", upstream).await?;
            let server = format!("https://{}", proxy.listen());
            let operator = OperatorProcess::start_through(&plane, &env, Some(&server))?;
            (proxy, operator)
        }
        Link::Aws => {
            let upstream = emulator.endpoint().trim_start_matches("http://").to_owned();
            let proxy = toxiproxy.proxy("aws", &upstream).await?;
            for (name, value) in &mut env {
                if *name == "AWS_ENDPOINT_URL" {
                    *value = format!("http://{}", proxy.listen());
                }
            }
            (proxy, OperatorProcess::start(&plane, &env)?)
        }
    };
    let instance = online_instance(&emulator).await?;
    let namespace = match link {
        Link::Apiserver => "faults-api",
        Link::Aws => "faults-aws",
    };
    let requesters: Vec<&str> = steps().iter().map(|step| step.requester).collect();
    let s = Scenario::new(
        &plane,
        &emulator,
        &operator,
        namespace.into(),
        &requesters,
        &[instance.id()],
    )
    .await?;
    leading(&s, &operator).await?;
    let setup = started.elapsed();

    // Provisioning: each request is created as its fault comes on.
    storm(&proxy, "provisioning", |step| {
        s.request(
            &format!("r-{}", step.name),
            step.requester,
            "1h",
            &[instance.id()],
        )
    })
    .await?;
    for step in steps() {
        s.wait_phase(&format!("r-{}", step.name), Phase::Active, CONVERGE)
            .await?;
    }
    ensure_alive(&operator)?;
    let provisioned = started.elapsed();

    // Revocation: each request is completed as its fault comes on.
    storm(&proxy, "revocation", |step| {
        // As an administrator would, straight to the apiserver (never through the proxy).
        let name = format!("r-{}", step.name);
        let patch = r#"{"spec":{"completed":true}}"#;
        let args = [
            "patch",
            "accessrequest",
            &name,
            "-n",
            &s.namespace,
            "--type=merge",
            "-p",
            patch,
        ];
        kubectl::run(&s.plane.admin_kubeconfig(), &args, None)?
            .ok()
            .map(drop)
    })
    .await?;
    let mut completed = Vec::new();
    for step in steps() {
        let name = format!("r-{}", step.name);
        completed.push(s.wait_phase(&name, Phase::Completed, CONVERGE).await?);
    }
    let all_completed = started.elapsed();
    ensure_alive(&operator)?;
    no_passport_user(&instance).await?;
    let mut report = Vec::new();
    let mut unrecorded = Vec::new();
    for request in &completed {
        let (grants, attempts) = grants_and_attempts(&s, request).await?;
        report.push(format!(
            "{}: {} grant(s)/{attempts} attempt(s)",
            request.name_any(),
            grants.len()
        ));
        if grants.len() > attempts as usize {
            unrecorded.push(format!(
                "{}: the emulator received {} provisioning command(s) but the request recorded {attempts} \
                 attempt(s): {grants:?}",
                request.name_any(),
                grants.len()
            ));
        }
    }
    eprintln!(
        "faults {link:?}: setup {setup:?}; all Active at {provisioned:?}; all Completed at \
         {all_completed:?}; {}",
        report.join(", ")
    );
    ensure!(
        unrecorded.is_empty(),
        "provisioning commands sent without a recorded attempt:\n{}\n--- operator log ---\n{}",
        unrecorded.join("\n"),
        operator.log_tail()
    );
    Ok(())
}

/// Each fault in turn for [`STEP`], `start` called for its request as it comes on; healed after.
async fn storm(proxy: &Proxy<'_>, what: &str, mut start: impl FnMut(&Step) -> Result<()>) -> Result<()> {
    let result = async {
        for step in steps() {
            match step.fault {
                Some((fault, stream, toxicity)) => {
                    proxy.add(fault, stream, toxicity).await?;
                    start(&step)?;
                    tokio::time::sleep(STEP).await;
                    proxy.remove(fault, stream).await?;
                }
                None => {
                    proxy.set_enabled(false).await?;
                    start(&step)?;
                    tokio::time::sleep(STEP).await;
                    proxy.set_enabled(true).await?;
                }
            }
        }
        anyhow::Ok(())
    }
    .await;
    // Healed whatever happened above, so a failure cannot leave the link broken for what follows.
    proxy.heal().await?;
    result.with_context(|| format!("injecting faults during {what}"))
}

/// Waits until the operator holds its leader lease: the faults are for a running operator, not for
/// its start-up.
async fn leading(s: &Scenario<'_>, operator: &OperatorProcess) -> Result<()> {
    let leases: Api<Lease> = Api::namespaced(s.admin.clone(), "passport-system");
    let held = |lease: Option<&Lease>| {
        lease
            .and_then(|l| l.spec.as_ref())
            .and_then(|spec| spec.holder_identity.as_deref())
            .is_some_and(|holder| !holder.is_empty())
    };
    wait::object(&leases, "passport-operator", Duration::from_secs(60), held)
        .await
        .with_context(|| format!("the operator never led\n{}", operator.log_tail()))
        .map(drop)
}

fn ensure_alive(operator: &OperatorProcess) -> Result<()> {
    match operator.exited() {
        None => Ok(()),
        Some(status) => anyhow::bail!(
            "the operator exited ({status}) under network faults\n--- operator log ---\n{}",
            operator.log_tail()
        ),
    }
}

/// No user passport creates (`rs-…`) is left on the instance.
async fn no_passport_user(instance: &Instance) -> Result<()> {
    let passwd = instance.exec(&["getent", "passwd"]).await?.ok()?.stdout;
    let left: Vec<&str> = passwd
        .lines()
        .filter_map(|line| line.split(':').next())
        .filter(|name| name.starts_with("rs-"))
        .collect();
    ensure!(left.is_empty(), "passport users left on the instance: {left:?}");
    Ok(())
}

/// The provisioning commands the emulator received for `request` (id and when, oldest first), and
/// the attempts the request recorded (`status.targets[].attempts`), each recorded before its send.
async fn grants_and_attempts(s: &Scenario<'_>, request: &AccessRequest) -> Result<(Vec<String>, u32)> {
    let key = format!("{}/{}", s.namespace, request.name_any());
    let grants = s
        .emulator
        .commands()
        .await?
        .into_iter()
        .filter(|c| c.is_for("grant", &key))
        .map(|c| format!("{} at {}", c.command_id, c.requested_date_time))
        .collect();
    let attempts = request
        .status
        .as_ref()
        .context("no status")?
        .targets
        .iter()
        .map(|t| t.attempts)
        .sum();
    Ok((grants, attempts))
}
