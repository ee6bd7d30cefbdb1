//! AwsAccount reconciliation: assume the role, ask STS who we are and keep passport's session
//! documents there; Ready says whether it worked.

use std::{sync::Arc, time::Duration};

use jiff::Timestamp;
use kube::{Api, ResourceExt, runtime::controller::Action};
use passport_core::{account::Account, credentials::documents};
use passport_crds::{
    AwsAccount,
    aws_account::AwsAccountStatus,
    common::Time,
    conditions::{self, Update, types::READY},
};

use super::{Context, Error, report};
use crate::{aws::Fleet, cluster::status};

/// Re-check a working account now and then: roles and trust policies change under us.
const RECHECK_READY: Duration = Duration::from_secs(600);
const RECHECK_FAILING: Duration = Duration::from_secs(60);

pub async fn reconcile<F: Fleet>(account: Arc<AwsAccount>, ctx: Arc<Context<F>>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile("AwsAccount");
    ctx.reported(account.as_ref(), verify(&account, &ctx).await).await
}

async fn verify<F: Fleet>(account: &AwsAccount, ctx: &Context<F>) -> Result<Action, Error> {
    let now = Timestamp::now();
    let mut status = account.status.clone().unwrap_or_default();
    let generation = account.metadata.generation;
    let acting = Account::from(&account.spec);
    let result = ctx.fleet.verify(&acting).await;
    let documents = match &result {
        Ok(_) => ctx.fleet.ensure_session_documents(&acting).await,
        Err(_) => Ok(()),
    };
    let requeue = match (&result, documents) {
        (Ok(_), Err(err)) => {
            let message = format!(
                "assumed {} but cannot keep passport's Session Manager documents ({}) in {}: {err}; \
                 allow the role ssm:GetDocument, ssm:CreateDocument, ssm:UpdateDocument and \
                 ssm:UpdateDocumentDefaultVersion on document/Passport-*",
                account.spec.role_arn,
                documents::session_documents().map(|d| d.name).join(", "),
                account.spec.region,
            );
            let update = Update::new(READY, false, "SessionDocumentsFailed").message(message);
            conditions::set(&mut status.conditions, update, generation, now);
            RECHECK_FAILING
        }
        (Ok(identity), Ok(())) => {
            status.last_assumed_at = Some(Time(now));
            let message = format!("assumed {} as {identity}", account.spec.role_arn);
            let update = Update::new(READY, true, "RoleAssumed").message(message);
            conditions::set(&mut status.conditions, update, generation, now);
            RECHECK_READY
        }
        (Err(err), _) => {
            let message = format!(
                "cannot assume {} in {}: {err}; check the role's trust policy{}",
                account.spec.role_arn,
                account.spec.region,
                if account.spec.external_id.is_some() {
                    " and spec.externalId"
                } else {
                    ""
                }
            );
            let update = Update::new(READY, false, "AssumeRoleFailed").message(message);
            conditions::set(&mut status.conditions, update, generation, now);
            RECHECK_FAILING
        }
    };
    status.observed_generation = generation;
    report::clear(&mut status.conditions);
    if account.status.as_ref() != Some(&status) && !only_timestamp_moved(account.status.as_ref(), &status) {
        let api: Api<AwsAccount> = Api::all(ctx.client.clone());
        status::write(&api, &account.name_any(), None, &status).await?;
    }
    Ok(Action::requeue(requeue))
}

/// Avoids a status write (and an event storm for watchers) when only lastAssumedAt would change.
fn only_timestamp_moved(old: Option<&AwsAccountStatus>, new: &AwsAccountStatus) -> bool {
    old.is_some_and(|old| {
        let mut old = old.clone();
        old.last_assumed_at.clone_from(&new.last_assumed_at);
        &old == new
    })
}
