//! What the bench sees of its requests: when each became Active and ended, from a watch that decodes
//! only the fields it times. The harness shares the machine's cores with what it measures; decoding
//! whole AccessRequests (managed fields included) on every change took a quarter of a core.

use std::{
    borrow::Cow,
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Result, bail};
use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::{
    NamespaceResourceScope,
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time},
};
use kube::{
    Api, Resource, ResourceExt,
    runtime::{WatchStreamExt, watcher},
};
use passport_crds::{AccessRequest, Phase};
use serde::{Deserialize, Deserializer};

/// An AccessRequest as the bench reads it: its name, phase and expiresAt (and the resourceVersion
/// the watch needs).
#[derive(Debug, Clone, Deserialize)]
pub struct Timed {
    #[serde(deserialize_with = "name_and_version")]
    metadata: ObjectMeta,
    status: Option<TimedStatus>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TimedStatus {
    #[serde(default)]
    phase: Phase,
    expires_at: Option<Time>,
}

/// The name, and the resourceVersion the watch resumes from.
fn name_and_version<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ObjectMeta, D::Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Named {
        name: Option<String>,
        resource_version: Option<String>,
    }
    let named = Named::deserialize(deserializer)?;
    Ok(ObjectMeta {
        name: named.name,
        resource_version: named.resource_version,
        ..ObjectMeta::default()
    })
}

impl Resource for Timed {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(dt: &()) -> Cow<'_, str> {
        AccessRequest::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        AccessRequest::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        AccessRequest::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        AccessRequest::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// When each request was first seen Active and first seen in a terminal phase, and its expiresAt,
/// as a watch opened before the first create saw them.
#[derive(Debug, Clone, Default)]
pub struct Marks {
    pub active: Option<Instant>,
    pub ended: Option<(Phase, Instant)>,
    pub expires_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Default)]
pub struct Seen(Arc<Mutex<HashMap<String, Marks>>>);

impl Seen {
    pub fn watch(api: Api<Timed>) -> (Self, tokio::task::JoinHandle<()>) {
        let seen = Self::default();
        let marks = seen.0.clone();
        let task = tokio::spawn(
            watcher(api, watcher::Config::default())
                .applied_objects()
                .for_each(move |object| {
                    let now = Instant::now();
                    let request = match object {
                        Ok(request) => request,
                        Err(err) => {
                            eprintln!("bench watch: {err}");
                            return futures::future::ready(());
                        }
                    };
                    if let Some(status) = &request.status {
                        let mut marks = marks.lock().unwrap_or_else(|p| p.into_inner());
                        let mark = marks.entry(request.name_any()).or_default();
                        if status.phase == Phase::Active && mark.active.is_none() {
                            mark.active = Some(now);
                        }
                        if status.phase.is_terminal() && mark.ended.is_none() {
                            mark.ended = Some((status.phase, now));
                        }
                        if let Some(expires) = &status.expires_at {
                            mark.expires_at = Some(expires.0);
                        }
                    }
                    futures::future::ready(())
                }),
        );
        (seen, task)
    }

    pub fn get(&self, name: &str) -> Marks {
        let marks = self.0.lock().unwrap_or_else(|p| p.into_inner());
        marks.get(name).cloned().unwrap_or_default()
    }

    /// Waits until `done` holds for every one of `names`; fails on a request that ended otherwise.
    pub async fn wait_all(
        &self,
        names: &[String],
        what: &str,
        timeout: Duration,
        done: impl Fn(&Marks) -> bool,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let (pending, failed) = {
                let marks = self.0.lock().unwrap_or_else(|p| p.into_inner());
                let pending = names.iter().filter(|n| !marks.get(*n).is_some_and(&done)).count();
                let failed = names.iter().find(|n| {
                    marks
                        .get(*n)
                        .is_some_and(|m| matches!(m.ended, Some((Phase::Failed | Phase::Denied, _))))
                });
                (pending, failed.cloned())
            };
            if let Some(name) = failed {
                bail!("{name} ended Failed or Denied while waiting for {what}");
            }
            if pending == 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{pending} of {} requests not {what} within {timeout:?}",
                    names.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
