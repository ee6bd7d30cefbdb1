//! What the operator's caches (the controllers' reflectors and the Logbook sink's) keep of an object.

use kube::Resource;

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
