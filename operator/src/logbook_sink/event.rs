//! One Logbook entry as a CloudEvent 1.0 (structured JSON): the record an auditor's sink receives.

use cloudevents::{Event, EventBuilder, EventBuilderV10, event::EventBuilderError};
use passport_crds::{AccessRequest, logbook::LogbookEntry, logbook::LogbookRecord};

/// `type` is this prefix and the entry's action, e.g. `dev.passport.accessrequest.approved`.
pub const TYPE_PREFIX: &str = "dev.passport.accessrequest.";
/// How a structured-mode CloudEvent is sent over HTTP.
pub const CONTENT_TYPE: &str = "application/cloudevents+json; charset=utf-8";

/// `source`: the cluster and the operator's namespace, e.g. `/passport/prod-eu/passport-system`.
pub fn source(cluster: &str, namespace: &str) -> String {
    format!("/passport/{cluster}/{namespace}")
}

/// What every event of one request carries besides its entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestView {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub requester: String,
    pub ticket: Option<String>,
    pub targets: Vec<String>,
}

impl RequestView {
    /// `None` for an object without UID or namespace (never one the apiserver returns).
    pub fn of(request: &AccessRequest) -> Option<Self> {
        Some(Self {
            uid: request.metadata.uid.clone()?,
            namespace: request.metadata.namespace.clone()?,
            name: request.metadata.name.clone()?,
            requester: request.spec.requester.clone(),
            ticket: request.spec.ticket.clone(),
            targets: request
                .spec
                .targets
                .iter()
                .map(|t| t.instance_id.clone())
                .collect(),
        })
    }
}

/// The CloudEvent of `entry`: its `id` is the entry id (`<uid>-<seq>`), the same on every retry, so
/// a receiver drops duplicates by `id` alone.
pub fn build(source: &str, request: &RequestView, entry: &LogbookEntry) -> Result<Event, EventBuilderError> {
    let time = entry.time.0.to_string();
    let data = serde_json::json!({
        "requestUID": request.uid,
        "namespace": request.namespace,
        "name": request.name,
        "requester": request.requester,
        "actor": entry.actor,
        "action": entry.action,
        "reason": entry.message,
        "ticket": request.ticket,
        "targets": request.targets,
        "time": time,
        "seq": entry.seq,
        "warning": entry.warning,
    });
    EventBuilderV10::new()
        .id(LogbookRecord::entry_id(&request.uid, entry.seq))
        .ty(format!("{TYPE_PREFIX}{}", entry.action))
        .source(source)
        .subject(format!("{}/{}", request.namespace, request.name))
        .time(time.as_str())
        .data("application/json", data)
        .build()
}

/// The event as one line of JSON (structured mode), as POSTed and as printed on stdout.
pub fn to_json(event: &Event) -> serde_json::Result<String> {
    serde_json::to_string(event)
}
