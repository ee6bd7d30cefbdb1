use std::time::Duration;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{
    Condition, Time, bounded_duration_rules, grow_only_duration_rule, immutable_optional_rule, rule,
};
use crate::duration::{ACCESS_BOUNDS, DEFAULT_ACCESS, InvalidDuration, parse_field};

/// Desired access: requester, reason, targets, duration.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "passport.dev",
    doc = "Who needs which EC2 instances, for how long, and why. Once approved, passport creates a short-lived OS user on every target and removes it when the request completes, expires or is deleted.",
    version = "v1alpha1",
    kind = "AccessRequest",
    namespaced,
    status = "AccessRequestStatus",
    shortname = "ar",
    category = "passport",
    derive = "PartialEq",
    printcolumn = r#"{"name":"Requester","type":"string","jsonPath":".spec.requester"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Targets","type":"string","jsonPath":".spec.targets[*].instanceId"}"#,
    printcolumn = r#"{"name":"Expires","type":"string","jsonPath":".status.expiresAt"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    immutable_optional_rule("spec", "account", "create a new AccessRequest to use another account"),
    immutable_optional_rule("spec", "sourceCidrs", "create a new AccessRequest to connect from other addresses"),
    immutable_optional_rule("spec", "ticket", "what was approved and audited names this ticket; create a new AccessRequest for another"),
]))]
pub struct AccessRequestSpec {
    /// The Kubernetes username who will connect (e.g. `alice@example.com`). Must be the user who
    /// creates the request, unless that user is a trusted GitOps applier. Immutable.
    #[schemars(length(min = 1, max = 253))]
    #[schemars(extend("x-kubernetes-validations" = [
        rule("self == oldSelf", "spec.requester is immutable; create a new AccessRequest for another requester"),
    ]))]
    pub requester: String,

    /// Why access is needed, in words a reviewer and an auditor will understand (1 to 1024 characters).
    /// Immutable: it is what was approved.
    #[schemars(length(min = 1, max = 1024))]
    #[schemars(extend("x-kubernetes-validations" = [
        rule("self == oldSelf", "spec.reason is immutable: it is what was approved; create a new AccessRequest for another reason"),
    ]))]
    pub reason: String,

    /// Incident or change ticket this access is for (e.g. `INC-123`). Some policies require it.
    /// Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub ticket: Option<String>,

    /// How long access lasts once active, in Go duration syntax (`30m`, `1h`, `1h30m`); between 1m
    /// and 12h, default 1h. The clock starts when the request becomes Active. It may only grow:
    /// raising it extends the request and moves `status.expiresAt`.
    #[serde(default = "default_duration")]
    #[schemars(length(min = 2, max = 32))]
    #[schemars(extend("x-kubernetes-validations" = grow_only_and_bounded()))]
    pub duration: String,

    /// Name of the AwsAccount the targets live in. When unset, the namespace's default account (from
    /// its AccessPolicy) applies. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub account: Option<String>,

    /// Addresses tunnels may be opened from, as CIDRs (e.g. `203.0.113.7/32`). When unset, any
    /// address the requester's AWS session allows. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 20), inner(length(max = 43)))]
    #[schemars(extend("x-kubernetes-validations" = [
        rule("self.all(c, isCIDR(c))", "spec.sourceCidrs entries must be CIDRs such as 203.0.113.7/32 or 2001:db8::/64"),
    ]))]
    pub source_cidrs: Option<Vec<String>>,

    /// The instances to grant access to: 1 to 50, each named once. Immutable; create another request
    /// for other instances.
    #[schemars(length(min = 1, max = 50))]
    #[schemars(extend(
        "x-kubernetes-list-type" = "map",
        "x-kubernetes-list-map-keys" = ["instanceId"],
        "x-kubernetes-validations" = [
            rule("self.all(t, self.exists_one(u, u.instanceId == t.instanceId))",
                 "spec.targets must name each instance only once; remove the duplicate"),
            rule("self == oldSelf", "spec.targets is immutable; create a new AccessRequest for other instances"),
        ]
    ))]
    pub targets: Vec<Target>,

    /// Set to true to end the request early: access is revoked at once. May only go from false to true.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-validations" = [
        rule("self || !oldSelf", "spec.completed may only change from false to true; a completed request cannot be reopened"),
    ]))]
    pub completed: bool,
}

