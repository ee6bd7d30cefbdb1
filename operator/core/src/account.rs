//! Which AWS account a request uses, and how to reach it.
//!
//! The account is `spec.account`, else the namespace's default (the first AccessPolicy by name with a
//! `defaultAccount`); once approved, the name pinned in `status.account`. It is usable when the
//! AwsAccount exists and lists the request's namespace.

use passport_crds::{AccessPolicy, AccessRequest, AwsAccount, AwsAccountSpec, access_request::AccountRole};

/// How to reach one AWS account.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Account {
    pub role_arn: String,
    pub region: String,
    pub external_id: Option<String>,
}

impl From<&AwsAccountSpec> for Account {
    fn from(spec: &AwsAccountSpec) -> Self {
        Self {
            role_arn: spec.role_arn.clone(),
            region: spec.region.clone(),
            external_id: spec.external_id.clone(),
        }
    }
}

impl From<&AccountRole> for Account {
    fn from(role: &AccountRole) -> Self {
        Self {
            role_arn: role.role_arn.clone(),
            region: role.region.clone(),
            external_id: role.external_id.clone(),
        }
    }
}

impl From<&Account> for AccountRole {
    fn from(account: &Account) -> Self {
        Self {
            role_arn: account.role_arn.clone(),
            region: account.region.clone(),
            external_id: account.external_id.clone(),
        }
    }
}

/// The account to act through for `request`: the role pinned at approval whatever happened to the
/// AwsAccount since, else (before approval, or for requests approved by an older version) the
/// account as it resolves now.
pub fn acting(request: &AccessRequest, resolved: Option<&Resolved>) -> Option<Account> {
    let pinned = request.status.as_ref().and_then(|s| s.account_role.as_ref());
    pinned
        .map(Account::from)
        .or_else(|| resolved.map(|r| r.account.clone()))
}

/// The request's account, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The AwsAccount's name, pinned in status at approval.
    pub name: String,
    pub account: Account,
}

/// Why a request's account cannot be used: definitive until someone changes the objects named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, strum::IntoStaticStr)]
pub enum AccountProblem {
    #[error(
        "spec.account is not set and no AccessPolicy in namespace {namespace} has a defaultAccount; \
         create a new AccessRequest with spec.account naming an AwsAccount"
    )]
    NoAccount { namespace: String },
    #[error(
        "AwsAccount {name:?} does not exist; create it (see deploy/examples/awsaccount.yaml) \
         or create a new AccessRequest naming an existing account"
    )]
    AccountNotFound { name: String },
    #[error("AwsAccount {name:?} does not list namespace {namespace} in spec.allowedNamespaces")]
    AccountNotAllowed { name: String, namespace: String },
}

impl AccountProblem {
    /// The condition reason: the variant's name.
    pub fn reason(&self) -> &'static str {
        self.into()
    }
}

/// Resolves the request's account. `lookup` finds an AwsAccount by name (the operator's cache).
pub fn resolve(
    request: &AccessRequest,
    policies: &[AccessPolicy],
    lookup: impl Fn(&str) -> Option<AwsAccount>,
) -> Result<Resolved, AccountProblem> {
    let namespace = request.metadata.namespace.clone().unwrap_or_default();
    let pinned = request.status.as_ref().and_then(|s| s.account.clone());
    let name = pinned
        .or_else(|| request.spec.account.clone())
        .or_else(|| namespace_default(policies))
        .ok_or_else(|| AccountProblem::NoAccount {
            namespace: namespace.clone(),
        })?;
    let Some(found) = lookup(&name) else {
        return Err(AccountProblem::AccountNotFound { name });
    };
    if !found.spec.allows_namespace(&namespace) {
        return Err(AccountProblem::AccountNotAllowed { name, namespace });
    }
    Ok(Resolved {
        account: Account::from(&found.spec),
        name,
    })
}

