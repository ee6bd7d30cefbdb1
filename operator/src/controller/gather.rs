//! What one pass of the AccessRequest lifecycle reads: the approval (policies, reviews, instance
//! tags), the account, and what AWS says of the targets (platforms, lost sends, command outcomes,
//! terminated instances), gathered from the caches and AWS.

use std::{collections::BTreeMap, time::Duration};

use jiff::Timestamp;
use kube::ResourceExt;
use passport_core::{
    account::{self, Account, Resolved},
    approval::{self, Approval, InstanceTags, Question},
    lifecycle::{self, AccountAccess, Inputs, Observations, Purpose, Wanted},
    scripts::masked_username,
};
use passport_crds::{AccessRequest, Phase};

use super::{Context, Error};
use crate::{
    aws::{Ec2Instance, Fleet},
    cluster::windows_password,
};

/// What the lifecycle reads, gathered from caches and AWS.
pub(super) struct Gathered {
    requested: Duration,
    approved: Option<Duration>,
    approval: Approval,
    access: AccountAccess,
    /// The account commands go through: pinned at approval, else as it resolves now.
    pub(super) acting: Option<Account>,
    observations: Observations,
    /// Pinned in status at creation; computed only for a request that has none yet.
    pub(super) username: String,
    /// Why new grants wait for the audit sink, if they must.
    audit_hold: Option<String>,
}

impl Gathered {
    pub(super) fn inputs<'a>(
        &'a self,
        request: &'a AccessRequest,
        deleting: bool,
        now: Timestamp,
    ) -> Inputs<'a> {
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

pub(super) async fn gather<F: Fleet>(
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
    let mut by_command: BTreeMap<&str, (Vec<String>, bool)> = BTreeMap::new();
    for follow in &wanted.invocations {
        let (instance_ids, output) = by_command.entry(&follow.command_id).or_default();
        instance_ids.push(follow.instance_id.clone());
        *output |= follow.output;
    }
    for (command_id, (instance_ids, output)) in by_command {
        match ctx
            .fleet
            .invocations(account, command_id, &instance_ids, output)
            .await
        {
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
