//! `request`: create an AccessRequest for yourself, claiming your groups for group-based approval,
//! and with `--wait` follow it until it is Active or ends.

use std::{process::ExitCode, time::Duration};

use anyhow::{Result, anyhow, bail};
use futures::StreamExt;
use jiff::Timestamp;
use kube::{
    ResourceExt,
    api::{ObjectMeta, PostParams},
    runtime::watcher::watch_object,
};
use passport_crds::{
    AccessRequest, AccessRequestSpec, Phase,
    access_request::{AccessRequestStatus, Target},
    common::condition_types::APPROVED,
};

use crate::{
    args::{Output, RequestArgs},
    errors, names, output,
    session::{Session, claimed_groups},
};

/// The annotation the operator reads groups from (admission checks them against the creator's).
pub const REQUESTER_GROUPS_ANNOTATION: &str = passport_crds::common::annotations::REQUESTER_GROUPS;

/// The AccessRequest `request` creates.
pub fn build(
    args: &RequestArgs,
    name: &str,
    namespace: &str,
    user: &str,
    groups: &[String],
) -> AccessRequest {
    let claimed = claimed_groups(groups);
    let annotations =
        (!claimed.is_empty()).then(|| [(REQUESTER_GROUPS_ANNOTATION.to_owned(), claimed.join(","))].into());
    AccessRequest {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            annotations,
            ..ObjectMeta::default()
        },
        spec: AccessRequestSpec {
            requester: user.to_owned(),
            reason: args.reason.clone(),
            ticket: args.ticket.clone(),
            duration: args.duration.text.clone(),
            account: args.account.clone(),
            source_cidrs: (!args.source_cidrs.is_empty()).then(|| args.source_cidrs.clone()),
            targets: args
                .instances
                .iter()
                .map(|id| Target {
                    instance_id: id.clone(),
                })
                .collect(),
            completed: false,
        },
        status: None,
    }
}

