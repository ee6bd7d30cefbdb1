//! AccessRequest reconciliation: gather (approval, account, what AWS says) → the lifecycle decides →
//! record the decision (fenced) → send the commands it asks for → keep their ids for the next pass,
//! soon, to record with their outcome (or record them at once when a send failed) → logbook Events →
//! the finalizer, released only when the decision says nothing granted remains → requeue at the next
//! deadline.

use std::{borrow::Cow, sync::Arc, time::Duration};

use jiff::Timestamp;
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, Preconditions},
    runtime::controller::Action,
};
use passport_core::{
    lifecycle::{self, CommandOutcome, Retention, RetentionPolicy, Transition, apply_outcome},
    milestones,
    time::elapsed,
};
use passport_crds::{
    AccessRequest, access_request::TargetStatus, common::annotations, logbook::LogbookRecord,
};

use super::{Context, Error, FINALIZER, gather::gather, report, send, unrecorded::Kept};
use crate::{
    aws::Fleet,
    cluster::{finalizer, status, windows_password},
};

pub async fn reconcile<F: Fleet>(request: Arc<AccessRequest>, ctx: Arc<Context<F>>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile("AccessRequest");
    ctx.reported(request.as_ref(), drive(&request, &ctx).await).await
}

async fn drive<F: Fleet>(request: &AccessRequest, ctx: &Context<F>) -> Result<Action, Error> {
    let namespace = request.namespace().ok_or(Error::MissingMetadata("namespace"))?;
    let api: Api<AccessRequest> = Api::namespaced(ctx.client.clone(), &namespace);
    let deleting = request.meta().deletion_timestamp.is_some();
    if !finalizer::has(request, FINALIZER) {
        if deleting {
            return Ok(Action::await_change());
        }
        // Nothing may be granted before the finalizer guarantees it is revoked.
        let request = finalizer::add(&api, request, FINALIZER).await?;
        return step(&request, false, &api, ctx).await;
    }
    step(request, deleting, &api, ctx).await
}

/// One pass of the lifecycle on `request`, as the apiserver last showed it.
async fn step<F: Fleet>(
    request: &AccessRequest,
    deleting: bool,
    api: &Api<AccessRequest>,
    ctx: &Context<F>,
) -> Result<Action, Error> {
    let now = Timestamp::now();
    // Decided on with the ids of commands sent since the status was written; fenced on the status.
    let view = ctx.unrecorded.view(request);
    let gathered = gather(&view, deleting, ctx, now).await?;
    let transition = lifecycle::step(gathered.inputs(&view, deleting, now));
    let mut next = transition.status.clone();
    report::clear(&mut next.conditions);
    // Intent before side effect: the status saying which commands start is written first, and only
    // if what the decision read is still there, so nothing is sent on a stale decision and no send
    // goes unrecorded. Labels or annotations changing meanwhile do not matter.
    if request.status.as_ref() != Some(&next) {
        let written = status::write_if(api, &request.name_any(), &decision_inputs(request), &next).await;
        if matches!(view, Cow::Owned(_)) && matches!(written, Err(Error::Conflict)) {
            // Whatever keeps refusing the decision (the sink advancing `delivered`, spec edits), the
            // ids must not wait on it: they are written on their own, as right after a send.
            if let Some(kept) = ctx.unrecorded.take(&request.uid().unwrap_or_default()) {
                record_kept(api, &kept).await?;
            }
        }
        written?;
        ctx.unrecorded.recorded(request);
        let created = request.metadata.creation_timestamp.as_ref().map_or(now, |t| t.0);
        let before = request.status.clone().unwrap_or_default();
        for milestone in milestones::passed(&before, &next, created, now) {
            ctx.metrics.lifecycle.observe(&milestone);
        }
    }
    if !transition.commands.is_empty() {
        let uid = request.uid().ok_or(Error::MissingMetadata("uid"))?;
        let recorded = next.clone();
        let target = send::Target {
            request,
            username: &gathered.username,
            account: gathered.acting.as_ref(),
        };
        // Every outcome is applied as it comes: a command sent must reach status even if a later one
        // fails (then at once, below).
        let (mut failure, mut all_sent) = (None, true);
        for command in &transition.commands {
            match send::send_isolated(ctx, &target, command).await {
                Ok(outcomes) => {
                    all_sent &= outcomes.iter().all(|o| matches!(o, CommandOutcome::Sent { .. }));
                    outcomes.iter().for_each(|o| apply_outcome(&mut next, o, now));
                }
                Err(err) => {
                    failure = Some(err);
                    break;
                }
            }
        }
        if next != recorded && all_sent && failure.is_none() {
            // Recorded by the next pass, with the outcome when SSM has one by then.
            ctx.unrecorded
                .keep(request, &uid, &recorded.targets, next.targets.clone());
        } else if next != recorded {
            // Fenced too, on the intent it completes, so a late write can never roll back a newer one.
            // Only the targets: the outcomes touch nothing else, and a Logbook entry appended
            // meanwhile (a credential issued) or `delivered` advanced by the sink must stay.
            let intent = serde_json::json!(recorded.targets);
            write_targets(api, &request.name_any(), intent, &next.targets).await?;
        }
        if let Some(err) = failure {
            return Err(err);
        }
    }
    if act_after_write(request, &transition, &next, deleting, api, ctx).await? == Release::Held {
        return Ok(Action::requeue(AWAIT_DELIVERY));
    }
    if !deleting {
        let policy = RetentionPolicy {
            keep: ctx.finished_retention,
            records_exported: ctx.audit_gate.delivering(),
        };
        let from_git = request.annotations().contains_key(annotations::APPLIED_BY);
        match lifecycle::retention(&next, from_git, policy, Timestamp::now()) {
            Retention::Live | Retention::Kept => {}
            Retention::KeepFor(after) => return Ok(Action::requeue(after)),
            Retention::Delete => {
                retire(request, api).await?;
                return Ok(Action::await_change());
            }
        }
    }
    // Deadlines are relative to `now`, taken when this pass began; count the time it took.
    let requeue = match (transition.requeue_after, transition.commands.is_empty()) {
        // Just sent: look at the commands soon.
        (_, false) => Some(SOON),
        (after, true) => after.map(|after| after.saturating_sub(elapsed(now, Timestamp::now()))),
    };
    Ok(requeue.map_or_else(Action::await_change, Action::requeue))
}

