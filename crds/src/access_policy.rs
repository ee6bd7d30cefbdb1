use std::{collections::BTreeMap, time::Duration};

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{
    common::{Condition, Subjects, bounded_duration_rules, rule},
    duration::{ACCESS_BOUNDS, InvalidDuration, PENDING_TIMEOUT_BOUNDS, parse_field},
};

/// The rules for requests in this namespace.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "passport.dev",
    doc = "Who may request access to what in this namespace, and what approval it needs. Secure by default: without a policy that matches, a request is never approved automatically.",
    version = "v1alpha1",
    kind = "AccessPolicy",
    namespaced,
    status = "AccessPolicyStatus",
    category = "passport",
    derive = "PartialEq",
    printcolumn = r#"{"name":"Max","type":"string","jsonPath":".spec.maxDuration"}"#,
    printcolumn = r#"{"name":"Approvals","type":"integer","jsonPath":".spec.approval.required"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AccessPolicySpec {
    /// Who may request access under this policy.
    pub requesters: Subjects,

    /// Which instances requests under this policy may name.
    pub targets: TargetSelector,

    /// The longest access a request may ask for, extensions included (Go syntax, at most 12h).
    #[serde(default = "default_max_duration")]
    #[schemars(length(min = 2, max = 32))]
    #[schemars(extend("x-kubernetes-validations" = bounded_duration_rules("spec.maxDuration", "1m", "12h")))]
    pub max_duration: String,

    /// Human approval: how many distinct approvers, and who may approve.
    #[serde(default)]
    pub approval: ApprovalRule,

    /// Requests that are approved without a reviewer: each rule names requesters and, optionally, a
    /// shorter maximum duration for automatic approval.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub auto_approve: Vec<AutoApproveRule>,

    /// Whether requests must carry spec.ticket.
    #[serde(default)]
    pub require_ticket: bool,

    /// How long a request may wait for approval before it is Denied (Go syntax, 1m to 7 days).
    #[serde(default = "default_pending_timeout")]
    #[schemars(length(min = 2, max = 32))]
    #[schemars(extend("x-kubernetes-validations" = bounded_duration_rules("spec.pendingTimeout", "1m", "168h")))]
    pub pending_timeout: String,

    /// Identities that apply requests from a reviewed Git repository (e.g. an Argo CD or Flux service
    /// account). A request they apply counts as approved by the merge that produced it.
    #[serde(default, skip_serializing_if = "Subjects::is_empty")]
    pub gitops_appliers: Subjects,

    /// The AwsAccount used by requests in this namespace that name none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub default_account: Option<String>,
}

impl AccessPolicySpec {
    /// `spec.maxDuration`, parsed.
    pub fn max_access(&self) -> Result<Duration, InvalidDuration> {
        parse_field("spec.maxDuration", &self.max_duration, ACCESS_BOUNDS)
    }

    /// `spec.pendingTimeout`, parsed.
    pub fn pending_timeout_duration(&self) -> Result<Duration, InvalidDuration> {
        parse_field(
            "spec.pendingTimeout",
            &self.pending_timeout,
            PENDING_TIMEOUT_BOUNDS,
        )
    }
}

impl AutoApproveRule {
    /// `maxDuration` of this rule, parsed; `None` when the rule has no limit of its own.
    pub fn max_access(&self) -> Result<Option<Duration>, InvalidDuration> {
        self.max_duration
            .as_deref()
            .map(|text| parse_field("spec.autoApprove[].maxDuration", text, ACCESS_BOUNDS))
            .transpose()
    }
}

fn default_max_duration() -> String {
    "12h".to_owned()
}

fn default_pending_timeout() -> String {
    "1h".to_owned()
}

/// Instances selected by id or by EC2 tags. An instance matches when it is listed, or when it carries
/// every tag of `tags`. An empty selector matches nothing.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetSelector {
    /// Instance ids allowed outright.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000), inner(length(min = 10, max = 20)))]
    pub instance_ids: Vec<String>,
    /// EC2 tags an instance must all carry, e.g. `{env: staging, team: payments}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 50))]
    pub tags: BTreeMap<String, String>,
}

impl TargetSelector {
    /// Whether the instance, carrying `tags` (its EC2 tags, if known), is selected.
    pub fn selects(&self, instance_id: &str, tags: Option<&BTreeMap<String, String>>) -> bool {
        self.instance_ids.iter().any(|id| id == instance_id)
            || (!self.tags.is_empty()
                && tags.is_some_and(|tags| self.tags.iter().all(|(k, v)| tags.get(k) == Some(v))))
    }
}

/// Human approval required before a request is provisioned.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalRule {
    /// How many distinct approvers must approve (0 to 10). A requester never counts for their own request.
    #[serde(default = "default_required_approvals")]
    #[schemars(range(min = 0, max = 10))]
    pub required: u8,
    /// Who may approve or deny.
    #[serde(default, skip_serializing_if = "Subjects::is_empty")]
    pub approvers: Subjects,
}

impl Default for ApprovalRule {
    fn default() -> Self {
        Self {
            required: default_required_approvals(),
            approvers: Subjects::default(),
        }
    }
}

fn default_required_approvals() -> u8 {
    1
}

/// Requesters whose requests are approved without a reviewer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    rule("(has(self.users) && size(self.users) > 0) || (has(self.groups) && size(self.groups) > 0)",
         "an autoApprove rule must name at least one user or group"),
]))]
pub struct AutoApproveRule {
    /// The requesters (users, or members of groups) approved automatically.
    #[serde(flatten)]
    pub requesters: Subjects,
    /// Automatic approval only up to this duration (Go syntax); longer requests need a reviewer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 32))]
    #[schemars(extend("x-kubernetes-validations" = bounded_duration_rules("maxDuration", "1m", "12h")))]
    pub max_duration: Option<String>,
}

/// Whether the policy is well formed and in use.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessPolicyStatus {
    /// Standard conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
