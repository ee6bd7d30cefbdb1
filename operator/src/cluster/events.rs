//! Kubernetes Events: logbook entries on the AccessRequest, and Warning Events for failures on any
//! object. A failure to record is logged, never fatal: the status already says what happened.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder};
use passport_core::logbook::LogEvent;

/// The longest note kept; the apiserver refuses notes over 1 KiB.
const MAX_NOTE: usize = 1024;

/// Publishes one logbook entry as an Event on `object`, ending its note with the entry's id in the
/// durable record (`<request uid>-<seq>`, also its CloudEvent id) when it has one.
pub async fn publish(recorder: &Recorder, object: &ObjectReference, entry: &LogEvent, id: Option<&str>) {
    let type_ = if entry.warning {
        EventType::Warning
    } else {
        EventType::Normal
    };
    let note = match id {
        Some(id) => {
            let suffix = format!(" [logbook {id}]");
            let room = MAX_NOTE.saturating_sub(suffix.len());
            format!("{}{suffix}", entry.message.chars().take(room).collect::<String>())
        }
        None => entry.message.clone(),
    };
    record(
        recorder,
        object,
        type_,
        entry.action.reason(),
        entry.action.as_str(),
        &note,
    )
    .await;
}

/// Publishes a Warning Event saying why a reconcile of `object` failed.
pub async fn warn(recorder: &Recorder, object: &ObjectReference, reason: &str, message: &str) {
    record(
        recorder,
        object,
        EventType::Warning,
        reason.to_owned(),
        "reconcile",
        message,
    )
    .await;
}

async fn record(
    recorder: &Recorder,
    object: &ObjectReference,
    type_: EventType,
    reason: String,
    action: &str,
    message: &str,
) {
    let event = Event {
        type_,
        reason,
        note: Some(message.chars().take(MAX_NOTE).collect()),
        action: action.to_owned(),
        secondary: None,
    };
    if let Err(err) = recorder.publish(&event, object).await {
        tracing::warn!(action, "could not record the Event: {err}");
    }
}
