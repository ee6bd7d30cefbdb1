//! `logbook`: what happened to a request, in time order: its Events (events.k8s.io/v1, regarding the
//! request) merged with the timestamps its status records.

use std::process::ExitCode;

use anyhow::Result;
use jiff::Timestamp;
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt;
use passport_crds::AccessRequest;
use serde::Serialize;

use crate::{
    cluster::{access_request, session::Session},
    ui::{
        errors::fold,
        format::{OutputFormat, structured},
        table::table,
        time::timestamp,
    },
};

/// One line of the logbook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    #[serde(serialize_with = "serialize_time")]
    pub time: Timestamp,
    /// `status` or `event`.
    pub source: &'static str,
    pub what: String,
    pub detail: String,
}

fn serialize_time<S: serde::Serializer>(time: &Timestamp, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&timestamp(*time))
}

/// When an event happened: its last occurrence if it repeats, else its event time, else older fields.
fn event_time(event: &Event) -> Option<Timestamp> {
    event
        .series
        .as_ref()
        .map(|s| s.last_observed_time.0)
        .or_else(|| event.event_time.as_ref().map(|t| t.0))
        .or_else(|| event.deprecated_last_timestamp.as_ref().map(|t| t.0))
        .or_else(|| event.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// The entries the request's own status gives: created, approved, activated, expires/ended.
pub fn status_entries(request: &AccessRequest) -> Vec<Entry> {
    let mut entries = Vec::new();
    let mut push = |time: Option<Timestamp>, what: &str, detail: String| {
        if let Some(time) = time {
            entries.push(Entry {
                time,
                source: "status",
                what: what.to_owned(),
                detail,
            });
        }
    };
    let status = request.status.clone().unwrap_or_default();
    let ticket = request
        .spec
        .ticket
        .as_ref()
        .map(|t| format!(" [{t}]"))
        .unwrap_or_default();
    push(
        request.creation_timestamp().map(|t| t.0),
        "Created",
        format!(
            "by {} for {}: {}{ticket}",
            request.spec.requester, request.spec.duration, request.spec.reason
        ),
    );
    push(status.approved_at.map(|t| t.0), "Approved", String::new());
    push(
        status.activated_at.map(|t| t.0),
        "Activated",
        status.username.map(|u| format!("user {u}")).unwrap_or_default(),
    );
    match status.ended_at {
        Some(ended) => push(
            Some(ended.0),
            &format!("{:?}", status.phase),
            fold(&status.message),
        ),
        None => push(
            status.expires_at.map(|t| t.0),
            "Expires",
            "(scheduled)".to_owned(),
        ),
    }
    entries
}

/// The entry for one Event.
pub fn event_entry(event: &Event) -> Option<Entry> {
    let time = event_time(event)?;
    let count = event
        .series
        .as_ref()
        .map(|s| s.count)
        .or(event.deprecated_count)
        .filter(|c| *c > 1)
        .map(|c| format!(" (x{c})"))
        .unwrap_or_default();
    let kind = match event.type_.as_deref() {
        Some("Warning") => "Warning: ",
        _ => "",
    };
    Some(Entry {
        time,
        source: "event",
        what: event
            .reason
            .clone()
            .or_else(|| event.action.clone())
            .unwrap_or_default(),
        detail: format!("{kind}{}{count}", fold(event.note.as_deref().unwrap_or_default())),
    })
}

/// Status entries and events in time order (status first among equals).
pub fn merge(mut entries: Vec<Entry>, events: &[Event]) -> Vec<Entry> {
    entries.extend(events.iter().filter_map(event_entry));
    entries.sort_by(|a, b| a.time.cmp(&b.time).then(b.source.cmp(a.source)));
    entries
}

pub async fn run(session: &Session, name: &str, format: OutputFormat) -> Result<ExitCode> {
    let request = access_request::find(session, name).await?;
    let events = access_request::events(session, name).await?;
    if request.is_none() && events.is_empty() {
        return Err(access_request::not_found(name, &session.namespace));
    }
    let entries = merge(request.as_ref().map(status_entries).unwrap_or_default(), &events);
    if structured(
        format,
        &serde_json::json!({ "accessRequest": name, "entries": entries }),
    )? {
        return Ok(ExitCode::SUCCESS);
    }
    if request.is_none() {
        eprintln!("AccessRequest {name} no longer exists; these are its remaining Events.");
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                timestamp(e.time),
                e.source.to_owned(),
                e.what.clone(),
                e.detail.clone(),
            ]
        })
        .collect();
    print!("{}", table(&["TIME", "SOURCE", "WHAT", "DETAIL"], &rows));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
    use passport_crds::{Phase, access_request::AccessRequestStatus, common::Time};

    use crate::fixtures::{self, INSTANCE};

    fn at(text: &str) -> Timestamp {
        text.parse().expect("timestamp")
    }

    fn event(time: &str, reason: &str, note: &str, warning: bool) -> Event {
        Event {
            event_time: Some(MicroTime(at(time))),
            reason: Some(reason.into()),
            note: Some(note.into()),
            type_: Some(if warning { "Warning" } else { "Normal" }.into()),
            ..Event::default()
        }
    }

    #[test]
    fn events_and_status_interleave_in_time_order() {
        let mut request = fixtures::access_request(&[INSTANCE]);
        request.spec.ticket = Some("INC-1".into());
        request.spec.completed = true;
        request.metadata.creation_timestamp = Some(Time(at("2025-03-02T12:00:00Z")));
        request.status = Some(AccessRequestStatus {
            phase: Phase::Completed,
            approved_at: Some(Time(at("2025-03-02T12:00:01Z"))),
            activated_at: Some(Time(at("2025-03-02T12:00:05Z"))),
            ended_at: Some(Time(at("2025-03-02T12:30:00Z"))),
            username: Some("rs-1".into()),
            ..Default::default()
        });
        let events = vec![
            event("2025-03-02T12:29:59Z", "Completed", "completed by alice", false),
            event(
                "2025-03-02T12:00:01Z",
                "Approved",
                "auto-approved by policy e2e",
                false,
            ),
            event("2025-03-02T12:00:03Z", "Failed", "retrying\nSSM", true),
        ];
        let entries = merge(status_entries(&request), &events);
        let summary: Vec<(String, &str, &str)> = entries
            .iter()
            .map(|e| (timestamp(e.time), e.source, e.what.as_str()))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("2025-03-02T12:00:00Z".to_owned(), "status", "Created"),
                ("2025-03-02T12:00:01Z".to_owned(), "status", "Approved"),
                ("2025-03-02T12:00:01Z".to_owned(), "event", "Approved"),
                ("2025-03-02T12:00:03Z".to_owned(), "event", "Failed"),
                ("2025-03-02T12:00:05Z".to_owned(), "status", "Activated"),
                ("2025-03-02T12:29:59Z".to_owned(), "event", "Completed"),
                ("2025-03-02T12:30:00Z".to_owned(), "status", "Completed"),
            ]
        );
        assert_eq!(entries[0].detail, "by alice for 1h: CPU alarm [INC-1]");
        assert_eq!(entries[3].detail, "Warning: retrying SSM");
    }
}
