//! AccessRequest reconciliation: gather (approval, account, what AWS says) → the lifecycle decides →
//! record the decision (fenced) → send the commands it asks for → record their ids → logbook Events
//! → the finalizer, released only when the decision says nothing granted remains → requeue at the
//! next deadline.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use jiff::Timestamp;
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, Preconditions},
    runtime::controller::Action,
};
use passport_core::{
    account::{self, Account, Resolved},
    approval::{self, Approval, InstanceTags, Question},
    lifecycle::{
        self, AccountAccess, Inputs, Observations, Purpose, Retention, RetentionPolicy, Transition, Wanted,
        apply_outcome,
    },
    milestones,
    scripts::masked_username,
    time::elapsed,
};
use passport_crds::{AccessRequest, Phase, common::annotations, logbook::LogbookRecord};

use super::{Context, Error, FINALIZER, report, send};
use crate::{
    aws::{Ec2Instance, Fleet},
    cluster::{events, finalizer, status, windows_password},
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
    let gathered = gather(request, deleting, ctx, now).await?;
    let transition = lifecycle::step(gathered.inputs(request, deleting, now));
    let mut next = transition.status.clone();
    report::clear(&mut next.conditions);
    // Intent before side effect: the status saying which commands start is written first, and only
    // if what the decision read is still there, so nothing is sent on a stale decision and no send
    // goes unrecorded. Labels or annotations changing meanwhile do not matter.
    if request.status.as_ref() != Some(&next) {
        status::write_if(api, &request.name_any(), &decision_inputs(request), &next).await?;
        let created = request.metadata.creation_timestamp.as_ref().map_or(now, |t| t.0);
        let before = request.status.clone().unwrap_or_default();
        for milestone in milestones::passed(&before, &next, created, now) {
            ctx.metrics.lifecycle.observe(&milestone);
        }
    }
    if !transition.commands.is_empty() {
        let recorded = next.clone();
        let target = send::Target {
            request,
            username: &gathered.username,
            account: gathered.acting.as_ref(),
        };
        // Outcomes are recorded as they come: a command sent must be in status even if a later one fails.
        let mut failure = None;
        for command in &transition.commands {
            match send::send_isolated(ctx, &target, command).await {
                Ok(outcomes) => outcomes.iter().for_each(|o| apply_outcome(&mut next, o, now)),
                Err(err) => {
                    failure = Some(err);
                    break;
                }
            }
        }
        // Fenced too, on the intent it completes, so a late write can never roll back a newer one.
        if next != recorded {
            // Only the targets: the outcomes touch nothing else, and a Logbook entry appended
            // meanwhile (a credential issued) or `delivered` advanced by the sink must stay.
            let intent = [("/status/targets", serde_json::json!(recorded.targets))];
            status::write_at_if(
                api,
                &request.name_any(),
                &intent,
                "/status/targets",
                &next.targets,
            )
            .await?;
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

/// What the lifecycle reads, gathered from caches and AWS.
struct Gathered {
    requested: Duration,
    approved: Option<Duration>,
    approval: Approval,
    access: AccountAccess,
    /// The account commands go through: pinned at approval, else as it resolves now.
    acting: Option<Account>,
    observations: Observations,
    /// Pinned in status at creation; computed only for a request that has none yet.
    username: String,
    /// Why new grants wait for the audit sink, if they must.
    audit_hold: Option<String>,
}

impl Gathered {
    fn inputs<'a>(&'a self, request: &'a AccessRequest, deleting: bool, now: Timestamp) -> Inputs<'a> {
        Inputs {
            spec: &request.spec,
            status: request.status.as_ref().unwrap_or(&EMPTY_STATUS),
            generation: request.metadata.generation,
            deleting,
            requested: self.requested,
            approved: self.approved,
            approval: &self.approval,
            account: &self.access,
            observations: &self.observations,
            username: &self.username,
            audit_hold: self.audit_hold.as_deref(),
            now,
        }
    }
}

static EMPTY_STATUS: std::sync::LazyLock<passport_crds::AccessRequestStatus> =
    std::sync::LazyLock::new(Default::default);

async fn gather<F: Fleet>(
    request: &AccessRequest,
    deleting: bool,
    ctx: &Context<F>,
    now: Timestamp,
) -> Result<Gathered, Error> {
    let namespace = request.namespace().unwrap_or_default();
    let status = request.status.clone().unwrap_or_default();
    let requested = request.spec.access_duration()?;
    let approved = status.approved_access()?;
    let policies = ctx.policies_in(&namespace);
    let resolved = account::resolve(request, &policies, |name| ctx.account(name));
    let access = match &resolved {
        Ok(Resolved { name, account }) => AccountAccess::Usable {
            name: name.clone(),
            role: account.into(),
        },
        Err(problem) => AccountAccess::Unusable(problem.clone()),
    };
    let acting = account::acting(request, resolved.as_ref().ok());
    let reviews = ctx.reviews_in(&namespace);
    // A Deny after approval ends the request whatever else is asked meanwhile (an extension no
    // policy covers included).
    let live = matches!(request.phase(), Phase::Provisioning | Phase::Active);
    let denied = live
        .then(|| {
            let created = request.metadata.creation_timestamp.as_ref().map(|t| t.0);
            let question = Question {
                requested: approved.unwrap_or(requested),
                since: created.unwrap_or(now),
                extending: false,
            };
            approval::denied_after_approval(request, question, &policies, &reviews)
        })
        .flatten();
    let approval = match (denied, approval::reviews_since(request, requested, approved)) {
        (Some(denied), _) => denied,
        (None, Some(since)) => {
            let question = Question {
                requested,
                since,
                extending: approved.is_some(),
            };
            let tags = match target_tags(ctx, request, &policies, acting.as_ref()).await {
                Ok(tags) => tags,
                // A new request waits for the tags (a refusal would be final); an extension only
                // waits, and nothing else of an approved request (expiry, completion) ever does.
                Err(err) if question.extending => {
                    tracing::warn!(error = %err, "extension not judged this time");
                    InstanceTags::new()
                }
                Err(err) => return Err(err),
            };
            approval::evaluate(request, question, &policies, &reviews, &tags, now)
        }
        (None, None) => Approval::Approved { by: String::new() },
    };
    let mut observations = Observations::default();
    if let Some(account) = &acting {
        let starting = lifecycle::about_to_provision(&status, &approval, deleting, &request.spec);
        let wanted = lifecycle::wanted(&request.spec, &status, starting);
        let key = format!("{namespace}/{}", request.name_any());
        let comment =
            lifecycle::command_comment(Purpose::Provision, &request.uid().unwrap_or_default(), &key);
        observe(ctx, account, &wanted, &comment, &mut observations).await;
        if !observations.invocations.is_empty() {
            let uid = request.uid().ok_or(Error::MissingMetadata("uid"))?;
            windows_password::take_outputs(ctx, &uid, &status, &mut observations).await;
        }
    }
    let username = status
        .username
        .clone()
        .unwrap_or_else(|| masked_username(&request.spec.requester, &ctx.authority.username_key));
    Ok(Gathered {
        audit_hold: ctx.audit_gate.reason(),
        requested,
        approved,
        approval,
        access,
        acting,
        observations,
        username,
    })
}

/// The targets' EC2 tags, when a policy of the namespace selects instances by tag (else none are
/// needed). Not knowing them is an error to retry, never a reason to refuse the request.
async fn target_tags<F: Fleet>(
    ctx: &Context<F>,
    request: &AccessRequest,
    policies: &[passport_crds::AccessPolicy],
    account: Option<&Account>,
) -> Result<InstanceTags, Error> {
    let by_tag = policies.iter().any(|p| !p.spec.targets.tags.is_empty());
    let Some(account) = account.filter(|_| by_tag) else {
        return Ok(InstanceTags::new());
    };
    let ids: Vec<String> = request
        .spec
        .targets
        .iter()
        .map(|t| t.instance_id.clone())
        .collect();
    let found = ctx
        .fleet
        .describe_instances(account, &ids)
        .await
        .map_err(|err| Error::TargetTags(err.to_string()))?;
    Ok(found
        .into_iter()
        .map(|(id, instance)| (id, instance.tags))
        .collect())
}

/// Asks AWS what the lifecycle wants to know; what cannot be asked now is noted, not fatal.
async fn observe<F: Fleet>(
    ctx: &Context<F>,
    account: &Account,
    wanted: &Wanted,
    provision_comment: &str,
    observations: &mut Observations,
) {
    for instance_id in &wanted.lost_sends {
        match ctx
            .fleet
            .find_command(account, instance_id, provision_comment)
            .await
        {
            Ok(found) => {
                observations.lost_sends.insert(instance_id.clone(), found);
            }
            Err(err) => {
                observations.errors.insert(instance_id.clone(), err.to_string());
            }
        }
    }
    if !wanted.platforms.is_empty() {
        match ctx.fleet.managed_instances(account, &wanted.platforms).await {
            Ok(managed) => observations.managed = managed,
            Err(err) => observations
                .errors
                .extend(wanted.platforms.iter().map(|id| (id.clone(), err.to_string()))),
        }
    }
    if !wanted.existence.is_empty() {
        match ctx.fleet.describe_instances(account, &wanted.existence).await {
            Ok(found) => observations.gone.extend(gone(&wanted.existence, &found)),
            // Not knowing keeps the revocation going (and backing off): the safe side.
            Err(err) => tracing::warn!(error = %err, "cannot ask EC2 whether instances still exist"),
        }
    }
    // One call per command, whatever the number of its instances.
    let mut by_command: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (instance_id, command_id) in &wanted.invocations {
        by_command
            .entry(command_id)
            .or_default()
            .push(instance_id.clone());
    }
    for (command_id, instance_ids) in by_command {
        match ctx.fleet.invocations(account, command_id, &instance_ids).await {
            Ok(found) => {
                for (instance_id, invocation) in found {
                    match invocation {
                        Ok(invocation) => {
                            observations.invocations.insert(instance_id, invocation);
                        }
                        Err(err) => {
                            observations.errors.insert(instance_id, err.to_string());
                        }
                    }
                }
            }
            Err(err) => observations
                .errors
                .extend(instance_ids.into_iter().map(|id| (id, err.to_string()))),
        }
    }
}

/// The instances EC2 reports terminated, and how it said so. One EC2 does not list stays a target:
/// it may be a hybrid machine or in another region, and a wrong guess would leave its user behind.
fn gone(ids: &[String], found: &BTreeMap<String, Ec2Instance>) -> Vec<(String, String)> {
    ids.iter()
        .filter(|id| found.get(*id).is_some_and(|i| i.state == "terminated"))
        .map(|id| (id.clone(), format!("EC2 reports {id} terminated")))
        .collect()
}

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
        events::publish(&ctx.recorder, &object, entry, Some(&id)).await;
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
