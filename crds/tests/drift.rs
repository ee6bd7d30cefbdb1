//! The committed CRD YAML must be exactly what the types generate.

use std::path::Path;

#[test]
fn committed_crd_yaml_matches_the_types() {
    let generated = passport_crds::crds_yaml().expect("CRDs render");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for file in passport_crds::COMMITTED_CRD_FILES {
        let committed = std::fs::read_to_string(root.join(file)).unwrap_or_default();
        assert!(
            committed == generated,
            "{file} is out of date with the Rust types in crds/src; regenerate it with \
             `cargo run -p passport-crds --bin crdgen -- --write` and commit the result"
        );
    }
}