/// Writes command ids kept for a request on their own.
pub(super) async fn record_kept(api: &Api<AccessRequest>, kept: &Kept) -> Result<(), Error> {
    write_targets(api, &kept.name, kept.intent.clone(), &kept.sent).await
}

/// Writes a request's targets only, and only if status still holds `intent` (their JSON) there.
async fn write_targets(
    api: &Api<AccessRequest>,
    name: &str,
    intent: serde_json::Value,
    targets: &[TargetStatus],
) -> Result<(), Error> {
    let intent = [("/status/targets", intent)];
    status::write_at_if(api, name, &intent, "/status/targets", &targets).await
}

/// What a decision on `request` read that only the decision's own write may change: its spec (by
/// generation), deletion, finalizers and status.
fn decision_inputs(request: &AccessRequest) -> [(&'static str, serde_json::Value); 4] {
    let meta = request.meta();
    [
        ("/metadata/generation", serde_json::json!(meta.generation)),
        (
            "/metadata/deletionTimestamp",
            serde_json::json!(meta.deletion_timestamp),
        ),
        ("/metadata/finalizers", serde_json::json!(meta.finalizers)),
        ("/status", serde_json::json!(request.status)),
    ]
}

/// When to look at commands just sent: SSM can answer within that.
const SOON: Duration = Duration::from_millis(50);

/// Deletes a request finished longer than the retention ago; this very object only (by UID), not
/// one created since under its name. Its finalizer then waits for the Logbook record's delivery.
async fn retire(request: &AccessRequest, api: &Api<AccessRequest>) -> Result<(), Error> {
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: request.uid(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(&request.name_any(), &params).await {
        Ok(_) => {
            tracing::info!(request = %request.name_any(), "finished longer than the retention ago: deleted");
            Ok(())
        }
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => Ok(()),
        Err(err) => Err(err.into()),
    }
}

/// Whether a deleted request's finalizer went.
#[derive(Debug, PartialEq, Eq)]
enum Release {
    /// Gone, or not for release yet.
    Done,
    /// Everything is revoked, but its Logbook record has not all reached the audit sink: the record
    /// lives in the object, so the object stays until it has.
    Held,
}

/// How often a deleted request held for its Logbook's delivery looks again.
const AWAIT_DELIVERY: Duration = Duration::from_secs(5);

/// Everything that follows a recorded decision: its Events, forgetting a finished request's Windows
/// password, and releasing the finalizer once nothing granted remains and its record is delivered.
async fn act_after_write<F: Fleet>(
    request: &AccessRequest,
    transition: &Transition,
    next: &passport_crds::AccessRequestStatus,
    deleting: bool,
    api: &Api<AccessRequest>,
    ctx: &Context<F>,
) -> Result<Release, Error> {
    let object = request.object_ref(&());
    // This step's events are the record's last entries, in order.
    let uid = request.uid().unwrap_or_default();
    let recorded = next
        .logbook
        .as_ref()
        .map(|r| r.entries.as_slice())
        .unwrap_or_default();
    let first = recorded.len().saturating_sub(transition.events.len());
    for (entry, seq) in transition
        .events
        .iter()
        .zip(recorded[first..].iter().map(|e| e.seq))
    {
        let id = LogbookRecord::entry_id(&uid, seq);
        ctx.logbook_events.publish(&object, entry, Some(&id)).await;
    }
    // Once, when the request finishes (or goes): a finished request is not reconciled for this again.
    let finishing = !request.phase().is_terminal() || deleting;
    if finishing && next.phase.is_terminal() && next.has_windows_target() {
        let uid = request.uid().ok_or(Error::MissingMetadata("uid"))?;
        windows_password::forget(ctx.client.clone(), &ctx.namespace, &uid).await?;
    }
    if deleting && transition.release {
        let undelivered = next
            .logbook
            .as_ref()
            .is_some_and(|r| r.undelivered().next().is_some());
        if ctx.audit_gate.delivering() && undelivered {
            return Ok(Release::Held);
        }
        finalizer::remove(api, request, FINALIZER).await?;
    }
    Ok(Release::Done)
}
