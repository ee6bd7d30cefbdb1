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

mod extension;
mod observe;
mod outcome;
mod retention;
mod revoke;
mod step;
mod summary;
mod targets;
#[cfg(test)]
mod tests;

use std::{collections::BTreeMap, time::Duration};

use jiff::Timestamp;
use passport_crds::{
    AccessRequestSpec, AccessRequestStatus,
    access_request::{AccountRole, Platform, TargetStatus},
};

pub use observe::{Wanted, about_to_provision, lost_send, wanted};
pub use outcome::{COMMAND_LIFETIME, CommandOutcome, SendError, apply_outcome};
pub use retention::{DEFAULT_RETENTION, Retention, RetentionPolicy, retention};
pub use revoke::{ADMIN_HINT, STUCK_AFTER, UNCONFIRMED_GRACE, backoff, stuck};
pub use step::{MAX_PROVISION_ATTEMPTS, step};

use crate::{account::AccountProblem, approval::Approval, logbook::LogEvent};

/// How long provisioning may take before the remaining targets are given up as Failed.
pub const PROVISION_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// Everything the lifecycle needs to decide, gathered by the controller.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    pub spec: &'a AccessRequestSpec,
    pub status: &'a AccessRequestStatus,
    pub generation: Option<i64>,
    pub deleting: bool,
    /// `spec.duration`, parsed.
    pub requested: Duration,
    /// `status.approvedDuration`, parsed: what the approval so far covers.
    pub approved: Option<Duration>,
    pub approval: &'a Approval,
    pub account: &'a AccountAccess,
    pub observations: &'a Observations,
    /// The short-lived OS user for this requester.
    pub username: &'a str,
    /// Why new access must wait for the audit sink (its backlog is full), if it must: approved
    /// requests stay Pending; revocation never waits.
    pub audit_hold: Option<&'a str>,
    pub now: Timestamp,
}

/// Whether the request's AWS account can be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountAccess {
    /// The AwsAccount of this name can be used; it and its role are pinned in status at approval.
    Usable { name: String, role: AccountRole },
    /// A definitive problem (missing, not allowed for this namespace): nothing will be provisioned.
    Unusable(AccountProblem),
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
    /// For targets whose last provisioning send has no known outcome: the command SSM holds from that
    /// send (found by its comment), or `None` if SSM holds none. A target missing here was not looked
    /// up this time and is not sent again until it is.
    pub lost_sends: BTreeMap<String, Option<String>>,
    /// For targets whose revocation failed: those EC2 reports terminated, and how it said so.
    pub gone: BTreeMap<String, String>,
}

/// The state of one SSM command invocation on one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    Running,
    Succeeded { stdout: String },
    Failed { message: String },
}

/// What one step decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub status: AccessRequestStatus,
    pub commands: Vec<SsmCommand>,
    pub events: Vec<LogEvent>,
    /// When to reconcile again even if nothing changes: the next deadline or the next poll.
    pub requeue_after: Option<Duration>,
    /// True once nothing granted remains, so a deleted request's finalizer may go.
    pub release: bool,
}

/// Why a command is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum Purpose {
    Provision,
    Revoke,
    /// Moves a Windows account's expiry later after an extension.
    Extend,
}

impl Purpose {
    /// The metric label and the verb of the command comment.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// How often commands in flight are polled at first, and at most.
const POLL_MIN: Duration = Duration::from_millis(50);
const POLL_MAX: Duration = Duration::from_secs(10);

/// When to look at commands in flight `elapsed` after they started: every 50 ms at first (SSM can
/// answer within that, and the request waits on it), then less and less often, so a slow instance costs a poll every ten seconds. Each poll is one
/// ListCommandInvocations per command, whatever its number of instances.
pub fn poll_interval(elapsed: Duration) -> Duration {
    (elapsed / 8).clamp(POLL_MIN, POLL_MAX)
}

/// SSM's limit on a command comment.
const COMMENT_MAX: usize = 100;

/// The comment every command of this purpose for this request carries: it joins the command to the
/// request in CloudTrail and the SSM console (by UID, which never repeats, then `namespace/name`), and
/// finds a command whose send was never answered.
pub fn command_comment(purpose: Purpose, request_uid: &str, key: &str) -> String {
    let verb = match purpose {
        Purpose::Provision => "grant",
        Purpose::Revoke => "revoke",
        Purpose::Extend => "extend",
    };
    let mut comment = format!("passport {verb} {request_uid} {key}");
    if comment.len() > COMMENT_MAX {
        let mut end = COMMENT_MAX;
        while !comment.is_char_boundary(end) {
            end -= 1;
        }
        comment.truncate(end);
    }
    comment
}

/// An SSM command to send: one script to a set of instances of one platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsmCommand {
    pub purpose: Purpose,
    pub platform: Platform,
    pub instance_ids: Vec<String>,
    /// Windows provisioning and extensions: when the account is to expire by itself.
    pub account_expires_at: Option<Timestamp>,
}

/// True when a provisioning command may have reached the target, so the user may exist there:
/// a send was recorded (every send is recorded before it goes out) and not refused outright.
/// Revoking where no user exists is harmless; missing one is not.
pub fn reached(target: &TargetStatus) -> bool {
    use passport_crds::access_request::TargetState::*;
    match target.state {
        Pending | Failed => {
            target.attempts > 0 || target.unconfirmed_since.is_some() || target.command_id.is_some()
        }
        Provisioning | Ready | Removing | Removed => true,
    }
}
