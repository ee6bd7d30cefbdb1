//! Conditions on AccessReviews (Accepted: did it count, and if not why) and AccessPolicies (Ready:
//! can it ever approve anything, and if not which field), so reviewers and administrators see what
//! the operator made of their objects. The judgement is pure (`passport_core::approval`); this only
//! writes it, and only when it changed.

use std::{sync::Arc, time::Duration};

use jiff::Timestamp;
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::{controller::Action, reflector::ObjectRef},
};
use passport_core::approval;
use passport_crds::{
    AccessPolicy, AccessReview,
    common::Condition,
    conditions::{self, Update},
};
use serde_json::json;

use super::{Context, Error};
use crate::aws::Fleet;

/// Reviews are judged again now and then: the request they name moves on (an extension, a new
/// request of the same name) without the review changing.
const REJUDGE: Duration = Duration::from_secs(300);

pub async fn review<F: Fleet>(review: Arc<AccessReview>, ctx: Arc<Context<F>>) -> Result<Action, Error> {
    let namespace = review.namespace().ok_or(Error::MissingMetadata("namespace"))?;
    let request = ctx
        .requests
        .get(&ObjectRef::new(&review.spec.access_request).within(&namespace));
    let update = approval::review_accepted(&review, request.as_deref(), &ctx.policies_in(&namespace));
    let current = review
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let api: Api<AccessReview> = Api::namespaced(ctx.client.clone(), &namespace);
    write(&api, review.as_ref(), current, update).await?;
    Ok(Action::requeue(REJUDGE))
}

pub async fn policy<F: Fleet>(policy: Arc<AccessPolicy>, ctx: Arc<Context<F>>) -> Result<Action, Error> {
    let namespace = policy.namespace().ok_or(Error::MissingMetadata("namespace"))?;
    let update = approval::policy_ready(&policy, |name| ctx.account(name).is_some());
    let current = policy
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let api: Api<AccessPolicy> = Api::namespaced(ctx.client.clone(), &namespace);
    write(&api, policy.as_ref(), current, update).await?;
    Ok(Action::requeue(REJUDGE))
}

/// Sets the condition and patches the status, unless nothing changes.
async fn write<K>(api: &Api<K>, object: &K, current: Vec<Condition>, update: Update<'_>) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let generation = object.meta().generation;
    let mut next = current.clone();
    conditions::set(&mut next, update, generation, Timestamp::now());
    if next == current {
        return Ok(());
    }
    let patch = json!({ "status": { "conditions": next, "observedGeneration": generation } });
    api.patch_status(&object.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}
