//! Identity at admission: the apiserver itself, through passport's ValidatingAdmissionPolicy
//! (deploy/admission.yaml) and RBAC (deploy/rbac.yaml), refuses what would let someone act in another's
//! name: objects naming someone other than their creator, groups the creator does not have, changes to
//! another's request, status writes by anyone but the operator, a stripped finalizer. One trial per
//! attack; each asserts the refusal and that its message names the field and the fix.
//!
//! The trials share one control plane of their own (the policy would refuse the other tests'
//! admin-made requests), started by the first and stopped when the last still running ends; each
//! works in a namespace of its own ([`Team`]).

mod changes;
mod creation;
mod finalizer;
mod gitops;
mod records;

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc, Weak,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use anyhow::{Result, anyhow, bail, ensure};
use passport_crds::common::annotations::{APPLIED_BY, APPLIER_GROUPS};
use passport_tests::{
    ControlPlane, controlplane,
    fixtures::{self, RequestBuilder, Yaml},
    kubectl::{self, Outcome},
    operator,
    wait::{eventually, give_up},
};
use tokio::sync::Mutex;

use crate::{E2e, test};

/// How long a new RoleBinding, policy or ConfigMap may take to reach the apiserver's authorizer and
/// admission informers (nothing to watch: they are the apiserver's own caches).
const PROPAGATION: Duration = Duration::from_secs(60);

pub fn trials() -> Vec<E2e> {
    vec![
        in_team(
            "admission::only_yourself_and_your_own_groups",
            creation::only_yourself,
        ),
        in_team(
            "admission::for_someone_else_only_signed_by_the_applier",
            creation::for_someone_else_only_signed,
        ),
        in_team(
            "admission::appliers_sign_as_themselves",
            creation::appliers_sign_as_themselves,
        ),
        in_team(
            "admission::appliers_claim_no_requester_groups",
            creation::appliers_claim_no_requester_groups,
        ),
        in_team(
            "admission::appliers_change_what_they_applied",
            creation::appliers_change_what_they_applied,
        ),
        in_team(
            "admission::only_the_requester_or_its_applier_changes_a_request",
            changes::who_changes,
        ),
        in_team(
            "admission::an_extension_rechecks_the_claimed_groups",
            changes::extension_rechecks_groups,
        ),
        in_team("admission::who_may_delete_a_request", changes::who_deletes),
        in_team(
            "admission::the_finalizer_is_the_operators",
            finalizer::the_operators,
        ),
        in_team(
            "admission::the_finalizer_holds_a_deleted_request",
            finalizer::holds_a_deleted_request,
        ),
        in_team(
            "admission::status_is_the_operators",
            records::status_is_the_operators,
        ),
        in_team("admission::a_review_is_a_fact", records::a_review_is_a_fact),
        in_team(
            "admission::requesters_and_approvers_read_events",
            records::events_are_readable,
        ),
        test(
            "admission::a_merge_approves_only_where_its_applier_is_trusted",
            gitops::merge_approves_only_where_trusted,
        ),
    ]
}

/// A trial that runs `check` in a fresh [`Team`] on the shared admission control plane.
fn in_team<F, Fut>(name: &'static str, check: F) -> E2e
where
    F: FnOnce(Team) -> Fut + Send + 'static,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    test(name, move |_env| async move {
        let short = name.trim_start_matches("admission::");
        check(Team::new(short).await?).await
    })
}

/// Identities besides the control plane's alice, bob (developers) and carol (sre, approvers), each
/// `(kubeconfig file stem, username, groups)`, written once per plane.
const IDENTITIES: [(&str, &str, &[&str]); 5] = [
    // A GitOps tool's service account, and the same once out of group gitops.
    ("argocd", "argocd", &["gitops"]),
    ("argocd-left-gitops", "argocd", &[]),
    // Someone with every right on passport.dev in a team's namespace (see `Team::grant_everything`).
    ("mallory", "mallory", &[]),
    // One user before and after leaving group oncall.
    ("erin-oncall", "erin", &["oncall"]),
    ("erin", "erin", &[]),
];

/// The admission control plane: passport's CRDs, RBAC and admission policy, and the identities above.
struct AdmissionPlane {
    plane: ControlPlane,
}

static SHARED: Mutex<Weak<AdmissionPlane>> = Mutex::const_new(Weak::new());

