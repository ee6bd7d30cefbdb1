//! Command ids sent but not yet in status. After a send the request is looked at again within
//! a moment (50 ms); when SSM has answered by then, that pass records the ids with
//! their outcome in one status write instead of two. The ids wait here meanwhile, tied to the status
//! the send was recorded in: a pass that finds any other status ignores them.
//!
//! Losing them is safe, as after a crash between a send and its record: a provisioning send still
//! unconfirmed in status is looked up by its comment (`lifecycle::lost_send`), and a revoke is sent
//! again (the revoke script is idempotent).

use std::{
    borrow::Cow,
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use kube::ResourceExt;
use passport_crds::{AccessRequest, access_request::TargetStatus};

/// How long sent ids wait for a pass that records them before they are forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(300);

#[derive(Debug, Default)]
pub struct Unrecorded {
    by_uid: Mutex<HashMap<String, Kept>>,
}

/// Command ids kept for one request.
#[derive(Debug)]
pub struct Kept {
    pub namespace: String,
    pub name: String,
    /// The targets as status holds them (as JSON, the form compared: status times are stored to
    /// the second): the intent the send completes.
    pub intent: serde_json::Value,
    /// The same targets with the commands' ids.
    pub sent: Vec<TargetStatus>,
    at: Instant,
}

impl Unrecorded {
    /// Keeps `sent` (the targets after the sends) until a pass on `request` whose status still
    /// holds `intent` records them.
    pub fn keep(&self, request: &AccessRequest, uid: &str, intent: &[TargetStatus], sent: Vec<TargetStatus>) {
        let mut by_uid = self.lock();
        by_uid.retain(|_, kept| kept.at.elapsed() < FORGET_AFTER);
        by_uid.insert(
            uid.to_owned(),
            Kept {
                namespace: request.namespace().unwrap_or_default(),
                name: request.name_any(),
                intent: serde_json::json!(intent),
                sent,
                at: Instant::now(),
            },
        );
    }

    /// The request as the next decision should see it: with the ids of its commands sent since
    /// its status was written, when that status is still the one they were sent from.
    pub fn view<'a>(&self, request: &'a AccessRequest) -> Cow<'a, AccessRequest> {
        let Some(uid) = request.metadata.uid.as_deref() else {
            return Cow::Borrowed(request);
        };
        let by_uid = self.lock();
        let Some(kept) = by_uid.get(uid) else {
            return Cow::Borrowed(request);
        };
        match &request.status {
            Some(status) if serde_json::json!(status.targets) == kept.intent => {
                let mut view = request.clone();
                if let Some(status) = view.status.as_mut() {
                    status.targets = kept.sent.clone();
                }
                Cow::Owned(view)
            }
            _ => Cow::Borrowed(request),
        }
    }

    /// The request's status now holds what was kept (or a later decision replaced it).
    pub fn recorded(&self, request: &AccessRequest) {
        self.take(&request.uid().unwrap_or_default());
    }

    /// What is kept for the request with `uid`, to be written on its own.
    pub fn take(&self, uid: &str) -> Option<Kept> {
        self.lock().remove(uid)
    }

    /// Everything kept, to be written on its own before the operator stops.
    pub fn drain(&self) -> Vec<Kept> {
        self.lock().drain().map(|(_, kept)| kept).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Kept>> {
        self.by_uid
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use passport_crds::{AccessRequestSpec, AccessRequestStatus, access_request::TargetState};

    use super::*;

    fn request(targets: Vec<TargetStatus>) -> AccessRequest {
        let mut request = AccessRequest::new("r", AccessRequestSpec::new("alice", "why", ["i-1"]));
        request.metadata.uid = Some("uid-1".into());
        request.status = Some(AccessRequestStatus {
            targets,
            ..AccessRequestStatus::default()
        });
        request
    }

    fn target(command: Option<&str>) -> TargetStatus {
        TargetStatus {
            instance_id: "i-1".into(),
            state: TargetState::Provisioning,
            command_id: command.map(str::to_owned),
            ..TargetStatus::default()
        }
    }

    /// As the cache gets it back from the apiserver.
    fn stored(targets: &[TargetStatus]) -> Vec<TargetStatus> {
        serde_json::from_value(serde_json::json!(targets)).expect("targets")
    }

    #[test]
    fn ids_show_only_on_the_status_they_were_sent_from() {
        let unrecorded = Unrecorded::default();
        // Sent at a time with nanoseconds; stored, it has whole seconds.
        let sent_at = passport_crds::common::Time("2026-11-29T10:00:00.123456789Z".parse().expect("time"));
        let intent = vec![TargetStatus {
            unconfirmed_since: Some(sent_at),
            ..target(None)
        }];
        let cached = request(stored(&intent));
        unrecorded.keep(&cached, "uid-1", &intent, vec![target(Some("cmd-1"))]);
        assert_ne!(stored(&intent), intent);

        let view = unrecorded.view(&cached);
        let targets = &view.status.as_ref().expect("status").targets;
        assert_eq!(targets[0].command_id.as_deref(), Some("cmd-1"));

        // Another status (a later decision, or the ids already written): the kept ids are not used.
        let moved_on = request(vec![target(Some("cmd-2"))]);
        assert!(matches!(unrecorded.view(&moved_on), Cow::Borrowed(_)));

        assert_eq!(unrecorded.drain().len(), 1, "kept until recorded");
        assert!(matches!(unrecorded.view(&cached), Cow::Borrowed(_)));
    }
}
