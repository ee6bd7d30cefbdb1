//! The operator's word on reviews and policies: a review by someone no policy names as approver says
//! it did not count and why (Accepted=False); a policy that can never approve anything says which
//! field (Ready=False); a sound one is Ready.

use std::{sync::Arc, time::Duration};

use anyhow::{Context, Result, ensure};
use kube::Api;
use passport_crds::{AccessPolicy, AccessReview, common::Condition};
use passport_tests::{fixtures, wait};

use crate::{E2e, Env, scenario::on_shared_stack, test};

const TIMEOUT: Duration = Duration::from_secs(30);

pub fn trials() -> Vec<E2e> {
    vec![test(
        "judged::reviews_and_policies_say_whether_they_count",
        judged,
    )]
}

fn condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

async fn judged(env: Arc<Env>) -> Result<()> {
    let s = on_shared_stack(&env, "judged", &["alice"], &["i-0123456789abcdef0"]).await?;
    s.apply(
        &fixtures::policy("impossible")
            .namespace(&s.namespace)
            .requester_users(["alice"])
            .instances(["i-0123456789abcdef0"])
            .with(|p| p.spec.approval.required = 3),
    )?;
    s.apply(
        &fixtures::review("nothing-here")
            .namespace(&s.namespace)
            .reviewer("mallory"),
    )?;

    let policies: Api<AccessPolicy> = Api::namespaced(s.admin.clone(), &s.namespace);
    let judged = |p: Option<&AccessPolicy>| {
        p.and_then(|p| p.status.as_ref())
            .is_some_and(|st| condition(&st.conditions, "Ready").is_some())
    };
    let impossible = wait::object(&policies, "impossible", TIMEOUT, judged)
        .await?
        .context("gone")?;
    let ready = condition(&impossible.status.clone().unwrap_or_default().conditions, "Ready").cloned();
    let ready = ready.context("no Ready")?;
    ensure!(
        ready.status == "False" && ready.message.contains("spec.approval.required is 3"),
        "{ready:?}"
    );
    let sound = wait::object(&policies, "e2e", TIMEOUT, judged)
        .await?
        .context("gone")?;
    let ready = condition(&sound.status.clone().unwrap_or_default().conditions, "Ready").cloned();
    ensure!(
        ready.is_some_and(|c| c.status == "True"),
        "the scenario's policy is not Ready"
    );

    let reviews: Api<AccessReview> = Api::namespaced(s.admin.clone(), &s.namespace);
    let accepted = |r: Option<&AccessReview>| {
        r.and_then(|r| r.status.as_ref())
            .is_some_and(|st| condition(&st.conditions, "Accepted").is_some())
    };
    let review = wait::object(&reviews, "nothing-here-review", TIMEOUT, accepted)
        .await?
        .context("gone")?;
    let verdict = condition(&review.status.clone().unwrap_or_default().conditions, "Accepted").cloned();
    let verdict = verdict.context("no Accepted")?;
    ensure!(
        verdict.status == "False" && verdict.reason == "NoSuchRequest",
        "{verdict:?}"
    );
    eprintln!(
        "judged: policy says {:?}; review says {:?}",
        ready_message(&impossible),
        verdict.message
    );
    Ok(())
}

fn ready_message(policy: &AccessPolicy) -> String {
    policy
        .status
        .as_ref()
        .and_then(|st| condition(&st.conditions, "Ready"))
        .map(|c| c.message.clone())
        .unwrap_or_default()
}
