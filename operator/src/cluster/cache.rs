//! What the operator's caches keep of an object, and the one AccessRequest cache they share.

use futures::{Stream, TryStreamExt};
use kube::{
    Api, Client, Resource,
    runtime::{
        WatchStreamExt,
        reflector::{self, Store, reflector, store::Writer},
        watcher::{self, watcher},
    },
};
use passport_crds::AccessRequest;

/// kubectl's copy of the last applied object, kept in an annotation.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops an object's managed fields and kubectl's last-applied copy: nothing in the operator reads
/// them, and together they are most of the memory a cached AccessRequest takes.
pub fn slim<K: Resource>(object: &mut K) {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

/// Sees each AccessRequest watch event once the cache has taken it.
type Observer = Box<dyn Fn(&watcher::Event<AccessRequest>) + Send + Sync>;

/// The one cache of AccessRequests in the operator: the controller reconciles from it, the Logbook
/// sink delivers from it, and observers (the sink's wake-ups, the Windows holder index) follow its
/// events. One copy of each request, however many readers: at 10,000 requests a second copy would
/// be the largest thing in memory.
pub struct RequestCache {
    store: Store<AccessRequest>,
    writer: Writer<AccessRequest>,
    observers: Vec<Observer>,
}

impl Default for RequestCache {
    fn default() -> Self {
        let (store, writer) = reflector::store();
        Self {
            store,
            writer,
            observers: Vec::new(),
        }
    }
}

impl std::fmt::Debug for RequestCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestCache")
            .field("observers", &self.observers.len())
            .finish_non_exhaustive()
    }
}

impl RequestCache {
    pub fn store(&self) -> Store<AccessRequest> {
        self.store.clone()
    }

    pub fn observe(&mut self, observer: impl Fn(&watcher::Event<AccessRequest>) + Send + Sync + 'static) {
        self.observers.push(Box::new(observer));
    }

    /// Watches every AccessRequest into the cache, slimmed, and yields each event after the cache
    /// and the observers have taken it.
    pub fn watch(
        self,
        client: Client,
    ) -> impl Stream<Item = Result<watcher::Event<AccessRequest>, watcher::Error>> + Send {
        let Self {
            writer, observers, ..
        } = self;
        let events = watcher(Api::all(client), watcher::Config::default())
            .default_backoff()
            .modify(slim);
        reflector(writer, events).inspect_ok(move |event| {
            for observer in &observers {
                observer(event);
            }
        })
    }
}
