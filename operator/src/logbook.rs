//! The logbook: every lifecycle action becomes a Kubernetes Event on the AccessRequest (and, with the
//! external sink, a CloudEvent).

use kube::{
    Resource,
    runtime::events::{Event, EventType, Recorder},
};
use passport_crds::AccessRequest;

use crate::lifecycle::LogEvent;

/// Publishes one logbook entry as a Kubernetes Event. A failure to record is logged, never fatal:
/// the status already says what happened.
pub async fn publish(recorder: &Recorder, request: &AccessRequest, entry: &LogEvent) {
    let event = Event {
        type_: if entry.warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason(entry),
        note: Some(entry.message.chars().take(1024).collect()),
        action: entry.action.as_str().to_owned(),
        secondary: None,
    };
    if let Err(err) = recorder.publish(&event, &request.object_ref(&())).await {
        tracing::warn!(
            action = entry.action.as_str(),
            "could not record the Event: {err}"
        );
    }
}

/// Event reasons are CamelCase by convention (`kubectl describe` shows them): `credential_issued`
/// becomes `CredentialIssued`.
fn reason(entry: &LogEvent) -> String {
    entry
        .action
        .as_str()
        .split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::LogAction;

    #[test]
    fn reasons_are_camel_case() {
        let entry = |action| LogEvent {
            action,
            message: String::new(),
            warning: false,
        };
        assert_eq!(reason(&entry(LogAction::Approved)), "Approved");
        assert_eq!(reason(&entry(LogAction::CredentialIssued)), "CredentialIssued");
    }
}
