//! `request`: create an AccessRequest for yourself, claiming your groups for group-based approval,
//! and with `--wait` follow it until it is Active or ends; with `--dry-run`, only say what would
//! happen to it.

use std::process::ExitCode;

use anyhow::Result;
use jiff::Timestamp;
use kube::api::ObjectMeta;
use passport_crds::{
    AccessRequest, AccessRequestSpec, access_request::Target, common::annotations::REQUESTER_GROUPS,
};

use super::preview;
use crate::{
    args::RequestArgs,
    cluster::{
        access_request, activation, names,
        session::{Identity, Session},
    },
    ui::{
        format::{OutputFormat, structured},
        time::timestamp_relative,
    },
};

/// The AccessRequest `request` creates.
pub fn build(args: &RequestArgs, name: &str, namespace: &str, me: &Identity) -> AccessRequest {
    let claimed = me.claimed_groups();
    let annotations =
        (!claimed.is_empty()).then(|| [(REQUESTER_GROUPS.to_owned(), claimed.join(","))].into());
    AccessRequest {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            annotations,
            ..ObjectMeta::default()
        },
        spec: AccessRequestSpec {
            requester: me.username.clone(),
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

pub async fn run(session: &Session, args: &RequestArgs, format: OutputFormat) -> Result<ExitCode> {
    let me = session.whoami().await?;
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| names::default_request_name(&me.username, Timestamp::now()));
    let object = build(args, &name, &session.namespace, me);
    if args.dry_run {
        return preview::run(session, &object, format).await;
    }
    let created = access_request::create(session, &object, false).await?;
    if !args.wait {
        if !structured(format, &created)? {
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
    let active = activation::wait_active(session, &name, args.timeout.value, |line| {
        eprintln!("  {line}");
    })
    .await?;
    if !structured(format, &active)? {
        let status = active.status.clone().unwrap_or_default();
        let until = status
            .expires_at
            .map(|t| format!(" until {}", timestamp_relative(t.0, Timestamp::now())))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        args::{self, Verb},
        fixtures::{INSTANCE, OTHER_INSTANCE},
    };

    fn parse(flags: &[&str]) -> RequestArgs {
        let argv: Vec<&str> = std::iter::once("request").chain(flags.iter().copied()).collect();
        match args::tests::parse(&argv).command {
            Verb::Request(args) => args,
            other => panic!("not a request: {other:?}"),
        }
    }

    fn alice(groups: &[&str]) -> Identity {
        Identity {
            username: "alice".into(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        }
    }

    #[test]
    fn the_request_names_me_and_claims_my_groups() {
        let args = parse(&[
            "--instance",
            INSTANCE,
            "--instance",
            OTHER_INSTANCE,
            "--reason",
            "CPU alarm",
            "--ticket",
            "INC-1",
            "--duration",
            "90m",
            "--source-cidr",
            "203.0.113.7/32",
        ]);
        let me = alice(&["developers", "system:authenticated", "sre"]);
        let object = build(&args, "db", "team-a", &me);
        let annotations = object.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(
            annotations.get(REQUESTER_GROUPS).map(String::as_str),
            Some("developers,sre")
        );
        assert_eq!(object.spec.requester, "alice");
        assert_eq!(object.spec.duration, "90m");
        assert_eq!(object.spec.ticket.as_deref(), Some("INC-1"));
        assert_eq!(object.spec.source_cidrs, Some(vec!["203.0.113.7/32".to_owned()]));
        assert_eq!(object.spec.targets.len(), 2);
        let lone = build(&args, "db", "team-a", &alice(&["system:authenticated"]));
        assert!(lone.metadata.annotations.is_none(), "no empty annotation");
        assert!(
            parse(&["--instance", INSTANCE, "--reason", "r"])
                .source_cidrs
                .is_empty()
        );
    }
}
