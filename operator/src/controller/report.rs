//! Failures seen where users look: a reconcile that fails becomes a Warning Event on its object and a
//! `Reconciled=False` condition saying why, at most once a minute per object and reason. The next
//! successful reconcile removes the condition.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use jiff::Timestamp;
use kube::{Api, Resource, ResourceExt, runtime::events::Recorder};
use passport_crds::{
    AccessRequest, AwsAccount, CredentialRequest,
    common::Condition,
    conditions::{self, Update, types::RECONCILED},
};
use serde::de::DeserializeOwned;

use super::Error;
use crate::cluster::{events, status};

/// How often one object is told about one reason.
const EVERY: Duration = Duration::from_secs(60);

/// The kinds whose status carries conditions.
pub trait Conditioned: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug {
    fn conditions(&self) -> &[Condition];
    /// The API of this object's kind, in its namespace if it has one.
    fn api(&self, client: kube::Client) -> Api<Self>;
}

impl Conditioned for AccessRequest {
    fn conditions(&self) -> &[Condition] {
        self.status.as_ref().map_or(&[], |s| &s.conditions)
    }

    fn api(&self, client: kube::Client) -> Api<Self> {
        Api::namespaced(client, &self.namespace().unwrap_or_default())
    }
}

impl Conditioned for CredentialRequest {
    fn conditions(&self) -> &[Condition] {
        self.status.as_ref().map_or(&[], |s| &s.conditions)
    }

    fn api(&self, client: kube::Client) -> Api<Self> {
        Api::namespaced(client, &self.namespace().unwrap_or_default())
    }
}

impl Conditioned for AwsAccount {
    fn conditions(&self) -> &[Condition] {
        self.status.as_ref().map_or(&[], |s| &s.conditions)
    }

    fn api(&self, client: kube::Client) -> Api<Self> {
        Api::all(client)
    }
}

/// Remembers what was said to whom, so that a failing object is not flooded.
#[derive(Debug, Default)]
pub struct Limiter {
    said: Mutex<HashMap<(String, String), Instant>>,
}

impl Limiter {
    /// True when `(object, reason)` was not reported within the last minute (and records it).
    pub fn allow(&self, object: &str, reason: &str, now: Instant) -> bool {
        let mut said = self
            .said
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        said.retain(|_, at| now.duration_since(*at) < EVERY);
        let key = (object.to_owned(), reason.to_owned());
        if said.contains_key(&key) {
            return false;
        }
        said.insert(key, now);
        true
    }
}

/// Reports `error` on `object`: a Warning Event and the condition.
pub async fn failure<K: Conditioned>(
    client: &kube::Client,
    recorder: &Recorder,
    limiter: &Limiter,
    object: &K,
    error: &Error,
) {
    if error.is_routine() || object.meta().deletion_timestamp.is_some() && matches!(error, Error::Kube(_)) {
        return;
    }
    let reason = error.reason();
    let uid = object.uid().unwrap_or_default();
    if !limiter.allow(&uid, &reason, Instant::now()) {
        return;
    }
    let message = error.to_string();
    tracing::warn!(kind = %K::kind(&()), name = %object.name_any(), %reason, "reconcile failed: {message}");
    events::warn(recorder, &object.object_ref(&()), &reason, &message).await;
    let mut conditions = object.conditions().to_vec();
    let update = Update::new(RECONCILED, false, &reason).message(message);
    conditions::set(
        &mut conditions,
        update,
        object.meta().generation,
        Timestamp::now(),
    );
    let api = object.api(client.clone());
    let body = serde_json::json!({ "conditions": conditions });
    if let Err(err) = status::write(
        &api,
        &object.name_any(),
        object.meta().resource_version.as_deref(),
        &body,
    )
    .await
    {
        tracing::debug!(name = %object.name_any(), "could not set the Reconciled condition: {err}");
    }
}

impl<F> super::Context<F> {
    /// Passes `result` on, after reporting a failure on `object`.
    pub async fn reported<K: Conditioned>(
        &self,
        object: &K,
        result: Result<kube::runtime::controller::Action, Error>,
    ) -> Result<kube::runtime::controller::Action, Error> {
        if let Err(err) = &result {
            failure(&self.client, &self.recorder, &self.limiter, object, err).await;
        }
        result
    }
}

/// Drops a `Reconciled=False` left by an earlier failure, as part of a status about to be written.
pub fn clear(conditions: &mut Vec<Condition>) {
    conditions::remove(conditions, RECONCILED);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_report_per_object_and_reason_a_minute() {
        let limiter = Limiter::default();
        let t0 = Instant::now();
        assert!(limiter.allow("uid-a", "StatusTimeout", t0));
        assert!(!limiter.allow("uid-a", "StatusTimeout", t0 + Duration::from_secs(30)));
        assert!(
            limiter.allow("uid-a", "Kube", t0 + Duration::from_secs(30)),
            "another reason"
        );
        assert!(
            limiter.allow("uid-b", "StatusTimeout", t0 + Duration::from_secs(30)),
            "another object"
        );
        assert!(limiter.allow("uid-a", "StatusTimeout", t0 + Duration::from_secs(61)));
    }
}
