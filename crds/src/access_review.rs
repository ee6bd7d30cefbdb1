use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{Condition, rule};

/// The decision.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "passport.dev",
    doc = "A reviewer's decision on an AccessRequest in the same namespace. A requester can never approve their own request. Immutable once created: to change your mind, create another review.",
    version = "v1alpha1",
    kind = "AccessReview",
    namespaced,
    status = "AccessReviewStatus",
    category = "passport",
    derive = "PartialEq",
    printcolumn = r#"{"name":"Request","type":"string","jsonPath":".spec.accessRequest"}"#,
    printcolumn = r#"{"name":"Decision","type":"string","jsonPath":".spec.decision"}"#,
    printcolumn = r#"{"name":"Reviewer","type":"string","jsonPath":".spec.reviewer"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    rule("self == oldSelf", "spec of an AccessReview is immutable; create a new AccessReview instead"),
]))]
pub struct AccessReviewSpec {
    /// Name of the AccessRequest, in this namespace, being reviewed.
    #[schemars(length(min = 1, max = 253))]
    pub access_request: String,
    /// metadata.uid of the AccessRequest reviewed: the review counts for that request only, never
    /// for a later one of the same name. `kubectl passport approve` fills it in.
    #[serde(default, rename = "accessRequestUID", skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub access_request_uid: Option<String>,
    /// The spec.duration this review decides on (Go duration syntax, as in the request): an approval
    /// counts for that duration only, so an extension needs a review of its own. `kubectl passport
    /// approve` fills it in. A Deny ends the request whatever duration it names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 16))]
    pub duration: Option<String>,
    /// Approve or Deny.
    pub decision: ReviewDecision,
    /// The Kubernetes username of the reviewer; must be the user who creates this object.
    #[schemars(length(min = 1, max = 253))]
    pub reviewer: String,
    /// Why; shown in the request's logbook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub comment: Option<String>,
}

/// A reviewer's decision.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum ReviewDecision {
    Approve,
    Deny,
}

/// Whether the review was counted.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessReviewStatus {
    /// Standard conditions; Accepted says whether the decision counted, and if not, why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
