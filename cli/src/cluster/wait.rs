//! Waiting on one object: a watch, a verdict on each version, and a deadline.

use std::{fmt::Debug, pin::pin, time::Duration};

use anyhow::{Result, anyhow};
use futures::TryStreamExt;
use kube::{
    Api, Resource,
    runtime::watcher::{self, watch_object},
};
use serde::de::DeserializeOwned;

use super::api_errors;
use crate::ui::errors::fold;

/// Watches object `name` and hands each version of it (`None` once it is gone) to `verdict`, until
/// the verdict decides: `Some(Ok(value))` ends the wait with `value`, `Some(Err(why))` fails it.
/// `Ok(None)` when `limit` passes first.
pub async fn until<K, T>(
    api: &Api<K>,
    name: &str,
    limit: Duration,
    mut verdict: impl FnMut(Option<&K>) -> Option<Result<T>>,
) -> Result<Option<T>>
where
    K: Resource<DynamicType = ()> + Clone + Debug + Send + DeserializeOwned + 'static,
{
    let decided = async {
        let mut versions = pin!(watch_object(api.clone(), name));
        while let Some(version) = versions.try_next().await.map_err(|err| watch_failed(api, err))? {
            if let Some(decided) = verdict(version.as_ref()) {
                return decided;
            }
        }
        Err(anyhow!("the watch on {} {name} ended", K::kind(&())))
    };
    match tokio::time::timeout(limit, decided).await {
        Ok(decided) => decided.map(Some),
        Err(_elapsed) => Ok(None),
    }
}

fn watch_failed<K: Resource<DynamicType = ()>>(api: &Api<K>, err: watcher::Error) -> anyhow::Error {
    let plural = K::plural(&());
    match err {
        watcher::Error::InitialListFailed(err)
        | watcher::Error::WatchStartFailed(err)
        | watcher::Error::WatchFailed(err) => {
            api_errors::explain(err, "watch", &plural, api.namespace().unwrap_or("(cluster)"))
        }
        other => anyhow!("watching {plural}: {}", fold(&other.to_string())),
    }
}
