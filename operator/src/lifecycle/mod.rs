//! The AccessRequest lifecycle as a pure function: spec, status, what the controller observed and the
//! current time in; the next status, the SSM actions to take, the logbook events and when to look
//! again out. Nothing here touches Kubernetes or AWS, so every transition is unit-tested.
//!
//! ```text
//! Pending ──approved──▶ Provisioning ──all targets Ready──▶ Active ──expiresAt / completed / deleted──▶ Revoking
//!    │                       │ a target failed / account unusable                                        │
//!    ├─denied, timed out─▶ Denied                └──────────────▶ Revoking ─(outcome Failed)──▶ ...   every reached
//!    └─completed──▶ Completed                                                                   target Removed
//!                                                                       ──▶ Completed | Expired | Failed
//! ```
//!
//! A target is *reached* once a provisioning command was sent to it: from then on the user may exist
//! there, so revocation covers it whatever else happened.

mod outcome;
mod step;
#[cfg(test)]
mod tests;

use std::{collections::BTreeMap, time::Duration};

use jiff::Timestamp;
use passport_crds::{
    AccessRequestSpec, AccessRequestStatus,
    access_request::{Platform, TargetStatus},
};

pub use outcome::{ActionOutcome, SendError, apply_outcome};
pub use step::step;

/// How long provisioning may take before the remaining targets are given up as Failed.
pub const PROVISION_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// Everything the lifecycle needs to decide, gathered by the controller.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    pub spec: &'a AccessRequestSpec,
    pub status: &'a AccessRequestStatus,
    pub generation: Option<i64>,
    pub deleting: bool,
    pub approval: &'a Approval,
    pub account: &'a AccountAccess,
    pub observations: &'a Observations,
    /// The short-lived OS user for this requester.
    pub username: &'a str,
    pub now: Timestamp,
}

/// Where approval stands, as the approval rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approval {
    Approved {
        by: String,
    },
    Waiting {
        reason: String,
        message: String,
        deadline: Timestamp,
    },
    Denied {
        by: String,
        message: String,
    },
}

/// Whether the request's AWS account can be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountAccess {
    /// The AwsAccount of this name can be used; it is pinned in status at approval.
    Usable { name: String },
    /// A definitive problem (missing, not allowed for this namespace): nothing will be provisioned.
    Unusable { reason: String, message: String },
}

/// What the controller learned from AWS before calling [`step`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observations {
    /// For targets about to be provisioned: the platform if SSM manages the instance, `None` if not.
    pub managed: BTreeMap<String, Option<Platform>>,
    /// For targets with a command in flight: how that command is doing.
    pub invocations: BTreeMap<String, Invocation>,
    /// Targets whose state could not be observed this time, and why (e.g. SSM throttling).
    pub errors: BTreeMap<String, String>,
    /// Instances where another live request of the same requester (so the same OS user) still
    /// grants access: revoking there would cut that request off. Value: that request's namespace/name.
    pub still_granted: BTreeMap<String, String>,
}

/// The state of one SSM command invocation on one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    Running,
    Succeeded { stdout: String },
    Failed { message: String },
}

/// What the lifecycle decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub status: AccessRequestStatus,
    pub actions: Vec<Action>,
    pub events: Vec<LogEvent>,
    /// When to reconcile again even if nothing changes: the next deadline or the next poll.
    pub requeue_after: Option<Duration>,
    /// True once nothing granted remains, so a deleted request's finalizer may go.
    pub release: bool,
}

/// An SSM command to send: one script to a set of instances of one platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Provision {
        platform: Platform,
        instance_ids: Vec<String>,
    },
    Revoke {
        platform: Platform,
        instance_ids: Vec<String>,
    },
}

impl Action {
    pub fn instance_ids(&self) -> &[String] {
        match self {
            Action::Provision { instance_ids, .. } | Action::Revoke { instance_ids, .. } => instance_ids,
        }
    }

    pub fn platform(&self) -> Platform {
        match self {
            Action::Provision { platform, .. } | Action::Revoke { platform, .. } => *platform,
        }
    }
}

/// A logbook entry: becomes a Kubernetes Event and a CloudEvent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    pub action: LogAction,
    pub message: String,
    pub warning: bool,
}

/// The logbook's vocabulary (the CloudEvent type is `dev.passport.accessrequest.<action>`).
///
/// [`LogAction::as_str`] is the action as the Kubernetes Event's `action` and the CloudEvent type
/// spell it: lowercase, and `snake_case` where the contract's name has two words ("credential
/// issued" is `credential_issued`, so `dev.passport.accessrequest.credential_issued`): valid in a
/// CloudEvent type and an Event action alike, and an identifier in jq and log query languages, which
/// a hyphen is not. The Event `reason` is its CamelCase form (`CredentialIssued`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogAction {
    Created,
    Approved,
    Denied,
    Provisioned,
    /// Credentials (a certificate, a scoped AWS session) were issued through a CredentialRequest.
    CredentialIssued,
    Extended,
    Completed,
    Expired,
    Revoked,
    Failed,
}

impl LogAction {
    pub fn as_str(self) -> &'static str {
        match self {
            LogAction::Created => "created",
            LogAction::Approved => "approved",
            LogAction::Denied => "denied",
            LogAction::Provisioned => "provisioned",
            LogAction::CredentialIssued => "credential_issued",
            LogAction::Extended => "extended",
            LogAction::Completed => "completed",
            LogAction::Expired => "expired",
            LogAction::Revoked => "revoked",
            LogAction::Failed => "failed",
        }
    }
}

/// True when a provisioning command may have reached the target, so the user may exist there. A
/// target whose platform is known could have been sent one whose outcome was never recorded (the
/// operator died, or SSM ran a send it reported as failed), so only targets SSM never managed count
/// as unreached. Revoking where no user exists is harmless; missing one is not.
pub fn reached(target: &TargetStatus) -> bool {
    use passport_crds::access_request::TargetState::*;
    match target.state {
        Pending | Failed => target.command_id.is_some() || target.platform.is_some(),
        Provisioning | Ready | Removing | Removed => true,
    }
}

/// `spec.duration` as a std Duration; the schema guarantees it parses, so a failure falls back to the
/// default rather than granting more.
pub fn access_duration(spec: &AccessRequestSpec) -> Duration {
    passport_crds::duration::parse_go_duration(&spec.duration)
        .unwrap_or(Duration::from_secs(3600))
        .min(passport_crds::duration::MAX_ACCESS)
}