impl AdmissionPlane {
    /// The running one, or a new one if none is.
    async fn shared() -> Result<Arc<Self>> {
        let mut slot = SHARED.lock().await;
        if let Some(running) = slot.upgrade() {
            return Ok(running);
        }
        let started = Arc::new(Self::start().await?);
        *slot = Arc::downgrade(&started);
        Ok(started)
    }

    async fn start() -> Result<Self> {
        let plane = controlplane::start_with_crds().await?;
        let admin = plane.admin_kubeconfig();
        for file in ["deploy/rbac.yaml", "deploy/admission.yaml"] {
            kubectl::run(&admin, &["apply", "-f", &repo_file(file)], None)?.ok()?;
        }
        // The harness names a kubeconfig after its user: keep each one before writing the next.
        let mut kubeconfigs = Vec::new();
        for (stem, user, groups) in IDENTITIES {
            let written = plane.kubeconfig_for(user, groups)?;
            kubeconfigs.push((stem, std::fs::read(&written)?));
            std::fs::remove_file(written)?;
        }
        for (stem, kubeconfig) in kubeconfigs {
            std::fs::write(plane.dir().join(format!("{stem}.kubeconfig")), kubeconfig)?;
        }
        let operator = plane.kubeconfig_for(operator::IDENTITY, &operator::GROUPS)?;
        eventually(PROPAGATION, || async {
            let answer = kubectl::run(
                &operator,
                &["auth", "can-i", "patch", "accessrequests", "-A"],
                None,
            )?;
            ensure!(
                answer.stdout.trim() == "yes",
                "the operator's RBAC is not in force yet"
            );
            Ok(())
        })
        .await?;
        let this = Self { plane };
        this.wait_enforced().await?;
        Ok(this)
    }

    /// Waits until the policy is compiled and has its ConfigMap: until then creates slip through (each
    /// one that does is deleted, and the next try has a new name), or everything is refused for want
    /// of parameters.
    async fn wait_enforced(&self) -> Result<()> {
        let admin = self.plane.admin_kubeconfig();
        kubectl::apply(&admin, &fixtures::namespace("probe").yaml()?)?.ok()?;
        let attempt = AtomicU32::new(0);
        eventually(PROPAGATION, || async {
            let name = format!("probe-{}", attempt.fetch_add(1, Ordering::Relaxed));
            let probe = fixtures::request(&name).namespace("probe").requester("nobody");
            let outcome = kubectl::apply(&admin, &probe.yaml()?)?;
            if outcome.success {
                kubectl::run(&admin, &["delete", "ar", "-n", "probe", &name], None).ok();
            }
            if outcome.stderr.contains("resulted in error") {
                return Err(give_up(anyhow!("the policy is broken: {}", outcome.stderr)));
            }
            ensure!(
                outcome
                    .stderr
                    .contains("spec.requester must be your own username"),
                "the policy is not enforced yet: {}",
                outcome.stderr
            );
            Ok(())
        })
        .await
    }

    fn kubeconfig(&self, stem: &str) -> PathBuf {
        self.plane
            .dir()
            .join(format!("{}.kubeconfig", stem.replace(':', "_")))
    }
}

/// A path in the repository, for `kubectl apply -f`.
fn repo_file(file: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(file)
        .to_string_lossy()
        .into_owned()
}

/// One trial's namespace on the admission plane: alice and bob (group developers) and argocd may
/// request there, carol (group sre) may review.
pub struct Team {
    plane: Arc<AdmissionPlane>,
    namespace: String,
}

impl Team {
    async fn new(name: &str) -> Result<Self> {
        Self::on(AdmissionPlane::shared().await?, name).await
    }

    /// A team on `plane`, in namespace `name`.
    async fn on(plane: Arc<AdmissionPlane>, name: &str) -> Result<Self> {
        let namespace: String = name.replace('_', "-").chars().take(63).collect();
        let namespace = namespace.trim_end_matches('-').to_owned();
        let bindings = fixtures::manifest(&[
            &fixtures::namespace(&namespace),
            &fixtures::role_binding(
                &namespace,
                "requesters",
                "passport-requester",
                &[("Group", "developers"), ("User", "argocd"), ("User", "erin")],
            ),
            &fixtures::role_binding(&namespace, "approvers", "passport-approver", &[("Group", "sre")]),
        ])?;
        kubectl::apply(&plane.plane.admin_kubeconfig(), &bindings)?.ok()?;
        let team = Self { plane, namespace };
        for (who, verb, resource) in [
            ("alice", "create", "accessrequests"),
            ("argocd", "create", "accessrequests"),
            ("erin", "create", "accessrequests"),
            ("carol", "create", "accessreviews"),
        ] {
            team.wait_allowed(who, verb, resource).await?;
        }
        Ok(team)
    }

