//! Which live AccessRequests hold an account on a Windows instance, kept up to date from the
//! AccessRequest watch so that collecting a provisioning's password reads one instance's entry
//! instead of scanning every request in the cache.

use std::{
    collections::HashMap,
    sync::{Arc, PoisonError, RwLock},
};

use kube::{ResourceExt, runtime::watcher};
use passport_crds::{
    AccessRequest,
    access_request::{Platform, TargetState},
};

use super::windows_password::Holders;

/// Instance id → {request UID → account on the instance}, for every live request with a Windows
/// target Ready. Clones share one index.
#[derive(Debug, Clone, Default)]
pub struct HolderIndex(Arc<RwLock<Index>>);

/// `(instance id, account)` of each Windows target a request holds Ready.
type Held = Vec<(String, String)>;

#[derive(Debug, Default)]
struct Index {
    by_instance: HashMap<String, HashMap<String, String>>,
    /// Request UID → the instances it is indexed under, to drop them when it changes or goes.
    by_request: HashMap<String, Vec<String>>,
    /// The requests listed since the watch (re)started, swapped in when the listing is complete.
    relist: Option<HashMap<String, Held>>,
}

impl HolderIndex {
    /// Follows the AccessRequest watch as a reflector store does.
    pub fn observe(&self, event: &watcher::Event<AccessRequest>) {
        let mut index = self.0.write().unwrap_or_else(PoisonError::into_inner);
        match event {
            watcher::Event::Apply(request) => {
                if let Some(uid) = request.uid() {
                    index.remove(&uid);
                    index.insert(uid, held(request));
                }
            }
            watcher::Event::Delete(request) => {
                if let Some(uid) = request.uid() {
                    index.remove(&uid);
                }
            }
            watcher::Event::Init => index.relist = Some(HashMap::new()),
            watcher::Event::InitApply(request) => {
                let (Some(uid), Some(relist)) = (request.uid(), index.relist.as_mut()) else {
                    return;
                };
                let held = held(request);
                // Only holders are buffered: a Linux-only fleet keeps nothing.
                if !held.is_empty() {
                    relist.insert(uid, held);
                }
            }
            watcher::Event::InitDone => {
                let Some(relist) = index.relist.take() else {
                    return;
                };
                index.by_instance = HashMap::new();
                index.by_request = HashMap::new();
                for (uid, held) in relist {
                    index.insert(uid, held);
                }
            }
        }
    }

    /// The requests other than `except_uid` Ready on `instance_id`, with the account each holds
    /// there, by UID.
    pub fn ready_on(&self, instance_id: &str, except_uid: &str) -> Holders {
        let index = self.0.read().unwrap_or_else(PoisonError::into_inner);
        let mut ready: Vec<(String, String)> = index
            .by_instance
            .get(instance_id)
            .into_iter()
            .flatten()
            .filter(|(uid, _)| *uid != except_uid)
            .map(|(uid, account)| (uid.clone(), account.clone()))
            .collect();
        ready.sort();
        Holders { ready }
    }
}

impl Index {
    fn insert(&mut self, uid: String, held: Held) {
        if held.is_empty() {
            return;
        }
        let mut instances = Vec::with_capacity(held.len());
        for (instance_id, account) in held {
            let holders = self.by_instance.entry(instance_id.clone()).or_default();
            // The first target naming the instance wins, as it did when the cache was scanned.
            if !holders.contains_key(&uid) {
                holders.insert(uid.clone(), account);
                instances.push(instance_id);
            }
        }
        self.by_request.insert(uid, instances);
    }

    fn remove(&mut self, uid: &str) {
        for instance_id in self.by_request.remove(uid).unwrap_or_default() {
            if let Some(holders) = self.by_instance.get_mut(&instance_id) {
                holders.remove(uid);
                if holders.is_empty() {
                    self.by_instance.remove(&instance_id);
                }
            }
        }
    }
}

