//! The kubeconfig, found the way kubectl finds it: `--kubeconfig`, else the files `KUBECONFIG` lists
//! (merged, missing ones skipped), else `~/.kube/config`; then `--context` or the current context.

use std::{
    io::ErrorKind,
    path::{Path, PathBuf},
};

use anyhow::{Result, anyhow, bail};
use kube::{
    Config,
    config::{KubeConfigOptions, Kubeconfig, KubeconfigError},
};

use crate::ui::errors::fold;

pub const NO_KUBECONFIG: &str = "no kubeconfig: set KUBECONFIG or pass --kubeconfig";

/// A kubeconfig, and the file it came from when that is one file (passed on to child invocations).
#[derive(Debug)]
pub struct Found {
    pub kubeconfig: Kubeconfig,
    pub file: Option<PathBuf>,
}

/// The kubeconfig `--kubeconfig` (`flag`) names, else the one the environment gives.
pub fn find(flag: Option<&Path>) -> Result<Found> {
    if let Some(path) = flag {
        return Ok(Found {
            kubeconfig: read(path)?,
            file: Some(absolute(path)),
        });
    }
    let value = std::env::var_os("KUBECONFIG").unwrap_or_default();
    let listed: Vec<PathBuf> = std::env::split_paths(&value)
        .filter(|p| !p.as_os_str().is_empty())
        .collect();
    if listed.is_empty() {
        let kubeconfig = Kubeconfig::read().map_err(|err| match err {
            KubeconfigError::FindPath => anyhow!(NO_KUBECONFIG),
            KubeconfigError::ReadConfig(io, _) if io.kind() == ErrorKind::NotFound => anyhow!(NO_KUBECONFIG),
            other => anyhow!("cannot read ~/.kube/config: {}", fold(&other.to_string())),
        })?;
        return Ok(Found {
            kubeconfig,
            file: None,
        });
    }
    let existing: Vec<&PathBuf> = listed.iter().filter(|p| p.exists()).collect();
    let [first, ..] = existing.as_slice() else {
        bail!(
            "no kubeconfig: KUBECONFIG names no existing file ({}); set KUBECONFIG or pass --kubeconfig",
            value.to_string_lossy()
        );
    };
    let mut merged = Kubeconfig::default();
    for path in &existing {
        merged = merged
            .merge(read(path)?)
            .map_err(|err| anyhow!("cannot merge kubeconfig {}: {err}", path.display()))?;
    }
    Ok(Found {
        kubeconfig: merged,
        file: (existing.len() == 1).then(|| absolute(first)),
    })
}

fn read(path: &Path) -> Result<Kubeconfig> {
    Kubeconfig::read_from(path).map_err(|err| {
        anyhow!(
            "cannot read kubeconfig {}: {}",
            path.display(),
            fold(&err.to_string())
        )
    })
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

/// The client configuration for `context` (default: the current one), and that context's name.
pub async fn client_config(kubeconfig: Kubeconfig, context: Option<&str>) -> Result<(String, Config)> {
    let Some(context) = context
        .map(str::to_owned)
        .or_else(|| kubeconfig.current_context.clone())
    else {
        bail!("the kubeconfig has no current context: pass --context");
    };
    let known: Vec<String> = kubeconfig.contexts.iter().map(|c| c.name.clone()).collect();
    let options = KubeConfigOptions {
        context: Some(context.clone()),
        ..KubeConfigOptions::default()
    };
    let config = Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|err| match err {
            KubeconfigError::LoadContext(_) => anyhow!(
                "context {context:?} is not in the kubeconfig (it has: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ),
            other => anyhow!("kubeconfig context {context}: {}", fold(&other.to_string())),
        })?;
    Ok((context, config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_kubeconfig_says_how_to_name_one() {
        assert_eq!(
            NO_KUBECONFIG,
            "no kubeconfig: set KUBECONFIG or pass --kubeconfig"
        );
    }

    #[tokio::test]
    async fn unknown_contexts_list_the_known_ones() -> Result<()> {
        let kubeconfig = Kubeconfig::from_yaml(
            "apiVersion: v1\nkind: Config\ncurrent-context: dev\n\
             clusters: [{name: c, cluster: {server: 'https://127.0.0.1:6443'}}]\n\
             users: [{name: u, user: {token: t}}]\n\
             contexts: [{name: dev, context: {cluster: c, user: u, namespace: team-a}}]\n",
        )?;
        let err = client_config(kubeconfig.clone(), Some("prod"))
            .await
            .expect_err("no such context");
        assert_eq!(
            err.to_string(),
            "context \"prod\" is not in the kubeconfig (it has: dev)"
        );
        let (context, config) = client_config(kubeconfig, None).await?;
        assert_eq!(
            (context.as_str(), config.default_namespace.as_str()),
            ("dev", "team-a")
        );
        Ok(())
    }
}
