//! A lifecycle scenario: a namespace, an AwsAccount that allows it, a policy that auto-approves its
//! requesters for given instances, and helpers to watch requests move through their phases.

use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use passport_crds::{AccessRequest, Phase};
use passport_tests::{
    ControlPlane,
    aws::{AwsEmulator, Platform},
    instance::Instance,
    kubectl,
    operator::OperatorProcess,
    requests,
};

use crate::Env;

pub struct Scenario<'a> {
    pub plane: &'a ControlPlane,
    pub emulator: &'a AwsEmulator,
    pub operator: &'a OperatorProcess,
    pub namespace: String,
    pub account: String,
    pub requests: Api<AccessRequest>,
    pub admin: Client,
}

impl<'a> Scenario<'a> {
    /// Creates the AwsAccount (named after the namespace) and a policy auto-approving `requesters`
    /// on `instance_ids`.
    pub async fn new(
        plane: &'a ControlPlane,
        emulator: &'a AwsEmulator,
        operator: &'a OperatorProcess,
        namespace: String,
        requesters: &[&str],
        instance_ids: &[&str],
    ) -> Result<Self> {
        let account = format!("acct-{namespace}");
        let list = |items: &[&str]| {
            format!(
                "[{}]",
                items
                    .iter()
                    .map(|i| format!("{i:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let manifest = format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {namespace}\n---\n\
             apiVersion: passport.dev/v1alpha1\nkind: AwsAccount\nmetadata:\n  name: {account}\n\
             spec:\n  roleArn: arn:aws:iam::123456789012:role/passport-e2e\n  region: us-east-1\n  \
             externalId: e2e-{namespace}\n  allowedNamespaces: [{namespace}]\n---\n\
             apiVersion: passport.dev/v1alpha1\nkind: AccessPolicy\nmetadata:\n  name: e2e\n  namespace: {namespace}\n\
             spec:\n  requesters:\n    users: {users}\n  targets:\n    instanceIds: {ids}\n  autoApprove:\n  - users: {users}\n",
            users = list(requesters),
            ids = list(instance_ids),
        );
        kubectl::apply(&plane.admin_kubeconfig(), &manifest)?.ok()?;
        let admin = plane.admin_client().await?;
        let requests = Api::namespaced(admin.clone(), &namespace);
        Ok(Self {
            plane,
            emulator,
            operator,
            namespace,
            account,
            requests,
            admin,
        })
    }

    /// The same scenario watched through another operator process (after a restart).
    pub fn with_operator<'b>(&'b self, operator: &'b OperatorProcess) -> Scenario<'b> {
        Scenario {
            plane: self.plane,
            emulator: self.emulator,
            operator,
            namespace: self.namespace.clone(),
            account: self.account.clone(),
            requests: self.requests.clone(),
            admin: self.admin.clone(),
        }
    }

    /// Binds ClusterRole `role` to `subject` (`User` or `Group`) in the scenario's namespace, as an
    /// administrator would.
    pub fn bind(&self, role: &str, kind: &str, subject: &str) -> Result<()> {
        let manifest = format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: {role}-{}\n  namespace: {}\n\
             roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {role}}}\n\
             subjects:\n- {{apiGroup: rbac.authorization.k8s.io, kind: {kind}, name: {subject}}}\n",
            subject.to_lowercase(),
            self.namespace,
        );
        kubectl::apply(&self.plane.admin_kubeconfig(), &manifest)?
            .ok()
            .map(drop)
    }

    /// Applies an AccessRequest as the admin would from Git.
    pub fn request(&self, name: &str, requester: &str, duration: &str, instance_ids: &[&str]) -> Result<()> {
        let targets: String = instance_ids
            .iter()
            .map(|id| format!("  - instanceId: {id}\n"))
            .collect();
        let manifest = format!(
            "apiVersion: passport.dev/v1alpha1\nkind: AccessRequest\nmetadata:\n  name: {name}\n  namespace: {ns}\n\
             spec:\n  requester: {requester}\n  reason: e2e lifecycle\n  duration: {duration}\n  account: {account}\n  targets:\n{targets}",
            ns = self.namespace,
            account = self.account,
        );
        kubectl::apply(&self.plane.admin_kubeconfig(), &manifest)?
            .ok()
            .map(drop)
    }

