//! The durable Logbook record of an AccessRequest, kept in its status: every action, written in the
//! same status write as the change it describes, so no crash can lose one. The external sink
//! delivers entries from here (at least once, in order) and records how far it got.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::Time;

/// At most this many entries. Lifecycle actions always get one (a lifecycle has a few dozen at
/// most); credential issues past the limit are only counted in [`LogbookRecord::credentials`].
pub const MAX_ENTRIES: usize = 100;

/// `status.logbook`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogbookRecord {
    /// Every action so far, oldest first (see `credentials` for the bound).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub entries: Vec<LogbookEntry>,
    /// The `seq` of the last entry the external sink acknowledged (0: none yet).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub delivered: u64,
    /// Every credential issue, also those past the entry limit: how many, first and last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<IssueCount>,
}

/// One action.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogbookEntry {
    /// 1, 2, 3…: with the request's UID, the entry's stable id (`<uid>-<seq>`), also the
    /// CloudEvent's.
    pub seq: u64,
    pub time: Time,
    /// created, approved, denied, provisioned, credential_issued, extended, completed, expired,
    /// revoked, failed, revocation_stuck or revocation_resumed.
    #[schemars(length(max = 64))]
    pub action: String,
    /// Who did it: a Kubernetes username, or `passport` for what the operator does by itself.
    #[schemars(length(max = 512))]
    pub actor: String,
    #[schemars(length(max = 2048))]
    pub message: String,
    /// Something went wrong (a Warning Event).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub warning: bool,
}

/// A count with its first and last time.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssueCount {
    pub count: u64,
    pub first: Time,
    pub last: Time,
}

impl LogbookRecord {
    /// The entry id an auditor joins on: the request's UID and the entry's seq.
    pub fn entry_id(request_uid: &str, seq: u64) -> String {
        format!("{request_uid}-{seq}")
    }

    pub fn last_seq(&self) -> u64 {
        self.entries.last().map_or(0, |e| e.seq)
    }

    /// Entries the sink has not acknowledged, oldest first.
    pub fn undelivered(&self) -> impl Iterator<Item = &LogbookEntry> {
        self.entries.iter().filter(move |e| e.seq > self.delivered)
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}
