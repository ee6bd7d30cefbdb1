//! `logbook`: what happened to a request, in time order. The durable record in its status
//! (`status.logbook`: every action, who did it, with a stable id) is the trail; it outlives the
//! Events, which the apiserver drops after an hour. Requests from before that record, and requests
//! already gone, fall back to their Events merged with the timestamps their status records.

use std::process::ExitCode;

use anyhow::Result;
use jiff::Timestamp;
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt;
use passport_crds::{AccessRequest, logbook::LogbookRecord};
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
    /// `record`, `status` or `event`.
    pub source: &'static str,
    pub what: String,
    pub detail: String,
    /// Who did it (record entries).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// The entry's stable id, `<request uid>-<seq>`, also its CloudEvent id (record entries).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// The durable record's entries, if the request has one; the scheduled expiry of a live request.
pub fn record_entries(request: &AccessRequest) -> Option<Vec<Entry>> {
    let status = request.status.as_ref()?;
    let record = status.logbook.as_ref().filter(|r| !r.entries.is_empty())?;
    let uid = request.uid().unwrap_or_default();
    let mut entries: Vec<Entry> = record
        .entries
        .iter()
        .map(|e| Entry {
            time: e.time.0,
            source: "record",
            what: passport_core::logbook::camel_case(&e.action),
            detail: format!("{}{}", if e.warning { "Warning: " } else { "" }, fold(&e.message)),
            actor: Some(e.actor.clone()),
            id: Some(LogbookRecord::entry_id(&uid, e.seq)),
        })
        .collect();
    if let Some(issued) = &record.credentials {
        let listed = record
            .entries
            .iter()
            .filter(|e| e.action == "credential_issued")
            .count() as u64;
        if issued.count > listed {
            entries.push(Entry {
                time: issued.last.0,
                source: "record",
                what: "CredentialIssued".into(),
                detail: format!(
                    "{} credential issues in all since {} ({} beyond the record's entry limit)",
                    issued.count,
                    timestamp(issued.first.0),
                    issued.count - listed
                ),
                actor: None,
                id: None,
            });
        }
    }
    if status.ended_at.is_none()
        && let Some(expires) = &status.expires_at
    {
        entries.push(Entry {
            time: expires.0,
            source: "status",
            what: "Expires".into(),
            detail: "(scheduled)".into(),
            actor: None,
            id: None,
        });
    }
    entries.sort_by_key(|e| e.time);
    Some(entries)
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
                actor: None,
                id: None,
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
        actor: None,
        id: None,
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
    let recorded = request.as_ref().and_then(record_entries);
    let entries = match recorded {
        Some(entries) => entries,
        None => {
            let events = access_request::events(session, name).await?;
            if request.is_none() && events.is_empty() {
                return Err(access_request::not_found(name, &session.namespace));
            }
            merge(request.as_ref().map(status_entries).unwrap_or_default(), &events)
        }
    };
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
                e.what.clone(),
                e.actor.clone().unwrap_or_else(|| "-".into()),
                e.detail.clone(),
            ]
        })
        .collect();
    print!("{}", table(&["TIME", "WHAT", "BY", "DETAIL"], &rows));
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

    #[test]
    fn the_durable_record_is_the_trail_with_who_and_stable_ids() {
        use passport_crds::logbook::{IssueCount, LogbookEntry};
        let mut request = fixtures::access_request(&[INSTANCE]);
        request.metadata.uid = Some("u-1".into());
        let entry = |seq: u64, time: &str, action: &str, actor: &str| LogbookEntry {
            seq,
            time: Time(at(time)),
            action: action.into(),
            actor: actor.into(),
            message: format!("{action} message"),
            warning: false,
        };
        request.status = Some(AccessRequestStatus {
            phase: Phase::Active,
            expires_at: Some(Time(at("2025-03-02T13:00:05Z"))),
            logbook: Some(LogbookRecord {
                entries: vec![
                    entry(1, "2025-03-02T12:00:00Z", "created", "alice"),
                    entry(2, "2025-03-02T12:00:01Z", "approved", "carol"),
                    entry(3, "2025-03-02T12:01:00Z", "credential_issued", "alice"),
                ],
                delivered: 0,
                credentials: Some(IssueCount {
                    count: 3,
                    first: Time(at("2025-03-02T12:01:00Z")),
                    last: Time(at("2025-03-02T12:10:00Z")),
                }),
            }),
            ..Default::default()
        });
        let entries = record_entries(&request).expect("a record");
        let summary: Vec<(&str, Option<&str>, Option<&str>)> = entries
            .iter()
            .map(|e| (e.what.as_str(), e.actor.as_deref(), e.id.as_deref()))
            .collect();
        assert_eq!(
            summary,
            [
                ("Created", Some("alice"), Some("u-1-1")),
                ("Approved", Some("carol"), Some("u-1-2")),
                ("CredentialIssued", Some("alice"), Some("u-1-3")),
                ("CredentialIssued", None, None),
                ("Expires", None, None),
            ]
        );
        assert!(
            entries[3].detail.starts_with("3 credential issues in all"),
            "{}",
            entries[3].detail
        );
    }
}
