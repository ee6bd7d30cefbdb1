use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{Condition, Time, rule};

/// How passport reaches the account.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "passport.dev",
    doc = "An AWS account passport can reach: the role it assumes with STS, the region its instances run in, and which namespaces' requests may use it. Ready once the role can be assumed.",
    version = "v1alpha1",
    kind = "AwsAccount",
    status = "AwsAccountStatus",
    category = "passport",
    derive = "PartialEq",
    printcolumn = r#"{"name":"Role","type":"string","jsonPath":".spec.roleArn"}"#,
    printcolumn = r#"{"name":"Region","type":"string","jsonPath":".spec.region"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AwsAccountSpec {
    /// The IAM role passport assumes with STS AssumeRole, e.g.
    /// `arn:aws:iam::123456789012:role/passport`. It needs ssm:SendCommand, ssm:ListCommands,
    /// ssm:GetCommandInvocation, ssm:DescribeInstanceInformation, ssm:DescribeSessions,
    /// ssm:TerminateSession and ec2:DescribeInstances on the targets, and ssm:GetDocument,
    /// ssm:CreateDocument, ssm:UpdateDocument and ssm:UpdateDocumentDefaultVersion on
    /// document/Passport-* (passport's own Session Manager documents).
    #[schemars(length(min = 20, max = 2048))]
    #[schemars(extend("x-kubernetes-validations" = [
        rule(r"self.matches('^arn:aws(-cn|-us-gov|-iso|-iso-b)?:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$')",
             "spec.roleArn must be an IAM role ARN such as arn:aws:iam::123456789012:role/passport"),
    ]))]
    pub role_arn: String,

    /// The AWS region the instances run in, e.g. `eu-west-1`.
    #[schemars(length(min = 9, max = 32))]
    #[schemars(extend("x-kubernetes-validations" = [
        rule("self.matches('^[a-z]{2}(-gov|-iso|-isob)?-[a-z]+-[0-9]+$')",
             "spec.region must be an AWS region such as us-east-1 or eu-west-1"),
    ]))]
    pub region: String,

    /// The external id the role's trust policy requires, if any (2 to 1224 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 1224))]
    #[schemars(extend("x-kubernetes-validations" = [
        rule(r"self.matches('^[A-Za-z0-9+=,.@:/_-]+$')",
             "spec.externalId may contain only letters, digits and +=,.@:/_-"),
    ]))]
    pub external_id: Option<String>,

    /// Namespaces whose AccessRequests may use this account. `*` allows every namespace. Empty:
    /// no namespace may use it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 63)))]
    pub allowed_namespaces: Vec<String>,
}

impl AwsAccountSpec {
    pub fn allows_namespace(&self, namespace: &str) -> bool {
        self.allowed_namespaces.iter().any(|n| n == "*" || n == namespace)
    }
}

/// What passport last learned about reaching the account.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsAccountStatus {
    /// When the role was last assumed successfully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_assumed_at: Option<Time>,
    /// Standard conditions; Ready is True once the role can be assumed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