    /// Waits until the request satisfies `done`, failing with its status and the operator's log.
    pub async fn wait_for(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        done: impl Fn(&AccessRequest) -> bool,
    ) -> Result<AccessRequest> {
        requests::wait_for(&self.requests, name, what, timeout, done, || self.operator_log()).await
    }

    pub async fn wait_phase(&self, name: &str, phase: Phase, timeout: Duration) -> Result<AccessRequest> {
        requests::wait_phase(&self.requests, name, phase, timeout, || self.operator_log()).await
    }

    fn operator_log(&self) -> String {
        format!("--- operator log ---\n{}", self.operator.log_tail())
    }

    /// The operator's Ed25519 CA private key, read from its Secret as only an admin can.
    pub async fn ca_private_key(&self) -> Result<Vec<u8>> {
        let secrets: Api<Secret> = Api::namespaced(self.admin.clone(), "passport-system");
        let secret = secrets.get("passport-ssh-ca").await?;
        let data = secret.data.context("CA Secret without data")?;
        Ok(data
            .get("ed25519")
            .context("CA Secret without an ed25519 key")?
            .0
            .clone())
    }
}

/// The username and the Active status fields a test needs.
pub fn username(request: &AccessRequest) -> Result<String> {
    request
        .status
        .as_ref()
        .and_then(|s| s.username.clone())
        .context("no status.username")
}

pub fn target_message(request: &AccessRequest) -> String {
    request
        .status
        .as_ref()
        .map(|s| {
            s.targets
                .iter()
                .map(|t| format!("{}: {:?} {}", t.instance_id, t.state, t.message))
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default()
}

/// An instance with an online SSM agent, and a scenario on the shared stack auto-approving alice on it.
pub async fn with_instance<'a>(env: &'a Env, prefix: &str) -> Result<(Instance, Scenario<'a>)> {
    let emulator = env.emulator().await?;
    let instance = Instance::start().await?;
    emulator
        .register_agent(instance.id(), Platform::Linux, Some(instance.runner_argv()))
        .await?;
    let scenario = on_shared_stack(env, prefix, &["alice"], &[instance.id()]).await?;
    Ok((instance, scenario))
}

/// A scenario on the shared control plane, emulator and operator, in a fresh namespace.
pub async fn on_shared_stack<'a>(
    env: &'a Env,
    prefix: &str,
    requesters: &[&str],
    instance_ids: &[&str],
) -> Result<Scenario<'a>> {
    let (plane, emulator, operator) = (env.plane().await?, env.emulator().await?, env.operator().await?);
    Scenario::new(
        plane,
        emulator,
        operator,
        env.namespace(prefix).await?,
        requesters,
        instance_ids,
    )
    .await
}

/// A control plane, emulator and operator of a test's own, for tests that kill the operator or
/// inject faults that would disturb others.
pub struct OwnStack {
    pub emulator: AwsEmulator,
    pub plane: ControlPlane,
    pub operator: OperatorProcess,
}

impl OwnStack {
    pub async fn start() -> Result<Self> {
        let emulator = AwsEmulator::start().await?;
        let plane = ControlPlane::start().await?;
        passport_tests::crds::install(&plane.admin_client().await?).await?;
        let operator = OperatorProcess::start(&plane, &emulator.env_vars())?;
        Ok(Self {
            emulator,
            plane,
            operator,
        })
    }

    /// An instance with an online SSM agent, and a scenario auto-approving alice on it.
    pub async fn with_instance(&self, namespace: &str) -> Result<(Instance, Scenario<'_>)> {
        let instance = Instance::start().await?;
        self.emulator
            .register_agent(instance.id(), Platform::Linux, Some(instance.runner_argv()))
            .await?;
        let s = Scenario::new(
            &self.plane,
            &self.emulator,
            &self.operator,
            namespace.into(),
            &["alice"],
            &[instance.id()],
        )
        .await?;
        Ok((instance, s))
    }
}
