//! Which AccessReviews count for a request as it stands, and why the others do not. A review approves
//! one thing: the request it names by UID, for the duration it names.

use std::time::Duration;

use jiff::Timestamp;
use passport_crds::{
    AccessRequest, AccessReview, ReviewDecision,
    duration::{ACCESS_BOUNDS, format_go_duration, parse_field},
};

/// What the reviews are asked to decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Question {
    /// `spec.duration`, parsed.
    pub requested: Duration,
    /// Reviews without a request UID count only if made since then (the request's creation, or the
    /// last approval for an extension).
    pub since: Timestamp,
    /// The request is already approved for less: an approval must name the new duration.
    pub extending: bool,
}

/// `Ok` if the review counts for the request; else why not (for the review's Accepted condition).
/// `None` when it is not about this request at all.
pub fn verdict(
    review: &AccessReview,
    request: &AccessRequest,
    question: Question,
) -> Option<Result<(), String>> {
    let spec = &review.spec;
    if Some(spec.access_request.as_str()) != request.metadata.name.as_deref() {
        return None;
    }
    Some(check(review, request, question))
}

fn check(review: &AccessReview, request: &AccessRequest, question: Question) -> Result<(), String> {
    let spec = &review.spec;
    if spec.reviewer == request.spec.requester {
        return Err("a requester can never review their own request".into());
    }
    match (&spec.access_request_uid, request.metadata.uid.as_deref()) {
        (Some(named), Some(uid)) if named != uid => {
            return Err(format!(
                "it names request UID {named}, not this request's {uid} (an earlier request of the same name)"
            ));
        }
        (Some(_), _) => {}
        (None, _) => {
            let made = review.metadata.creation_timestamp.as_ref().map(|t| t.0);
            if made.is_none_or(|made| made < question.since) {
                return Err(format!(
                    "it names no accessRequestUID and was made before {}; review again with `kubectl passport approve`",
                    question.since
                ));
            }
        }
    }
    if spec.decision == ReviewDecision::Deny {
        return Ok(());
    }
    match &spec.duration {
        Some(text) => {
            let approved =
                parse_field("spec.duration", text, ACCESS_BOUNDS).map_err(|err| err.to_string())?;
            if approved != question.requested {
                return Err(format!(
                    "it approves {text}, and the request now asks for {}",
                    format_go_duration(question.requested)
                ));
            }
        }
        None if question.extending => {
            return Err(
                "an extension needs a review naming its duration (spec.duration); \
                 `kubectl passport approve` fills it in"
                    .into(),
            );
        }
        None => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use passport_crds::common::Time;

    use super::*;
    use crate::fixtures::{at, request, review};

    const HOUR: Duration = Duration::from_secs(3600);

    fn asked(requested: Duration, extending: bool) -> Question {
        Question {
            requested,
            since: at(0),
            extending,
        }
    }

    fn bound(uid: Option<&str>, duration: Option<&str>) -> AccessReview {
        let mut r = review("carol", ReviewDecision::Approve);
        r.spec.access_request_uid = uid.map(str::to_owned);
        r.spec.duration = duration.map(str::to_owned);
        r
    }

    fn req() -> AccessRequest {
        let mut r = request("req");
        r.metadata.uid = Some("uid-1".into());
        r
    }

    #[test]
    fn a_review_bound_to_the_request_and_duration_counts() {
        let v = verdict(&bound(Some("uid-1"), Some("1h")), &req(), asked(HOUR, false));
        assert_eq!(v, Some(Ok(())));
    }

    #[test]
    fn a_review_of_an_earlier_request_of_the_same_name_does_not_count() {
        let v = verdict(&bound(Some("uid-0"), Some("1h")), &req(), asked(HOUR, false));
        assert!(v.expect("about it").expect_err("refused").contains("uid-0"));
    }

    #[test]
    fn an_approval_counts_only_for_the_duration_it_names() {
        let v = verdict(&bound(Some("uid-1"), Some("1h")), &req(), asked(2 * HOUR, true));
        assert!(v.expect("about it").expect_err("refused").contains("approves 1h"));
        let v = verdict(&bound(Some("uid-1"), Some("120m")), &req(), asked(2 * HOUR, true));
        assert_eq!(v, Some(Ok(())));
    }

    #[test]
    fn an_extension_needs_a_review_naming_its_duration() {
        let v = verdict(&bound(Some("uid-1"), None), &req(), asked(2 * HOUR, true));
        assert!(
            v.expect("about it")
                .expect_err("refused")
                .contains("spec.duration")
        );
    }

    #[test]
    fn an_unbound_review_counts_only_if_made_since() {
        let mut old = bound(None, None);
        old.metadata.creation_timestamp = Some(Time(at(1)));
        let question = Question {
            since: at(5),
            ..asked(HOUR, false)
        };
        assert!(verdict(&old, &req(), question).expect("about it").is_err());
        assert_eq!(verdict(&old, &req(), asked(HOUR, false)), Some(Ok(())));
    }

    #[test]
    fn a_deny_counts_whatever_duration_it_names() {
        let mut deny = bound(Some("uid-1"), Some("1h"));
        deny.spec.decision = ReviewDecision::Deny;
        assert_eq!(verdict(&deny, &req(), asked(3 * HOUR, true)), Some(Ok(())));
    }

    #[test]
    fn reviews_of_other_requests_are_not_judged() {
        let mut other = bound(Some("uid-1"), Some("1h"));
        other.spec.access_request = "other".into();
        assert_eq!(verdict(&other, &req(), asked(HOUR, false)), None);
    }
}
