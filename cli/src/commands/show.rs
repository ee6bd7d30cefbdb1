//! `list` and `get`: AccessRequests as a table, or one in detail with the state of each instance.

use std::process::ExitCode;

use anyhow::Result;
use jiff::Timestamp;
use kube::ResourceExt;
use passport_crds::{AccessRequest, common::Time};

use crate::{
    cluster::{access_request, session::Session},
    ui::{
        errors::fold,
        format::{self, OutputFormat, structured},
        table::{indented_table, table},
        time::{age, relative, timestamp_relative},
    },
};

pub const LIST_HEADERS: [&str; 6] = ["NAME", "REQUESTER", "PHASE", "TARGETS", "EXPIRES", "AGE"];

/// One row of `list`.
pub fn list_row(request: &AccessRequest, now: Timestamp) -> Vec<String> {
    let status = request.status.clone().unwrap_or_default();
    let expires = match &status.expires_at {
        Some(t) if !status.phase.is_terminal() => relative(t.0, now),
        _ => "-".to_owned(),
    };
    vec![
        request.name_any(),
        request.spec.requester.clone(),
        format!("{:?}", request.phase()),
        access_request::instance_ids(request).join(","),
        expires,
        age(request.creation_timestamp().map(|t| t.0), now),
    ]
}

pub async fn list(session: &Session, format: OutputFormat) -> Result<ExitCode> {
    let mut items = access_request::list(session).await?;
    items.sort_by_key(|r| r.creation_timestamp().map(|t| t.0));
    if structured(format, &format::list(&items))? {
        return Ok(ExitCode::SUCCESS);
    }
    if items.is_empty() {
        eprintln!("No AccessRequests in namespace {}.", session.namespace);
        return Ok(ExitCode::SUCCESS);
    }
    let now = Timestamp::now();
    let rows: Vec<Vec<String>> = items.iter().map(|r| list_row(r, now)).collect();
    print!("{}", table(&LIST_HEADERS, &rows));
    Ok(ExitCode::SUCCESS)
}

/// `get`'s text: the request, its timeline, conditions and per-instance state.
pub fn describe(request: &AccessRequest, now: Timestamp) -> String {
    let status = request.status.clone().unwrap_or_default();
    let mut out = String::new();
    let mut field = |key: &str, value: String| {
        if !value.is_empty() {
            out.push_str(&format!("{:<11}{value}\n", format!("{key}:")));
        }
    };
    field("Name", request.name_any());
    field("Namespace", request.namespace().unwrap_or_default());
    field("Requester", request.spec.requester.clone());
    field("Reason", request.spec.reason.clone());
    field("Ticket", request.spec.ticket.clone().unwrap_or_default());
    field("Account", request.spec.account.clone().unwrap_or_default());
    field("Duration", request.spec.duration.clone());
    field(
        "Sources",
        request.spec.source_cidrs.clone().unwrap_or_default().join(", "),
    );
    field("Phase", format!("{:?}", status.phase));
    field("Message", fold(&status.message));
    field("Username", status.username.clone().unwrap_or_default());
    let when = |t: &Option<Time>| {
        t.as_ref()
            .map(|t| timestamp_relative(t.0, now))
            .unwrap_or_default()
    };
    field("Created", when(&request.metadata.creation_timestamp));
    field("Approved", when(&status.approved_at));
    field("Activated", when(&status.activated_at));
    field("Expires", when(&status.expires_at));
    field("Ended", when(&status.ended_at));
    if !status.conditions.is_empty() {
        out.push_str("Conditions:\n");
        let rows: Vec<Vec<String>> = status
            .conditions
            .iter()
            .map(|c| {
                vec![
                    c.type_.clone(),
                    c.status.clone(),
                    c.reason.clone(),
                    fold(&c.message),
                ]
            })
            .collect();
        out.push_str(&indented_table(&["TYPE", "STATUS", "REASON", "MESSAGE"], &rows));
    }
    out.push_str("Targets:\n");
    let rows: Vec<Vec<String>> = request
        .spec
        .targets
        .iter()
        .map(|t| {
            let state = access_request::target_status(request, &t.instance_id);
            vec![
                t.instance_id.clone(),
                state
                    .and_then(|s| s.platform)
                    .map(|p| format!("{p:?}"))
                    .unwrap_or_else(|| "-".into()),
                state
                    .map(|s| format!("{:?}", s.state))
                    .unwrap_or_else(|| "Pending".into()),
                state
                    .and_then(|s| s.command_id.clone())
                    .unwrap_or_else(|| "-".into()),
                state.map(|s| fold(&s.message)).unwrap_or_default(),
            ]
        })
        .collect();
    out.push_str(&indented_table(
        &["INSTANCE", "PLATFORM", "STATE", "COMMAND", "MESSAGE"],
        &rows,
    ));
    out
}

pub async fn get(session: &Session, name: &str, format: OutputFormat) -> Result<ExitCode> {
    let request = access_request::get(session, name).await?;
    if !structured(format, &request)? {
        print!("{}", describe(&request, Timestamp::now()));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use jiff::SignedDuration;
    use passport_crds::{
        Phase,
        access_request::{AccessRequestStatus, Platform, TargetState, TargetStatus},
    };

    use super::*;
    use crate::fixtures::{self, INSTANCE, OTHER_INSTANCE, USERNAME};

    /// alice's Active request on two instances, one of them Ready, made 5 minutes before `now`.
    fn sample(now: Timestamp) -> AccessRequest {
        let mut request = fixtures::access_request(&[INSTANCE, OTHER_INSTANCE]);
        request.spec.ticket = Some("INC-1".into());
        request.metadata.namespace = Some("team-a".into());
        request.metadata.creation_timestamp = Some(Time(now - SignedDuration::from_secs(300)));
        request.status = Some(AccessRequestStatus {
            phase: Phase::Active,
            username: Some(USERNAME.into()),
            expires_at: Some(Time(now + SignedDuration::from_secs(42 * 60))),
            targets: vec![TargetStatus {
                instance_id: INSTANCE.into(),
                platform: Some(Platform::Linux),
                state: TargetState::Ready,
                command_id: Some("cmd-1".into()),
                ..Default::default()
            }],
            ..Default::default()
        });
        request
    }

    #[test]
    fn list_rows_match_the_headers() {
        let now = Timestamp::now();
        let row = list_row(&sample(now), now);
        assert_eq!(
            row,
            vec![
                "db",
                "alice",
                "Active",
                "i-0123456789abcdef0,i-0fedcba9876543210",
                "in 42m",
                "5m"
            ]
        );
        assert_eq!(row.len(), LIST_HEADERS.len());
    }

    #[test]
    fn details_show_each_target() {
        let now = Timestamp::now();
        let text = describe(&sample(now), now);
        assert!(text.contains("Requester: alice\n"), "{text}");
        assert!(text.contains("Username:  rs-5f3a9c21\n"), "{text}");
        assert!(
            text.contains("i-0123456789abcdef0   Linux      Ready     cmd-1"),
            "{text}"
        );
        assert!(
            text.contains("i-0fedcba9876543210   -          Pending   -"),
            "{text}"
        );
    }
}
