//! Appending to the durable record (`status.logbook`), within its bound.

use jiff::Timestamp;
use passport_crds::{
    common::Time,
    logbook::{IssueCount, LogbookEntry, LogbookRecord, MAX_ENTRIES},
};

use super::{LogAction, LogEvent};

/// Who the operator names as the actor of what it does by itself (expiry, revocation).
pub const OPERATOR_ACTOR: &str = "passport";

/// Appends `event`, done by `actor` at `now`. Returns the new entry's seq, or `None` when a credential
/// issue past the entry limit was only counted.
pub fn append(record: &mut LogbookRecord, event: &LogEvent, actor: &str, now: Timestamp) -> Option<u64> {
    if event.action == LogAction::CredentialIssued {
        let count = record.credentials.get_or_insert(IssueCount {
            count: 0,
            first: Time(now),
            last: Time(now),
        });
        count.count += 1;
        count.last = Time(now);
        if record.entries.len() >= MAX_ENTRIES {
            return None;
        }
    }
    let seq = record.last_seq() + 1;
    record.entries.push(LogbookEntry {
        seq,
        time: Time(now),
        action: event.action.as_str().to_owned(),
        actor: actor.to_owned(),
        message: truncate(&event.message, 2048),
        warning: event.warning,
    });
    Some(seq)
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).expect("valid")
    }

    #[test]
    fn entries_are_numbered_from_one_and_keep_who_and_when() {
        let mut record = LogbookRecord::default();
        let created = LogEvent::normal(LogAction::Created, "alice requested");
        assert_eq!(append(&mut record, &created, "alice", at(0)), Some(1));
        let expired = LogEvent::normal(LogAction::Expired, "expired");
        assert_eq!(append(&mut record, &expired, OPERATOR_ACTOR, at(5)), Some(2));
        assert_eq!(record.entries[1].actor, "passport");
        assert_eq!(record.entries[1].time, Time(at(5)));
        assert_eq!(LogbookRecord::entry_id("uid", 2), "uid-2");
    }

    #[test]
    fn credential_issues_past_the_limit_are_counted_and_lifecycle_actions_still_recorded() {
        let mut record = LogbookRecord::default();
        let issued = LogEvent::normal(LogAction::CredentialIssued, "certificate");
        for n in 0..(MAX_ENTRIES as i64 + 50) {
            append(&mut record, &issued, "alice", at(n));
        }
        assert_eq!(record.entries.len(), MAX_ENTRIES);
        let count = record.credentials.as_ref().expect("counted");
        assert_eq!(count.count, MAX_ENTRIES as u64 + 50);
        assert_eq!(
            (count.first.0, count.last.0),
            (at(0), at(MAX_ENTRIES as i64 + 49))
        );
        let completed = LogEvent::normal(LogAction::Completed, "completed");
        assert_eq!(
            append(&mut record, &completed, "alice", at(1000)),
            Some(MAX_ENTRIES as u64 + 1)
        );
    }

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let mut record = LogbookRecord::default();
        let long = LogEvent::warning(LogAction::Failed, "é".repeat(2000));
        append(&mut record, &long, OPERATOR_ACTOR, at(0));
        assert!(record.entries[0].message.len() <= 2048);
    }
}
