//! Standard `metav1.Condition` bookkeeping: a condition's `lastTransitionTime` moves only when its
//! status does.

use jiff::Timestamp;
use passport_crds::common::{Condition, Time};

/// Sets condition `type_` in `conditions`, keeping its transition time when the status is unchanged.
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    now: Timestamp,
) {
    let status = if status { "True" } else { "False" };
    set_status(conditions, type_, status, reason, message, generation, now);
}

/// Sets condition `type_` to `Unknown`: not decided yet, for the reason given.
pub fn set_unknown(
    conditions: &mut Vec<Condition>,
    type_: &str,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    now: Timestamp,
) {
    set_status(conditions, type_, "Unknown", reason, message, generation, now);
}

fn set_status(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    now: Timestamp,
) {
    let status = status.to_owned();
    let message = message.into();
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(existing) => {
            if existing.status != status {
                existing.last_transition_time = Time(now);
            }
            existing.status = status;
            existing.reason = reason.to_owned();
            existing.message = message;
            existing.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: type_.to_owned(),
            status,
            reason: reason.to_owned(),
            message,
            observed_generation: generation,
            last_transition_time: Time(now),
        }),
    }
}

/// Whether condition `type_` is present and True.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions.iter().any(|c| c.type_ == type_ && c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_moves_only_with_status() {
        let t0 = Timestamp::from_second(1_000).expect("valid");
        let t1 = Timestamp::from_second(2_000).expect("valid");
        let mut conditions = Vec::new();
        set(&mut conditions, "Ready", false, "Pending", "waiting", Some(1), t0);
        set(
            &mut conditions,
            "Ready",
            false,
            "Provisioning",
            "still waiting",
            Some(2),
            t1,
        );
        assert_eq!(conditions[0].last_transition_time, Time(t0));
        assert_eq!(conditions[0].reason, "Provisioning");
        set(&mut conditions, "Ready", true, "Active", "", Some(2), t1);
        assert_eq!(conditions[0].last_transition_time, Time(t1));
        assert!(is_true(&conditions, "Ready"));
    }
}