/// The Windows targets `request` holds Ready while it is live, with the account on each: the
/// target's own (a domain controller's per-request account) or else the request's.
fn held(request: &AccessRequest) -> Held {
    let Some(status) = request.status.as_ref() else {
        return Vec::new();
    };
    if status.phase.is_terminal() {
        return Vec::new();
    }
    status
        .targets
        .iter()
        .filter(|t| t.platform == Some(Platform::Windows) && t.state == TargetState::Ready)
        .filter_map(|t| {
            let account = t.username.clone().or_else(|| status.username.clone())?;
            Some((t.instance_id.clone(), account))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use passport_crds::{
        AccessRequestSpec, Phase,
        access_request::{AccessRequestStatus, TargetStatus},
    };
    use watcher::Event::{Apply, Delete, Init, InitApply, InitDone};

    use super::*;

    const INSTANCE: &str = "i-0123456789abcdef0";
    /// A domain controller's per-request account.
    const OWN: &str = "rs-5f3a9c21-0a1b2c";

    fn on(platform: Platform, uid: &str, phase: Phase, state: TargetState) -> AccessRequest {
        let mut r = AccessRequest::new(uid, AccessRequestSpec::new("alice", "why", [INSTANCE]));
        r.metadata.uid = Some(uid.into());
        r.status = Some(AccessRequestStatus {
            phase,
            username: Some("rs-5f3a9c21".into()),
            targets: vec![TargetStatus {
                instance_id: INSTANCE.into(),
                platform: Some(platform),
                state,
                ..TargetStatus::default()
            }],
            ..AccessRequestStatus::default()
        });
        r
    }

    fn request(uid: &str, phase: Phase, state: TargetState) -> AccessRequest {
        on(Platform::Windows, uid, phase, state)
    }

    fn ready(uid: &str) -> AccessRequest {
        request(uid, Phase::Active, TargetState::Ready)
    }

    fn ready_as_own(uid: &str) -> AccessRequest {
        let mut r = ready(uid);
        r.status.as_mut().expect("status").targets[0].username = Some(OWN.into());
        r
    }

    fn observed(events: impl IntoIterator<Item = watcher::Event<AccessRequest>>) -> HolderIndex {
        let index = HolderIndex::default();
        events.into_iter().for_each(|event| index.observe(&event));
        index
    }

    fn holders(index: &HolderIndex, except_uid: &str) -> Vec<(String, String)> {
        index.ready_on(INSTANCE, except_uid).ready
    }

    fn pair(uid: &str, account: &str) -> (String, String) {
        (uid.to_owned(), account.to_owned())
    }

    fn is_empty(index: &HolderIndex) -> bool {
        let index = index.0.read().expect("lock");
        index.by_instance.is_empty() && index.by_request.is_empty()
    }

    #[test]
    fn holders_are_the_other_live_requests_ready_on_the_instance() {
        let index = observed([
            Apply(request("uid-1", Phase::Provisioning, TargetState::Provisioning)),
            Apply(ready("uid-2")),
            Apply(ready_as_own("uid-3")),
            Apply(request("uid-4", Phase::Completed, TargetState::Removed)),
            Apply(request("uid-5", Phase::Provisioning, TargetState::Provisioning)),
        ]);
        let uid_3 = pair("uid-3", OWN);
        assert_eq!(
            holders(&index, "uid-1"),
            [pair("uid-2", "rs-5f3a9c21"), uid_3.clone()]
        );
        assert_eq!(holders(&index, "uid-2"), [uid_3]);
        assert!(index.ready_on("i-0000000000000000f", "uid-1").ready.is_empty());
    }

    #[test]
    fn an_update_or_a_delete_drops_what_no_longer_holds() {
        let index = observed([
            Apply(ready("uid-2")),
            Apply(ready("uid-3")),
            Apply(ready("uid-4")),
            // Its target leaves Ready; it ends while its target still says Ready.
            Apply(request("uid-2", Phase::Active, TargetState::Removing)),
            Apply(request("uid-3", Phase::Expired, TargetState::Ready)),
        ]);
        assert_eq!(holders(&index, "uid-1"), [pair("uid-4", "rs-5f3a9c21")]);
        index.observe(&Delete(ready("uid-4")));
        assert!(holders(&index, "uid-1").is_empty() && is_empty(&index));
    }

    #[test]
    fn a_relist_drops_the_requests_that_vanished() {
        let index = observed([Apply(ready("uid-2")), Apply(ready("uid-3")), Init]);
        index.observe(&InitApply(ready_as_own("uid-3")));
        // Until the listing is complete, the index answers as before.
        assert_eq!(holders(&index, "uid-1").len(), 2);
        index.observe(&InitDone);
        assert_eq!(holders(&index, "uid-1"), [pair("uid-3", OWN)]);
        index.observe(&Init);
        index.observe(&InitDone);
        assert!(is_empty(&index));
    }

    #[test]
    fn linux_targets_are_never_indexed() {
        let linux = |uid| on(Platform::Linux, uid, Phase::Active, TargetState::Ready);
        let index = observed([Apply(linux("uid-2")), Init, InitApply(linux("uid-3"))]);
        let buffered = index.0.read().expect("lock").relist.as_ref().map(HashMap::len);
        assert_eq!(buffered, Some(0));
        index.observe(&InitDone);
        assert!(holders(&index, "uid-1").is_empty() && is_empty(&index));
    }
}
