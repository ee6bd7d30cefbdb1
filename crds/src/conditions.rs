//! Typed access to the standard `metav1.Condition` lists every kind carries, so that the operator
//! and the CLI read and write them with the same words. A condition's `lastTransitionTime` moves
//! only when its status does.

use std::fmt;

use jiff::Timestamp;

use crate::common::{Condition, Time};

/// Condition types passport reports.
pub mod types {
    pub const READY: &str = "Ready";
    pub const APPROVED: &str = "Approved";
    pub const PROVISIONED: &str = "Provisioned";
    pub const ISSUED: &str = "Issued";
    pub const ACCEPTED: &str = "Accepted";
    /// Something keeps the operator from making progress on the object; the reason says what.
    pub const RECONCILED: &str = "Reconciled";
    /// Revocation keeps failing on some instance; the message says what an administrator can do.
    pub const REVOCATION_STUCK: &str = "RevocationStuck";
    /// False while new access waits because the Logbook's audit sink is behind.
    pub const AUDIT_SINK_AVAILABLE: &str = "AuditSinkAvailable";
}

/// A condition's `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl ConditionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        }
    }

    /// Anything the apiserver might hold that is not True or False counts as Unknown.
    pub fn parse(text: &str) -> Self {
        match text {
            "True" => ConditionStatus::True,
            "False" => ConditionStatus::False,
            _ => ConditionStatus::Unknown,
        }
    }
}

impl From<bool> for ConditionStatus {
    fn from(value: bool) -> Self {
        if value {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        }
    }
}

impl fmt::Display for ConditionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a condition says, whatever its timestamps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed<'a> {
    pub status: ConditionStatus,
    pub reason: &'a str,
    pub message: &'a str,
}

/// The condition of type `type_`, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// The status, reason and message of condition `type_`, if present.
pub fn observe<'a>(conditions: &'a [Condition], type_: &str) -> Option<Observed<'a>> {
    find(conditions, type_).map(|c| Observed {
        status: ConditionStatus::parse(&c.status),
        reason: &c.reason,
        message: &c.message,
    })
}

/// Whether condition `type_` is present and True.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    status_of(conditions, type_) == Some(ConditionStatus::True)
}

/// The status of condition `type_`, if present.
pub fn status_of(conditions: &[Condition], type_: &str) -> Option<ConditionStatus> {
    find(conditions, type_).map(|c| ConditionStatus::parse(&c.status))
}

/// What to set a condition to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update<'a> {
    pub type_: &'a str,
    pub status: ConditionStatus,
    pub reason: &'a str,
    pub message: String,
}

impl<'a> Update<'a> {
    pub fn new(type_: &'a str, status: impl Into<ConditionStatus>, reason: &'a str) -> Self {
        Self {
            type_,
            status: status.into(),
            reason,
            message: String::new(),
        }
    }

    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }
}

/// Sets a condition, keeping its transition time while the status is unchanged.
pub fn set(conditions: &mut Vec<Condition>, update: Update<'_>, generation: Option<i64>, now: Timestamp) {
    let status = update.status.as_str().to_owned();
    match conditions.iter_mut().find(|c| c.type_ == update.type_) {
        Some(existing) => {
            if existing.status != status {
                existing.last_transition_time = Time(now);
            }
            existing.status = status;
            existing.reason = update.reason.to_owned();
            existing.message = update.message;
            existing.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: update.type_.to_owned(),
            status,
            reason: update.reason.to_owned(),
            message: update.message,
            observed_generation: generation,
            last_transition_time: Time(now),
        }),
    }
}

/// Removes condition `type_`; true if it was there.
pub fn remove(conditions: &mut Vec<Condition>, type_: &str) -> bool {
    let before = conditions.len();
    conditions.retain(|c| c.type_ != type_);
    conditions.len() != before
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).expect("valid")
    }

    #[test]
    fn transition_time_moves_only_with_status() {
        let mut conditions = Vec::new();
        set(
            &mut conditions,
            Update::new("Ready", false, "Pending").message("waiting"),
            Some(1),
            at(1_000),
        );
        let update = Update::new("Ready", false, "Provisioning").message("still waiting");
        set(&mut conditions, update, Some(2), at(2_000));
        assert_eq!(conditions[0].last_transition_time, Time(at(1_000)));
        assert_eq!(conditions[0].reason, "Provisioning");
        set(
            &mut conditions,
            Update::new("Ready", true, "Active"),
            Some(2),
            at(2_000),
        );
        assert_eq!(conditions[0].last_transition_time, Time(at(2_000)));
        assert!(is_true(&conditions, "Ready"));
    }

    #[test]
    fn statuses_read_back_typed() {
        let mut conditions = Vec::new();
        let update = Update::new("Issued", ConditionStatus::Unknown, "AwsUnavailable").message("retrying");
        set(&mut conditions, update, None, at(0));
        let seen = observe(&conditions, "Issued").expect("present");
        assert_eq!(seen.status, ConditionStatus::Unknown);
        assert_eq!((seen.reason, seen.message), ("AwsUnavailable", "retrying"));
        assert_eq!(status_of(&conditions, "Ready"), None);
        assert!(remove(&mut conditions, "Issued"));
        assert!(conditions.is_empty());
    }
}
