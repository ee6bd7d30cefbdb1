//! The objects tests create, built typed from `passport_crds` (and `k8s-openapi`) and serialized, so a
//! manifest cannot drift from the API: `request("r").requester("alice").targets([id]).duration("2h")`.
//! Each builder starts from a valid object with the fields a test rarely cares about filled in; the
//! test names only what its rule is about. `.build()` gives the object, and every builder and object
//! turns into YAML for `kubectl apply -f -` through [`Yaml`] (several at once: [`manifest`]).

use std::collections::BTreeMap;

use anyhow::Result;
use k8s_openapi::api::{
    core::v1::Namespace,
    rbac::v1::{RoleBinding, RoleRef, Subject},
};
use kube::{Resource, api::ObjectMeta};
use passport_crds::{
    AccessPolicy, AccessPolicySpec, AccessRequest, AccessRequestSpec, AccessReview, AccessReviewSpec,
    AwsAccount, AwsAccountSpec, ReviewDecision,
    access_policy::{ApprovalRule, AutoApproveRule, TargetSelector},
    common::{Subjects, annotations},
};
use serde::Serialize;

/// The instance a request names when the test does not care which.
pub const INSTANCE: &str = "i-0123456789abcdef0";
/// The role AwsAccounts name unless the test says otherwise (the emulator assumes any role).
pub const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/passport-e2e";

/// Anything serializable as one YAML document.
pub trait Yaml {
    fn yaml(&self) -> Result<String>;
}

impl<T: Serialize> Yaml for T {
    fn yaml(&self) -> Result<String> {
        Ok(serde_yaml::to_string(self)?)
    }
}

/// Several objects as one multi-document manifest, in order.
pub fn manifest(objects: &[&dyn Yaml]) -> Result<String> {
    let documents = objects
        .iter()
        .map(|object| object.yaml())
        .collect::<Result<Vec<_>>>()?;
    Ok(documents.join("---\n"))
}

/// A test object under construction: `K` with the changes made so far. The methods every kind has
/// are here; each kind's own are in its `impl Fixture<Kind>` below.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct Fixture<K>(K);

impl<K: Resource> Fixture<K> {
    pub fn namespace(self, namespace: &str) -> Self {
        self.with(|object| object.meta_mut().namespace = Some(namespace.to_owned()))
    }

    pub fn name(self, name: &str) -> Self {
        self.with(|object| object.meta_mut().name = Some(name.to_owned()))
    }

    /// No name: the apiserver makes one from `prefix` (for `kubectl create`).
    pub fn generate_name(self, prefix: &str) -> Self {
        self.with(|object| {
            let metadata = object.meta_mut();
            metadata.name = None;
            metadata.generate_name = Some(prefix.to_owned());
        })
    }

    /// Any other change, for the one test that needs it.
    pub fn with(mut self, change: impl FnOnce(&mut K)) -> Self {
        change(&mut self.0);
        self
    }

    pub fn build(self) -> K {
        self.0
    }

    fn annotate(self, key: &str, value: &str) -> Self {
        self.with(|object| {
            let annotations = object.meta_mut().annotations.get_or_insert_with(BTreeMap::new);
            annotations.insert(key.to_owned(), value.to_owned());
        })
    }
}

pub type RequestBuilder = Fixture<AccessRequest>;
pub type PolicyBuilder = Fixture<AccessPolicy>;
pub type AccountBuilder = Fixture<AwsAccount>;
pub type ReviewBuilder = Fixture<AccessReview>;

fn metadata(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        ..ObjectMeta::default()
    }
}

fn strings(items: impl IntoIterator<Item = impl Into<String>>) -> Vec<String> {
    items.into_iter().map(Into::into).collect()
}

/// An AccessRequest: alice, for [`INSTANCE`], reason "e2e", 1h, the namespace's default account.
pub fn request(name: &str) -> RequestBuilder {
    Fixture(AccessRequest::new(
        name,
        AccessRequestSpec::new("alice", "e2e", [INSTANCE]),
    ))
}

impl Fixture<AccessRequest> {
    pub fn requester(self, user: &str) -> Self {
        self.with(|r| r.spec.requester = user.to_owned())
    }

