//! The connection to the cluster, made the way kubectl makes it: kubeconfig from `--kubeconfig`, else
//! `KUBECONFIG` (a list of files, merged), else `~/.kube/config`; `--context` or the current context;
//! `-n` or the context's namespace. Also who the cluster says we are, asked once.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use kube::{
    Api, Client, Config,
    api::PostParams,
    config::{KubeConfigOptions, Kubeconfig},
};
use passport_crds::AccessRequest;
use tokio::sync::OnceCell;

use crate::{args::Global, errors};

/// The authenticated user, as the apiserver sees them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Identity {
    pub username: String,
    pub groups: Vec<String>,
}

pub struct Session {
    pub client: Client,
    pub namespace: String,
    /// The context in use, by name (passed on to the ProxyCommand, and part of the cache path).
    pub context: String,
    /// A single kubeconfig file to pass on to child invocations, when one was named.
    pub kubeconfig: Option<PathBuf>,
    identity: OnceCell<Identity>,
}

/// Where the kubeconfig comes from and the file to pass on, if it is one file.
fn load_kubeconfig(flag: Option<&Path>) -> Result<(Kubeconfig, Option<PathBuf>)> {
    if let Some(path) = flag {
        let config = Kubeconfig::read_from(path).map_err(|err| {
            anyhow!(
                "cannot read kubeconfig {}: {}",
                path.display(),
                errors::fold(&err.to_string())
            )
        })?;
        return Ok((config, Some(absolute(path))));
    }
    if let Some(value) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        let paths: Vec<PathBuf> = std::env::split_paths(&value)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        let existing: Vec<&PathBuf> = paths.iter().filter(|p| p.exists()).collect();
        if existing.is_empty() {
            bail!(
                "no kubeconfig: KUBECONFIG names no existing file ({}); set KUBECONFIG or pass --kubeconfig",
                value.to_string_lossy()
            );
        }
        let mut merged = Kubeconfig::default();
        for path in &existing {
            let next = Kubeconfig::read_from(path).map_err(|err| {
                anyhow!(
                    "cannot read kubeconfig {}: {}",
                    path.display(),
                    errors::fold(&err.to_string())
                )
            })?;
            merged = merged.merge(next)?;
        }
        let single = (existing.len() == 1).then(|| absolute(existing[0]));
        return Ok((merged, single));
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    match home.map(|h| h.join(".kube/config")).filter(|p| p.exists()) {
        Some(path) => {
            let config = Kubeconfig::read_from(&path).map_err(|err| {
                anyhow!(
                    "cannot read kubeconfig {}: {}",
                    path.display(),
                    errors::fold(&err.to_string())
                )
            })?;
            Ok((config, None))
        }
        None => bail!(errors::NO_KUBECONFIG),
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("namespace", &self.namespace)
            .field("context", &self.context)
            .field("kubeconfig", &self.kubeconfig)
            .finish_non_exhaustive()
    }
}

impl Session {
    pub async fn connect(global: &Global) -> Result<Self> {
        let (kubeconfig, file) = load_kubeconfig(global.kubeconfig.as_deref())?;
        let context = match global
            .context
            .clone()
            .or_else(|| kubeconfig.current_context.clone())
        {
            Some(context) => context,
            None => bail!("the kubeconfig has no current context: pass --context"),
        };
        if !kubeconfig.contexts.iter().any(|c| c.name == context) {
            let known: Vec<&str> = kubeconfig.contexts.iter().map(|c| c.name.as_str()).collect();
            bail!(
                "context {context:?} is not in the kubeconfig (it has: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            );
        }
        let options = KubeConfigOptions {
            context: Some(context.clone()),
            cluster: None,
            user: None,
        };
        let config = Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|err| anyhow!("kubeconfig context {context}: {}", errors::fold(&err.to_string())))?;
        let namespace = global
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let client = Client::try_from(config).context("cannot set up the Kubernetes client")?;
        // An explicit --kubeconfig is always passed on; a single KUBECONFIG file too, so that the
        // ssh config keeps working from a shell without KUBECONFIG.
        let kubeconfig = file;
        Ok(Self {
            client,
            namespace,
            context,
            kubeconfig,
            identity: OnceCell::new(),
        })
    }

    /// The cluster's own answer to "who am I" (SelfSubjectReview), asked once per run.
    pub async fn whoami(&self) -> Result<&Identity> {
        self.identity
            .get_or_try_init(|| async {
                let api: Api<SelfSubjectReview> = Api::all(self.client.clone());
                let review = api
                    .create(&PostParams::default(), &SelfSubjectReview::default())
                    .await
                    .map_err(|err| errors::api(err, "create", "selfsubjectreviews", "(cluster)"))?;
                let info = review
                    .status
                    .and_then(|s| s.user_info)
                    .ok_or_else(|| anyhow!("the cluster's SelfSubjectReview names no user"))?;
                Ok(Identity {
                    username: info.username.unwrap_or_default(),
                    groups: info.groups.unwrap_or_default(),
                })
            })
            .await
    }

    pub fn requests(&self) -> Api<AccessRequest> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// The AccessRequest `name`, or the error a person understands.
    pub async fn request(&self, name: &str) -> Result<AccessRequest> {
        match self.requests().get(name).await {
            Ok(request) => Ok(request),
            Err(err) if errors::code(&err) == Some(404) => {
                Err(errors::request_not_found(name, &self.namespace))
            }
            Err(err) => Err(errors::api(err, "get", "accessrequests", &self.namespace)),
        }
    }
}

/// The groups to claim in `passport.dev/requester-groups`: every group but `system:authenticated`,
/// which everyone has and no policy should match on.
pub fn claimed_groups(groups: &[String]) -> Vec<String> {
    groups
        .iter()
        .filter(|g| g.as_str() != "system:authenticated" && !g.is_empty() && !g.contains(','))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claimed_groups_leave_out_system_authenticated() {
        let groups = vec![
            "developers".to_owned(),
            "system:authenticated".to_owned(),
            "sre".to_owned(),
        ];
        assert_eq!(claimed_groups(&groups), vec!["developers", "sre"]);
        assert!(claimed_groups(&["system:authenticated".to_owned()]).is_empty());
    }
}
