//! A lifecycle scenario: a namespace, an AwsAccount that allows it, a policy that auto-approves its
//! requesters for given instances, and helpers to watch requests move through their phases.

use std::{future::Future, pin::Pin, time::Duration};

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use passport_crds::{AccessRequest, Phase};
use passport_tests::{
    ControlPlane,
    aws::{AwsEmulator, Platform},
    controlplane,
    fixtures::{self, Yaml},
    instance::Instance,
    kubectl,
    operator::OperatorProcess,
    requests,
};

use crate::{E2e, Env, test};

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
        let manifest = fixtures::manifest(&[
            &fixtures::namespace(&namespace),
            &fixtures::account(&account)
                .external_id(&format!("e2e-{namespace}"))
                .allowed_namespaces([namespace.as_str()]),
            &fixtures::policy("e2e")
                .namespace(&namespace)
                .requester_users(requesters.iter().copied())
                .instances(instance_ids.iter().copied())
                .auto_approve_users(requesters.iter().copied()),
        ])?;
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
        let name = format!("{role}-{}", subject.to_lowercase());
        let binding = fixtures::role_binding(&self.namespace, &name, role, &[(kind, subject)]);
        kubectl::apply(&self.plane.admin_kubeconfig(), &binding.yaml()?)?
            .ok()
            .map(drop)
    }

    /// Applies an AccessRequest as the admin would from Git: `requester` for `duration` on
    /// `instance_ids`, in the scenario's account.
    pub fn request(&self, name: &str, requester: &str, duration: &str, instance_ids: &[&str]) -> Result<()> {
        let request = fixtures::request(name)
            .namespace(&self.namespace)
            .requester(requester)
            .reason("e2e lifecycle")
            .duration(duration)
            .account(&self.account)
            .targets(instance_ids.iter().copied());
        self.apply(&request)
    }

    /// Applies any object (e.g. a [`fixtures`] builder) as the admin.
    pub fn apply(&self, object: &dyn Yaml) -> Result<()> {
        kubectl::apply(&self.plane.admin_kubeconfig(), &object.yaml()?)?
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

    /// Waits until the request is gone (the operator's finalizer done).
    pub async fn wait_gone(&self, name: &str, timeout: Duration) -> Result<()> {
        requests::wait_gone(&self.requests, name, timeout, || self.operator_log()).await
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

/// What a scenario test returns: its checks, borrowing the scenario and the instance.
pub type Checks<'a> = Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>;

/// A trial on the shared stack: a fresh instance with an online SSM agent, and a scenario in a
/// namespace `<prefix>-N` auto-approving alice on it; `checks` gets both.
pub fn on_instance<F>(name: &'static str, prefix: &'static str, checks: F) -> E2e
where
    F: for<'a> FnOnce(&'a Scenario<'a>, &'a Instance) -> Checks<'a> + Send + 'static,
{
    test(name, move |env| async move {
        let (instance, s) = with_instance(&env, prefix).await?;
        checks(&s, &instance).await
    })
}

/// A trial like [`on_instance`], but on a stack of its own (control plane, emulator, operator), for
/// tests that kill the operator or inject faults that would disturb others.
pub fn on_own_stack<F>(name: &'static str, namespace: &'static str, checks: F) -> E2e
where
    F: for<'a> FnOnce(&'a Scenario<'a>, &'a Instance) -> Checks<'a> + Send + 'static,
{
    test(name, move |_env| async move {
        let stack = OwnStack::start().await?;
        let (instance, s) = stack.with_instance(namespace).await?;
        checks(&s, &instance).await
    })
}

/// A test instance with an online SSM agent that runs what it is sent.
pub async fn online_instance(emulator: &AwsEmulator) -> Result<Instance> {
    let instance = Instance::start().await?;
    emulator
        .register_agent(instance.id(), Platform::Linux, Some(instance.runner_argv()))
        .await?;
    Ok(instance)
}

/// An instance with an online SSM agent, and a scenario on the shared stack auto-approving alice on it.
pub async fn with_instance<'a>(env: &'a Env, prefix: &str) -> Result<(Instance, Scenario<'a>)> {
    let instance = online_instance(env.emulator().await?).await?;
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
        let plane = controlplane::start_with_crds().await?;
        let operator = OperatorProcess::start(&plane, &emulator.env_vars())?;
        Ok(Self {
            emulator,
            plane,
            operator,
        })
    }

    /// An instance with an online SSM agent, and a scenario auto-approving alice on it.
    pub async fn with_instance(&self, namespace: &str) -> Result<(Instance, Scenario<'_>)> {
        let instance = online_instance(&self.emulator).await?;
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