    /// The `passport.dev/requester-groups` annotation: the groups the requester claims.
    pub fn requester_groups(self, groups: &str) -> Self {
        self.annotate(annotations::REQUESTER_GROUPS, groups)
    }

    pub fn ticket(self, ticket: &str) -> Self {
        self.with(|r| r.spec.ticket = Some(ticket.to_owned()))
    }

    pub fn reason(self, reason: &str) -> Self {
        self.with(|r| r.spec.reason = reason.to_owned())
    }

    pub fn targets(self, instance_ids: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.with(|r| r.spec.targets = AccessRequestSpec::new("", "", instance_ids).targets)
    }

    pub fn duration(self, duration: &str) -> Self {
        self.with(|r| r.spec.duration = duration.to_owned())
    }

    pub fn account(self, account: &str) -> Self {
        self.with(|r| r.spec.account = Some(account.to_owned()))
    }

    pub fn source_cidrs(self, cidrs: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.with(|r| r.spec.source_cidrs = Some(strings(cidrs)))
    }

    /// `spec.completed: true`: ended early.
    pub fn completed(self) -> Self {
        self.with(|r| r.spec.completed = true)
    }
}

/// An AccessPolicy that lets nobody request anything until the test names requesters and targets;
/// approval by one reviewer, the API's default durations.
pub fn policy(name: &str) -> PolicyBuilder {
    Fixture(AccessPolicy::new(
        name,
        AccessPolicySpec {
            requesters: Subjects::default(),
            targets: TargetSelector::default(),
            max_duration: "12h".to_owned(),
            approval: ApprovalRule::default(),
            auto_approve: Vec::new(),
            require_ticket: false,
            pending_timeout: "1h".to_owned(),
            gitops_appliers: Subjects::default(),
            default_account: None,
        },
    ))
}

impl Fixture<AccessPolicy> {
    /// Users who may request.
    pub fn requester_users(self, users: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.with(|p| p.spec.requesters.users = strings(users))
    }

    /// Groups whose members may request.
    pub fn requester_groups(self, groups: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.with(|p| p.spec.requesters.groups = strings(groups))
    }

    /// The instances requests may name.
    pub fn instances(self, instance_ids: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.with(|p| p.spec.targets.instance_ids = strings(instance_ids))
    }

    /// EC2 tags an instance must all carry to be requested.
    pub fn tags(self, tags: &[(&str, &str)]) -> Self {
        self.with(|p| {
            p.spec.targets.tags = tags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        })
    }

    /// One autoApprove rule for these users.
    pub fn auto_approve_users(self, users: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.with(|p| {
            p.spec.auto_approve.push(AutoApproveRule {
                requesters: Subjects {
                    users: strings(users),
                    groups: Vec::new(),
                },
                max_duration: None,
            })
        })
    }

    pub fn max_duration(self, duration: &str) -> Self {
        self.with(|p| p.spec.max_duration = duration.to_owned())
    }

    pub fn default_account(self, account: &str) -> Self {
        self.with(|p| p.spec.default_account = Some(account.to_owned()))
    }
}

/// An AwsAccount assuming [`ROLE_ARN`] in us-east-1, open to no namespace until the test says.
pub fn account(name: &str) -> AccountBuilder {
    Fixture(AwsAccount::new(
        name,
        AwsAccountSpec {
            role_arn: ROLE_ARN.to_owned(),
            region: crate::aws::REGION.to_owned(),
            external_id: None,
            allowed_namespaces: Vec::new(),
        },
    ))
}

impl Fixture<AwsAccount> {
    pub fn role_arn(self, arn: &str) -> Self {
        self.with(|a| a.spec.role_arn = arn.to_owned())
    }

    pub fn external_id(self, id: &str) -> Self {
        self.with(|a| a.spec.external_id = Some(id.to_owned()))
    }

    pub fn allowed_namespaces(self, namespaces: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.with(|a| a.spec.allowed_namespaces = strings(namespaces))
    }
}