    /// Waits until RBAC lets `who` `verb` `resource` here (a new binding takes a moment to reach the
    /// authorizer), so that what a trial sees refused is admission's doing.
    async fn wait_allowed(&self, who: &str, verb: &str, resource: &str) -> Result<()> {
        eventually(PROPAGATION, || async {
            let answer = self.kubectl(who, &["auth", "can-i", verb, resource])?;
            ensure!(
                answer.stdout.trim() == "yes",
                "{who} may not {verb} {resource} yet"
            );
            Ok(())
        })
        .await
    }

    /// The kubeconfig of `who`: `admin`, a control-plane user, a stem of [`IDENTITIES`], or
    /// [`Team::OPERATOR`].
    fn kubeconfig(&self, who: &str) -> PathBuf {
        self.plane.kubeconfig(who)
    }

    /// The operator's identity (its kubeconfig is written with the plane).
    const OPERATOR: &'static str = operator::IDENTITY;

    /// `kubectl -n <namespace> <args>` as `who`.
    fn kubectl(&self, who: &str, args: &[&str]) -> Result<Outcome> {
        let mut full = vec!["-n", &self.namespace];
        full.extend_from_slice(args);
        kubectl::run(&self.kubeconfig(who), &full, None)
    }

    /// `kubectl apply` of `object` (put in this namespace) as `who`.
    fn apply(&self, who: &str, object: &impl Yaml) -> Result<Outcome> {
        let yaml = object.yaml()?;
        kubectl::run(
            &self.kubeconfig(who),
            &["-n", &self.namespace, "apply", "-f", "-"],
            Some(&yaml),
        )
    }

    /// `kubectl patch ar <name>` as `who`, with a merge patch, or a JSON patch when `patch` is a list.
    fn patch_request(&self, who: &str, name: &str, patch: &serde_json::Value) -> Result<Outcome> {
        self.patch(who, &["ar", name], patch)
    }

    /// `kubectl patch <what…>` as `who` (merge, or JSON when `patch` is a list).
    fn patch(&self, who: &str, what: &[&str], patch: &serde_json::Value) -> Result<Outcome> {
        let kind = if patch.is_array() {
            "--type=json"
        } else {
            "--type=merge"
        };
        let patch = patch.to_string();
        let mut args = vec!["patch"];
        args.extend_from_slice(what);
        args.extend_from_slice(&[kind, "-p", &patch]);
        self.kubectl(who, &args)
    }

    /// A schema-valid request in this namespace; whether the apiserver admits it depends only on who
    /// sends it and its annotations.
    fn request(&self, name: &str, requester: &str) -> RequestBuilder {
        fixtures::request(name)
            .namespace(&self.namespace)
            .requester(requester)
            .reason("checking admission rules")
    }

    /// Whether the request `name` still exists (as the administrator sees it).
    fn request_exists(&self, name: &str) -> Result<bool> {
        let outcome = self.kubectl("admin", &["get", "ar", name, "--ignore-not-found", "-o", "name"])?;
        Ok(!outcome.ok()?.stdout.trim().is_empty())
    }
}

/// Signs a request as applied by `applier`, claiming `groups` for it when given.
fn applied_by(request: RequestBuilder, applier: &str, groups: Option<&str>) -> RequestBuilder {
    request.with(|r| {
        let annotations = r.metadata.annotations.get_or_insert_with(Default::default);
        annotations.insert(APPLIED_BY.to_owned(), applier.to_owned());
        if let Some(groups) = groups {
            annotations.insert(APPLIER_GROUPS.to_owned(), groups.to_owned());
        }
    })
}

/// Fails unless `outcome` is a refusal whose message contains every one of `words` (the field and
/// the fix); `attack` says what was tried.
fn refused(outcome: Outcome, attack: &str, words: &[&str]) -> Result<()> {
    if outcome.success {
        bail!("admitted: {attack}");
    }
    let missing: Vec<&&str> = words.iter().filter(|w| !outcome.stderr.contains(**w)).collect();
    ensure!(
        missing.is_empty(),
        "{attack}: refused, but the message lacks {missing:?}: {}",
        outcome.stderr.trim()
    );
    Ok(())
}