pub async fn run(session: &Session, args: &RequestArgs, format: Output) -> Result<ExitCode> {
    let me = session.whoami().await?;
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| names::default_request_name(&me.username, Timestamp::now()));
    let object = build(args, &name, &session.namespace, &me.username, &me.groups);
    let created = match session.requests().create(&PostParams::default(), &object).await {
        Ok(created) => created,
        Err(err) if errors::code(&err) == Some(409) => bail!(
            "AccessRequest {name} already exists in namespace {}; pick another name, or leave it out for a generated one",
            session.namespace
        ),
        Err(err) => return Err(errors::api(err, "create", "accessrequests", &session.namespace)),
    };
    if !args.wait {
        if !output::structured(format, &created)? {
            println!("accessrequest.passport.dev/{name} created");
            println!(
                "Follow it with: kubectl passport get {name} -n {}",
                session.namespace
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "accessrequest.passport.dev/{name} created; waiting up to {} for it to become Active",
        args.timeout
    );
    let active = wait_active(session, &name, args.timeout.value).await?;
    if !output::structured(format, &active)? {
        let status = active.status.clone().unwrap_or_default();
        let until = status
            .expires_at
            .map(|t| format!(" until {}", output::timestamp_relative(t.0, Timestamp::now())))
            .unwrap_or_default();
        println!("AccessRequest {name} is Active{until}");
        if let Some(user) = status.username {
            println!("User {user} on {}", args.instances.join(", "));
        }
        println!(
            "Connect with: kubectl passport connect {name} -n {}",
            session.namespace
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// One line describing where a request is, for progress and for timeouts.
pub fn progress_line(status: &AccessRequestStatus) -> String {
    let phase = format!("{:?}", status.phase);
    let detail = match status.phase {
        Phase::Pending => status
            .conditions
            .iter()
            .find(|c| c.type_ == APPROVED)
            .map(|c| c.message.trim().to_owned())
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| "waiting for approval".to_owned()),
        Phase::Provisioning => status
            .targets
            .iter()
            .map(|t| {
                let message = if t.message.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", errors::fold(&t.message))
                };
                format!("{} {:?}{message}", t.instance_id, t.state)
            })
            .collect::<Vec<_>>()
            .join(", "),
        _ => errors::fold(&status.message),
    };
    if detail.is_empty() {
        phase
    } else {
        format!("{phase}: {detail}")
    }
}

/// Follows the request, printing each new progress line on stderr, until it is Active (Ok), ends
/// (Err with its message), or `timeout` passes (Err saying what it is stuck on).
pub async fn wait_active(session: &Session, name: &str, timeout: Duration) -> Result<AccessRequest> {
    let mut stream = std::pin::pin!(watch_object(session.requests(), name));
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut last_line = String::new();
    loop {
        let event = tokio::select! {
            () = &mut deadline => bail!(
                "timed out after {} waiting for AccessRequest {name} to become Active: it is still {}",
                output::human_duration(i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX)),
                if last_line.is_empty() { "without a status (is the passport operator running?)".to_owned() } else { last_line }
            ),
            event = stream.next() => event,
        };
        let request = match event {
            None => bail!("the watch on AccessRequest {name} ended"),
            Some(Err(err)) => {
                return Err(anyhow!(
                    "watching AccessRequest {name}: {}",
                    errors::fold(&err.to_string())
                ));
            }
            Some(Ok(None)) => bail!("AccessRequest {name} was deleted"),
            Some(Ok(Some(request))) => request,
        };
        let Some(status) = request.status.clone() else {
            continue;
        };
        let line = progress_line(&status);
        if line != last_line {
            eprintln!("  {line}");
            last_line = line;
        }
        match status.phase {
            Phase::Active => return Ok(request),
            phase if phase.is_terminal() => {
                let message = errors::fold(&status.message);
                bail!(
                    "AccessRequest {} is {phase:?}{}",
                    request.name_any(),
                    if message.is_empty() {
                        String::new()
                    } else {
                        format!(": {message}")
                    }
                )
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use passport_crds::access_request::{TargetState, TargetStatus};

    use crate::args::{Cli, Verb};

    fn parse(args: &[&str]) -> RequestArgs {
        let mut argv = vec!["kubectl-passport", "request"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).expect("parses").command {
            Verb::Request(args) => args,
            other => panic!("not a request: {other:?}"),
        }
    }

    #[test]
    fn the_request_names_me_and_claims_my_groups() {
        let args = parse(&[
            "--instance",
            "i-0123456789abcdef0",
            "--instance",
            "i-0fedcba9876543210",
            "--reason",
            "CPU alarm",
            "--ticket",
            "INC-1",
            "--duration",
            "90m",
            "--source-cidr",
            "203.0.113.7/32",
        ]);
        let groups = vec![
            "developers".to_owned(),
            "system:authenticated".to_owned(),
            "sre".to_owned(),
        ];
        let object = build(&args, "db", "team-a", "alice", &groups);
        let annotations = object.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(
            annotations.get(REQUESTER_GROUPS_ANNOTATION).map(String::as_str),
            Some("developers,sre")
        );
        assert_eq!(object.spec.requester, "alice");
        assert_eq!(object.spec.duration, "90m");
        assert_eq!(object.spec.ticket.as_deref(), Some("INC-1"));
        assert_eq!(object.spec.source_cidrs, Some(vec!["203.0.113.7/32".to_owned()]));
        assert_eq!(object.spec.targets.len(), 2);
        let lone = build(
            &args,
            "db",
            "team-a",
            "alice",
            &["system:authenticated".to_owned()],
        );
        assert!(lone.metadata.annotations.is_none(), "no empty annotation");
        assert!(
            parse(&["--instance", "i-0123456789abcdef0", "--reason", "r"])
                .source_cidrs
                .is_empty()
        );
    }

    #[test]
    fn progress_says_what_it_waits_for() {
        let mut status = AccessRequestStatus::default();
        assert_eq!(progress_line(&status), "Pending: waiting for approval");
        status.phase = Phase::Provisioning;
        status.targets = vec![TargetStatus {
            instance_id: "i-0123456789abcdef0".into(),
            state: TargetState::Provisioning,
            message: "SSM\ncommand running".into(),
            ..Default::default()
        }];
        assert_eq!(
            progress_line(&status),
            "Provisioning: i-0123456789abcdef0 Provisioning (SSM command running)"
        );
        status.phase = Phase::Failed;
        status.message = "instance not managed by SSM".into();
        assert_eq!(progress_line(&status), "Failed: instance not managed by SSM");
    }
}