/// An AccessReview approving `access_request`, by carol, named `<access_request>-review`.
pub fn review(access_request: &str) -> ReviewBuilder {
    Fixture(AccessReview::new(
        &format!("{access_request}-review"),
        AccessReviewSpec {
            access_request: access_request.to_owned(),
            access_request_uid: None,
            duration: None,
            decision: ReviewDecision::Approve,
            reviewer: "carol".to_owned(),
            comment: None,
        },
    ))
}

impl Fixture<AccessReview> {
    pub fn reviewer(self, user: &str) -> Self {
        self.with(|r| r.spec.reviewer = user.to_owned())
    }

    /// The `passport.dev/reviewer-groups` annotation: the groups the reviewer claims.
    pub fn reviewer_groups(self, groups: &str) -> Self {
        self.annotate(annotations::REVIEWER_GROUPS, groups)
    }

    pub fn decision(self, decision: ReviewDecision) -> Self {
        self.with(|r| r.spec.decision = decision)
    }

    /// Binds the review to one request (its UID) and the duration it approves, as
    /// `kubectl passport approve` does.
    pub fn bound_to(self, request_uid: &str, duration: &str) -> Self {
        self.with(|r| {
            r.spec.access_request_uid = Some(request_uid.to_owned());
            r.spec.duration = Some(duration.to_owned());
        })
    }

    /// Another name, for a second review of the same request.
    pub fn named(self, name: &str) -> Self {
        self.with(|r| r.metadata.name = Some(name.to_owned()))
    }
}

pub fn namespace(name: &str) -> Namespace {
    Namespace {
        metadata: metadata(name),
        ..Namespace::default()
    }
}

/// A RoleBinding of ClusterRole `role` in `namespace` to `subjects`, each `(kind, name)` with kind
/// `User` or `Group`.
pub fn role_binding(namespace: &str, name: &str, role: &str, subjects: &[(&str, &str)]) -> RoleBinding {
    RoleBinding {
        metadata: ObjectMeta {
            namespace: Some(namespace.to_owned()),
            ..metadata(name)
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_owned(),
            kind: "ClusterRole".to_owned(),
            name: role.to_owned(),
        },
        subjects: Some(
            subjects
                .iter()
                .map(|(kind, name)| Subject {
                    api_group: Some("rbac.authorization.k8s.io".to_owned()),
                    kind: (*kind).to_owned(),
                    name: (*name).to_owned(),
                    namespace: None,
                })
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[test]
    fn a_request_serializes_as_the_api_reads_it() -> Result<()> {
        let yaml = request("r")
            .namespace("team-a")
            .requester("bob")
            .targets(["i-0aaaaaaaaaaaaaaa1"])
            .duration("2h")
            .account("prod")
            .requester_groups("developers")
            .yaml()?;
        let value: serde_json::Value = serde_yaml::from_str(&yaml)?;
        let expected = serde_json::json!({
            "apiVersion": "passport.dev/v1alpha1",
            "kind": "AccessRequest",
            "metadata": {
                "name": "r",
                "namespace": "team-a",
                "annotations": { "passport.dev/requester-groups": "developers" },
            },
            "spec": {
                "requester": "bob",
                "reason": "e2e",
                "duration": "2h",
                "account": "prod",
                "targets": [{ "instanceId": "i-0aaaaaaaaaaaaaaa1" }],
                "completed": false,
            },
        });
        anyhow::ensure!(value == expected, "{yaml}");
        Ok(())
    }

    #[test]
    fn a_manifest_is_one_document_per_object() -> Result<()> {
        let text = manifest(&[
            &namespace("team-a"),
            &role_binding(
                "team-a",
                "developers",
                "passport-requester",
                &[("Group", "developers")],
            ),
        ])?;
        let kinds: Vec<String> = serde_yaml::Deserializer::from_str(&text)
            .map(|document| {
                let value = serde_json::Value::deserialize(document)?;
                Ok(value["kind"].as_str().unwrap_or_default().to_owned())
            })
            .collect::<Result<_>>()?;
        anyhow::ensure!(kinds == ["Namespace", "RoleBinding"], "{text}");
        Ok(())
    }
}
