//! What the operator says on an object's conditions, as text: a condition's reason and message, and
//! why a reconcile is failing (`Reconciled=False`).

use passport_crds::{
    common::Condition,
    conditions::{ConditionStatus, observe, types::RECONCILED},
};

use crate::ui::errors::fold;

/// `reason: message`, or whichever of the two is not empty.
pub fn said(reason: &str, message: &str) -> String {
    match (reason, fold(message)) {
        (reason, message) if message.is_empty() => reason.to_owned(),
        ("", message) => message,
        (reason, message) => format!("{reason}: {message}"),
    }
}

/// Why the operator cannot make progress on the object, when it says so with `Reconciled=False`.
pub fn reconcile_failure(conditions: &[Condition]) -> Option<String> {
    let condition = observe(conditions, RECONCILED).filter(|c| c.status == ConditionStatus::False)?;
    let said = said(condition.reason, condition.message);
    Some(if said.is_empty() {
        "the operator cannot reconcile it (Reconciled=False)".to_owned()
    } else {
        said
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    #[test]
    fn reasons_and_messages_join() {
        assert_eq!(
            said("AwsUnavailable", "retrying\nsoon"),
            "AwsUnavailable: retrying soon"
        );
        assert_eq!(said("AwsUnavailable", " "), "AwsUnavailable");
        assert_eq!(said("", "retrying"), "retrying");
    }

    #[test]
    fn only_a_false_reconciled_condition_is_a_failure() {
        let failing = [fixtures::condition(
            RECONCILED,
            ConditionStatus::False,
            "StatusWriteFailed",
            "conflict",
        )];
        assert_eq!(
            reconcile_failure(&failing).as_deref(),
            Some("StatusWriteFailed: conflict")
        );
        let fine = [fixtures::condition(
            RECONCILED,
            ConditionStatus::True,
            "Reconciled",
            "",
        )];
        assert_eq!(reconcile_failure(&fine), None);
        assert_eq!(reconcile_failure(&[]), None);
    }
}
