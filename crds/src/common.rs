//! Pieces shared by several kinds: identity sets, the standard condition type, and the CEL rules that
//! make the apiserver itself reject bad input with a message naming the field and the fix.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::duration::GO_DURATION_PATTERN;

pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// A set of Kubernetes identities: users by name and groups by name.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Subjects {
    /// Kubernetes usernames, exactly as the apiserver authenticates them (e.g. `alice@example.com`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 253)))]
    pub users: Vec<String>,
    /// Kubernetes group names (e.g. `sre`); a member of any listed group matches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 253)))]
    pub groups: Vec<String>,
}

impl Subjects {
    /// True when `user` is listed, or is a member of a listed group.
    pub fn matches(&self, user: &str, groups: &[String]) -> bool {
        self.users.iter().any(|u| u == user) || self.groups.iter().any(|g| groups.contains(g))
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.groups.is_empty()
    }
}

/// One `x-kubernetes-validations` entry.
pub fn rule(rule: &str, message: &str) -> Value {
    json!({ "rule": rule, "message": message })
}

/// A rule that may also point at a child field, so the error names it (e.g. `spec.account`).
pub fn rule_at(rule: &str, message: &str, field_path: &str) -> Value {
    json!({ "rule": rule, "message": message, "fieldPath": field_path })
}

fn duration_syntax(value: &str) -> String {
    format!("{value}.matches('{GO_DURATION_PATTERN}')")
}

/// Rules for a Go duration field bounded to `[min, max]` (both in Go syntax).
pub fn bounded_duration_rules(field: &str, min: &str, max: &str) -> Vec<Value> {
    let syntax = duration_syntax("self");
    vec![
        rule(
            &syntax,
            &format!("{field} must be a duration in Go syntax, such as 30m, 1h or 1h30m"),
        ),
        rule(
            &format!(
                "!{syntax} || (duration(self) >= duration('{min}') && duration(self) <= duration('{max}'))"
            ),
            &format!("{field} must be between {min} and {max}"),
        ),
    ]
}

/// A rule that lets a duration only grow from one update to the next.
pub fn grow_only_duration_rule(field: &str) -> Value {
    let new_ok = duration_syntax("self");
    let old_ok = duration_syntax("oldSelf");
    rule(
        &format!("!{new_ok} || !{old_ok} || duration(self) >= duration(oldSelf)"),
        &format!("{field} may only grow (extend the request); it cannot be shortened"),
    )
}

/// A rule making an optional field fixed once the object exists: it may be neither set, changed
/// nor removed. Placed on the parent object because rules on an optional field skip absent values.
pub fn immutable_optional_rule(parent: &str, field: &str, hint: &str) -> Value {
    rule_at(
        &format!(
            "has(self.{field}) == has(oldSelf.{field}) && (!has(self.{field}) || self.{field} == oldSelf.{field})"
        ),
        &format!("{parent}.{field} is immutable; {hint}"),
        &format!(".{field}"),
    )
}

/// Condition types: kept here while callers move to [`crate::conditions::types`].
pub use crate::conditions::types as condition_types;

/// The operator's leader Lease, in its namespace: the operator holds it, `kubectl passport doctor`
/// reads it as the operator's heartbeat (the chart's Roles name it).
pub const OPERATOR_LEASE: &str = "passport-operator";

/// Annotations passport reads, each checked at admission by deploy/admission.yaml.
pub mod annotations {
    /// On an AccessRequest: the requester's groups (comma-separated), for approval by group.
    pub const REQUESTER_GROUPS: &str = "passport.dev/requester-groups";
    /// On an AccessReview: the reviewer's groups, for approvers named by group.
    pub const REVIEWER_GROUPS: &str = "passport.dev/reviewer-groups";
    /// On an AccessRequest created for someone else: the GitOps applier that created it (admission
    /// checks it is the creating user).
    pub const APPLIED_BY: &str = "passport.dev/applied-by";
    /// On such a request: the applier's groups, checked at admission like the requester's.
    pub const APPLIER_GROUPS: &str = "passport.dev/applier-groups";
}
