//! Kubernetes Events: logbook entries on the AccessRequest, and Warning Events for failures on any
//! object. A failure to record is logged, never fatal: the status already says what happened.

use std::sync::atomic::{AtomicU64, Ordering};

use jiff::Timestamp;
use k8s_openapi::{
    api::{core::v1::ObjectReference, events::v1::Event as K8sEvent},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
};
use kube::{
    Api, Client,
    api::PostParams,
    runtime::events::{Event, EventType, Recorder, Reporter},
};
use passport_core::logbook::LogEvent;

/// The longest note kept; the apiserver refuses notes over 1 KiB.
const MAX_NOTE: usize = 1024;

/// Tells apart Events without a logbook id published in the same nanosecond.
static UNNAMED: AtomicU64 = AtomicU64::new(0);

/// The longest start of `text` within `max` bytes, cut between characters.
fn cut(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Publishes logbook entries, each as an Event of its own.
///
/// Not kube's [`Recorder`]: it folds Events of the same reason on the same object into one series
/// that keeps the first note (a second entry's id would be lost), and it keeps every Event it sent
/// for six minutes, which with thousands of requests becomes most of the operator's memory.
#[derive(Clone)]
pub struct LogbookEvents {
    client: Client,
    reporter: Reporter,
}

impl std::fmt::Debug for LogbookEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogbookEvents")
            .field("reporter", &self.reporter)
            .finish_non_exhaustive()
    }
}

impl LogbookEvents {
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Self { client, reporter }
    }

    /// Publishes one entry as an Event on `object`. With the entry's id in the durable record
    /// (`<request uid>-<seq>`, also its CloudEvent id), the note ends with it and the Event is named
    /// after it, so publishing the same entry again (a reconcile retried) creates nothing new.
    pub async fn publish(&self, object: &ObjectReference, entry: &LogEvent, id: Option<&str>) {
        let now = Timestamp::now();
        let regarding = object.name.as_deref().unwrap_or(&self.reporter.controller);
        let (name, note) = match id {
            Some(id) => {
                let suffix = format!(" [logbook {id}]");
                let room = MAX_NOTE.saturating_sub(suffix.len());
                let note = format!("{}{suffix}", cut(&entry.message, room));
                (event_name(regarding, id), note)
            }
            None => (
                event_name(
                    regarding,
                    &format!(
                        "{:x}{:x}",
                        now.as_nanosecond(),
                        UNNAMED.fetch_add(1, Ordering::Relaxed)
                    ),
                ),
                cut(&entry.message, MAX_NOTE).to_owned(),
            ),
        };
        let event = K8sEvent {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: object.namespace.clone(),
                ..ObjectMeta::default()
            },
            action: Some(entry.action.as_str().to_owned()),
            reason: Some(entry.action.reason()),
            note: Some(note),
            type_: Some(if entry.warning { "Warning" } else { "Normal" }.to_owned()),
            event_time: Some(MicroTime(now)),
            regarding: Some(object.clone()),
            reporting_controller: Some(self.reporter.controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| self.reporter.controller.clone()),
            ),
            ..K8sEvent::default()
        };
        let namespace = object.namespace.as_deref().unwrap_or("default");
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), namespace);
        match api.create(&PostParams::default(), &event).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(err) => tracing::warn!(
                action = entry.action.as_str(),
                "could not record the Event: {err}"
            ),
        }
    }
}

/// `<object>.<suffix>`, cut to the 253 characters an object name may have (from the object's name,
/// keeping the suffix that makes it unique).
fn event_name(regarding: &str, suffix: &str) -> String {
    let room = 253usize.saturating_sub(suffix.len() + 1);
    let stem = regarding.get(..room.min(regarding.len())).unwrap_or(regarding);
    format!("{}.{suffix}", stem.trim_end_matches(['.', '-']))
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
        note: Some(cut(message, MAX_NOTE).to_owned()),
        action: action.to_owned(),
        secondary: None,
    };
    if let Err(err) = recorder.publish(&event, object).await {
        tracing::warn!(action, "could not record the Event: {err}");
    }
}

#[cfg(test)]
mod tests {
    use super::{cut, event_name};

    #[test]
    fn a_note_is_cut_to_bytes_between_characters() {
        assert_eq!(cut("ab", 8), "ab");
        assert_eq!(cut("aé", 2), "a");
        assert_eq!(cut(&"é".repeat(600), 1024).len(), 1024);
    }

    #[test]
    fn an_entry_names_its_event_after_its_id() {
        assert_eq!(
            event_name("web", "0b7c2f7e-1d2a-4c39-9a57-5a1f0a3c6f11-3"),
            "web.0b7c2f7e-1d2a-4c39-9a57-5a1f0a3c6f11-3"
        );
    }

    #[test]
    fn a_long_object_name_is_cut_to_keep_the_suffix() {
        let name = event_name(&"a".repeat(253), "uid-12");
        assert_eq!(name.len(), 253);
        assert!(name.ends_with(".uid-12"));
    }
}