impl AccessRequestSpec {
    /// A request with the defaults a user gets when they say no more: 1h, no ticket, no account
    /// (the namespace default applies), any source address, not completed.
    pub fn new(
        requester: &str,
        reason: &str,
        instance_ids: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            requester: requester.to_owned(),
            reason: reason.to_owned(),
            ticket: None,
            duration: default_duration(),
            account: None,
            source_cidrs: None,
            targets: instance_ids
                .into_iter()
                .map(|id| Target {
                    instance_id: id.into(),
                })
                .collect(),
            completed: false,
        }
    }
}

impl AccessRequestSpec {
    /// `spec.duration`, parsed.
    pub fn access_duration(&self) -> Result<Duration, InvalidDuration> {
        parse_field("spec.duration", &self.duration, ACCESS_BOUNDS)
    }
}

impl AccessRequestStatus {
    /// `status.approvedDuration`, parsed; `None` before approval.
    pub fn approved_access(&self) -> Result<Option<Duration>, InvalidDuration> {
        self.approved_duration
            .as_deref()
            .map(|text| parse_field("status.approvedDuration", text, ACCESS_BOUNDS))
            .transpose()
    }

    /// Whether any target runs Windows.
    pub fn has_windows_target(&self) -> bool {
        self.targets.iter().any(|t| t.platform == Some(Platform::Windows))
    }
}

impl AccessRequest {
    /// The phase, Pending before the operator wrote any status.
    pub fn phase(&self) -> Phase {
        self.status.as_ref().map(|s| s.phase).unwrap_or_default()
    }

    /// Why the request cannot be used to connect now, or `None` when it can: the same words for
    /// the operator's refusals and the CLI's.
    pub fn unusable(&self) -> Option<Unusable> {
        let status = self.status.clone().unwrap_or_default();
        let said = |fallback: &str| {
            let message = status.message.trim();
            if message.is_empty() {
                fallback.to_owned()
            } else {
                message.to_owned()
            }
        };
        let why = match status.phase {
            Phase::Active if self.metadata.deletion_timestamp.is_some() => {
                Why::Ending("it is being deleted".into())
            }
            Phase::Active if self.spec.completed => {
                Why::Ending("it is being completed (spec.completed is true)".into())
            }
            Phase::Active => return None,
            Phase::Pending => {
                let approval =
                    crate::conditions::observe(&status.conditions, crate::conditions::types::APPROVED)
                        .map(|c| c.message.trim().to_owned())
                        .filter(|m| !m.is_empty())
                        .unwrap_or_else(|| "it is not approved yet".to_owned());
                Why::Waiting(approval)
            }
            Phase::Provisioning => Why::Provisioning,
            Phase::Revoking => Why::Ending("access is being revoked".into()),
            Phase::Completed | Phase::Expired => Why::Ending("access has ended".into()),
            Phase::Denied => Why::Ending(said("it was denied")),
            Phase::Failed => Why::Ending(said("it could not be provisioned")),
        };
        Some(Unusable {
            name: self.metadata.name.clone().unwrap_or_default(),
            phase: status.phase,
            why,
        })
    }
}

/// Why an AccessRequest cannot be used now, and what to do: `AccessRequest NAME is PHASE: why; fix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unusable {
    pub name: String,
    pub phase: Phase,
    pub why: Why,
}

/// The three kinds of "not now".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// Not approved yet; the message says what it waits for.
    Waiting(String),
    /// Approved; users are still being created.
    Provisioning,
    /// It will never be usable again; the message says why.
    Ending(String),
}

impl Unusable {
    /// Whether waiting helps (as opposed to asking for access again).
    pub fn is_temporary(&self) -> bool {
        !matches!(self.why, Why::Ending(_))
    }
}

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Unusable { name, phase, why } = self;
        write!(f, "AccessRequest {name} is {phase:?}: ")?;
        match why {
            Why::Waiting(approval) => write!(f, "{approval}; follow it with `kubectl passport get {name}`"),
            Why::Provisioning => write!(
                f,
                "the user is still being created on its instances; wait with `kubectl wait --for=condition=Ready ar/{name}`"
            ),
            Why::Ending(reason) => write!(
                f,
                "{reason}; request access again with `kubectl passport request`"
            ),
        }
    }
}

fn default_duration() -> String {
    DEFAULT_ACCESS.to_owned()
}

fn grow_only_and_bounded() -> Vec<serde_json::Value> {
    let mut rules = bounded_duration_rules("spec.duration", "1m", "12h");
    rules.push(grow_only_duration_rule("spec.duration"));
    rules
}