fn namespace_default(policies: &[AccessPolicy]) -> Option<String> {
    policies
        .iter()
        .filter(|p| p.spec.default_account.is_some())
        .min_by_key(|p| p.metadata.name.clone())
        .and_then(|p| p.spec.default_account.clone())
}

#[cfg(test)]
mod tests {
    use passport_crds::AwsAccountSpec;

    use super::*;
    use crate::fixtures::{policy, request};

    fn account(name: &str, namespaces: &[&str]) -> AwsAccount {
        AwsAccount::new(
            name,
            AwsAccountSpec {
                role_arn: "arn:aws:iam::123456789012:role/passport".into(),
                region: "eu-west-1".into(),
                external_id: None,
                allowed_namespaces: namespaces.iter().map(|n| (*n).to_owned()).collect(),
            },
        )
    }

    fn lookup(accounts: Vec<AwsAccount>) -> impl Fn(&str) -> Option<AwsAccount> {
        move |name| {
            accounts
                .iter()
                .find(|a| a.metadata.name.as_deref() == Some(name))
                .cloned()
        }
    }

    #[test]
    fn spec_account_wins_over_the_namespace_default() {
        let mut r = request("r");
        r.spec.account = Some("prod".into());
        let mut p = policy("p");
        p.spec.default_account = Some("staging".into());
        let found = resolve(&r, &[p], lookup(vec![account("prod", &["team-a"])])).expect("usable");
        assert_eq!(found.name, "prod");
    }

    #[test]
    fn the_default_comes_from_the_first_policy_by_name() {
        let (mut a, mut b) = (policy("a"), policy("b"));
        a.spec.default_account = Some("first".into());
        b.spec.default_account = Some("second".into());
        let accounts = lookup(vec![
            account("first", &["team-a"]),
            account("second", &["team-a"]),
        ]);
        let found = resolve(&request("r"), &[b, a], accounts).expect("usable");
        assert_eq!(found.name, "first");
    }

    #[test]
    fn the_pinned_account_survives_a_changed_default() {
        let mut r = request("r");
        r.status.get_or_insert_default().account = Some("pinned".into());
        let mut p = policy("p");
        p.spec.default_account = Some("new-default".into());
        let found = resolve(&r, &[p], lookup(vec![account("pinned", &["team-a"])])).expect("usable");
        assert_eq!(found.name, "pinned");
    }

    #[test]
    fn the_pinned_role_is_acted_through_whatever_the_account_says_now() {
        let mut r = request("r");
        let resolved = Resolved {
            name: "prod".into(),
            account: Account {
                role_arn: "arn:aws:iam::123456789012:role/changed".into(),
                region: "us-east-1".into(),
                external_id: None,
            },
        };
        assert_eq!(
            acting(&r, Some(&resolved)),
            Some(resolved.account.clone()),
            "nothing pinned yet"
        );
        let pinned = AccountRole {
            role_arn: "arn:aws:iam::123456789012:role/passport".into(),
            region: "eu-west-1".into(),
            external_id: Some("x".into()),
        };
        r.status.get_or_insert_default().account_role = Some(pinned.clone());
        assert_eq!(
            acting(&r, Some(&resolved)).map(|a| AccountRole::from(&a)),
            Some(pinned.clone())
        );
        assert_eq!(
            acting(&r, None).map(|a| AccountRole::from(&a)),
            Some(pinned),
            "even with the AwsAccount gone"
        );
    }

    #[test]
    fn problems_name_what_to_fix() {
        let err = resolve(&request("r"), &[], lookup(vec![])).expect_err("no account");
        assert_eq!(err.reason(), "NoAccount");
        let mut r = request("r");
        r.spec.account = Some("prod".into());
        let err = resolve(&r, &[], lookup(vec![])).expect_err("missing");
        assert_eq!(err.reason(), "AccountNotFound");
        let err = resolve(&r, &[], lookup(vec![account("prod", &["other"])])).expect_err("not allowed");
        assert_eq!(err.reason(), "AccountNotAllowed");
        assert!(err.to_string().contains("spec.allowedNamespaces"), "{err}");
    }
}
