//! The operator's edge to AWS: which instances SSM manages, sending a script, following its
//! invocations, and proving an account's role can be assumed. [`Fleet`] is the seam the controller
//! depends on; [`sdk::SdkFleet`] is the AWS SDK implementation (STS AssumeRole + SSM).

pub mod sdk;

use std::{collections::BTreeMap, future::Future};

use passport_crds::{AwsAccountSpec, access_request::Platform};

use crate::lifecycle::Invocation;

/// How to reach one AWS account.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Account {
    pub role_arn: String,
    pub region: String,
    pub external_id: Option<String>,
}

impl From<&AwsAccountSpec> for Account {
    fn from(spec: &AwsAccountSpec) -> Self {
        Self {
            role_arn: spec.role_arn.clone(),
            region: spec.region.clone(),
            external_id: spec.external_id.clone(),
        }
    }
}

/// One Run Command: a script for a set of instances of one platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command<'a> {
    pub platform: Platform,
    pub instance_ids: &'a [String],
    pub script: &'a str,
    /// Shown in the SSM console and CloudTrail; carries the request's namespace/name.
    pub comment: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AwsError {
    /// SSM refused the instances: not managed by SSM, or not in this account and region.
    #[error("{0}")]
    InvalidInstance(String),
    #[error("{0}")]
    Throttled(String),
    #[error("{0}")]
    Other(String),
}

/// What the controller needs from AWS. Implementations retry throttling themselves.
pub trait Fleet: Send + Sync + 'static {
    /// For each id: its platform if SSM manages it (an online agent), `None` if not.
    fn managed_instances(
        &self,
        account: &Account,
        instance_ids: &[String],
    ) -> impl Future<Output = Result<BTreeMap<String, Option<Platform>>, AwsError>> + Send;

    /// Sends the command; returns its command id.
    fn send_command(
        &self,
        account: &Account,
        command: Command<'_>,
    ) -> impl Future<Output = Result<String, AwsError>> + Send;

    /// How the command is doing on one instance.
    fn invocation(
        &self,
        account: &Account,
        command_id: &str,
        instance_id: &str,
    ) -> impl Future<Output = Result<Invocation, AwsError>> + Send;

    /// Assumes the account's role and asks STS who it is: proves the account is usable.
    fn verify(&self, account: &Account) -> impl Future<Output = Result<String, AwsError>> + Send;
}