/// One instance a request names.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    /// EC2 instance id (`i-` and 8 or 17 hex digits), or an SSM managed-instance id (`mi-`).
    #[schemars(length(min = 10, max = 20))]
    #[schemars(extend("x-kubernetes-validations" = [
        rule("self.matches('^(i|mi)-([0-9a-f]{8}|[0-9a-f]{17})$')",
             "instanceId must be an EC2 instance id such as i-0123456789abcdef0: i- or mi- then 8 or 17 lowercase hex digits"),
    ]))]
    pub instance_id: String,
}

/// Where a request is in its life. Terminal phases: Completed, Expired, Denied, Failed.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum Phase {
    /// Waiting for approval.
    #[default]
    Pending,
    /// Approved; users are being created on the targets.
    Provisioning,
    /// The user exists on every reachable target; the clock is running.
    Active,
    /// Access is being removed from every target.
    Revoking,
    /// Ended early by `spec.completed`, and revoked.
    Completed,
    /// Reached `expiresAt`, and revoked.
    Expired,
    /// A reviewer denied it, or it waited too long for approval.
    Denied,
    /// It could not be provisioned; whatever was granted has been removed.
    Failed,
}

impl Phase {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Phase::Completed | Phase::Expired | Phase::Denied | Phase::Failed
        )
    }
}

/// What passport has done for a request. Written by the operator only.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessRequestStatus {
    /// Pending, Provisioning, Active, Revoking, Completed, Expired, Denied or Failed.
    #[serde(default)]
    pub phase: Phase,
    /// The short-lived OS user: `rs-<masked-id>`, stable per requester and not reversible to the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// When the request was approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_at: Option<Time>,
    /// The AwsAccount the request was approved for (spec.account, or the namespace default then);
    /// later changes to the default do not move it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The AwsAccount's role, region and external id as they were at approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_role: Option<AccountRole>,
    /// The duration the approval covers. An extension (a larger spec.duration) is approved like a
    /// request; until it is, expiresAt stays where this puts it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_duration: Option<String>,
    /// When the last extension was approved; reviews made after it count for the next one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extended_at: Option<Time>,
    /// When every target became ready; the duration is counted from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activated_at: Option<Time>,
    /// activatedAt + spec.duration: when access is revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
    /// When revocation started (completion, expiry, deletion, denial or failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_started_at: Option<Time>,
    /// When the request reached a terminal phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Time>,
    /// What happened last, in words: why it waits, failed or ended.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// While Revoking: the terminal phase the request ends in once every target is cleaned up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Phase>,
    /// Per-instance progress.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<TargetStatus>,
    /// Standard conditions; at least Approved, Provisioned and Ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The durable Logbook record: every action, kept as long as the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logbook: Option<crate::logbook::LogbookRecord>,
}

/// The state of one target instance.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetStatus {
    /// The instance, as named in spec.targets.
    pub instance_id: String,
    /// Linux or Windows, as SSM or EC2 report it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Pending, Provisioning, Ready, Failed, Removing or Removed.
    #[serde(default)]
    pub state: TargetState,
    /// The SSM command that last acted on this instance (join it to CloudTrail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_id: Option<String>,
    /// Why the target is in this state, when it is not obvious (e.g. the SSM error).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The instance's SSH host public keys, as reported when the user was created; pinned by the CLI.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_keys: Vec<String>,
    /// The OS user on this instance, as its provisioning script reported it: on a Windows domain
    /// controller the request's own domain account (`rs-<masked-id>-<suffix>`), else `status.username`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Provisioning commands started for this instance, each recorded before it was sent.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempts: u32,
    /// Since when a provisioning command whose outcome is not known yet may run on the instance;
    /// revocation makes sure such a command cannot recreate the user afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unconfirmed_since: Option<Time>,
    /// Revoke commands that failed or could not be sent so far; retries back off with each.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub revoke_failures: u32,
    /// No command is sent to this instance before this time (a retry's backoff).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<Time>,
    /// Windows: when the account on the instance expires by itself should no revoke arrive, as
    /// passport last set it (at provisioning, and moved later on each extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_expires_at: Option<Time>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The AWS role the request was approved for, pinned at approval: revocation uses it whatever
/// happens to the AwsAccount afterwards.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountRole {
    pub role_arn: String,
    pub region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

/// The operating system family of a target.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum Platform {
    Linux,
    Windows,
}

/// Where one target is in provisioning or revocation.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum TargetState {
    #[default]
    Pending,
    Provisioning,
    Ready,
    Failed,
    Removing,
    Removed,
}
