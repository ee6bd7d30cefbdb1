//! The operator's edge to AWS: which instances SSM manages and what EC2 says of them, sending a
//! script, following its invocations, proving an account's role can be assumed, and scoped session credentials for users. [`Fleet`] is the seam the controller
//! depends on; [`sdk::SdkFleet`] is the AWS SDK implementation (STS AssumeRole + SSM).

mod invocations;
pub mod sdk;
mod sessions;

use std::{collections::BTreeMap, future::Future, time::Duration};

use passport_core::{account::Account, credentials::SessionCredentials, lifecycle::Invocation};
use passport_crds::access_request::Platform;

/// One Run Command: a script for a set of instances of one platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunCommand<'a> {
    pub platform: Platform,
    pub instance_ids: &'a [String],
    pub script: &'a str,
    /// Shown in the SSM console and CloudTrail; carries the request's namespace/name.
    pub comment: &'a str,
}

/// AssumeRole on a user's behalf: the account's role, narrowed by an inline session policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScopedSession<'a> {
    /// `RoleSessionName`: shows in CloudTrail and names the Session Manager sessions started with it.
    pub session_name: &'a str,
    /// The inline session policy (JSON).
    pub policy: &'a str,
    /// `DurationSeconds` (900 to 3600).
    pub duration: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum AwsError {
    /// SSM refused the instances: not managed by SSM, or not in this account and region.
    #[error("{0}")]
    InvalidInstance(String),
    #[error("{0}")]
    Throttled(String),
    #[error("{0}")]
    Other(String),
}

/// What EC2 says of one instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ec2Instance {
    /// EC2's state name: `pending`, `running`, `stopping`, `stopped`, `shutting-down`, `terminated`.
    pub state: String,
    pub tags: BTreeMap<String, String>,
}

/// What the controller needs from AWS. Implementations retry throttling themselves.
pub trait Fleet: Send + Sync + 'static {
    /// For each id: its platform if SSM manages it (an online agent), `None` if not.
    fn managed_instances(
        &self,
        account: &Account,
        instance_ids: &[String],
    ) -> impl Future<Output = Result<BTreeMap<String, Option<Platform>>, AwsError>> + Send;

    /// EC2's view of the instances; ids EC2 does not know (in this account and region) are absent.
    fn describe_instances(
        &self,
        account: &Account,
        instance_ids: &[String],
    ) -> impl Future<Output = Result<BTreeMap<String, Ec2Instance>, AwsError>> + Send;

    /// Sends the command; returns its command id.
    fn send_command(
        &self,
        account: &Account,
        command: RunCommand<'_>,
    ) -> impl Future<Output = Result<String, AwsError>> + Send;

    /// The newest command sent to the instance with exactly this comment, if SSM holds one: finds a
    /// command whose send was never answered.
    fn find_command(
        &self,
        account: &Account,
        instance_id: &str,
        comment: &str,
    ) -> impl Future<Output = Result<Option<String>, AwsError>> + Send;

    /// How the command is doing on each of the instances it was sent to (per instance, as far as
    /// that instance's outcome could be read). With `output`, a success carries what the command
    /// printed; without, only that it succeeded.
    fn invocations(
        &self,
        account: &Account,
        command_id: &str,
        instance_ids: &[String],
        output: bool,
    ) -> impl Future<Output = Result<BTreeMap<String, Result<Invocation, AwsError>>, AwsError>> + Send;

    /// Assumes the account's role and asks STS who it is: proves the account is usable.
    fn verify(&self, account: &Account) -> impl Future<Output = Result<String, AwsError>> + Send;

    /// Makes sure the account holds passport's own Session Manager documents, as passport wrote them.
    fn ensure_session_documents(
        &self,
        account: &Account,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;

    /// Ends the open Session Manager sessions on the instances that role sessions named with
    /// `session_prefix` started; returns their ids.
    fn terminate_sessions(
        &self,
        account: &Account,
        instance_ids: &[String],
        session_prefix: &str,
    ) -> impl Future<Output = Result<Vec<String>, AwsError>> + Send;

    /// Assumes the account's role afresh with the operator's own credentials (not cached, not
    /// shared), narrowed by `session.policy`: credentials to hand to a user, sealed.
    fn assume_scoped(
        &self,
        account: &Account,
        session: ScopedSession<'_>,
    ) -> impl Future<Output = Result<SessionCredentials, AwsError>> + Send;
}
