//! Prints passport's CRDs as YAML, or with `--write` refreshes every committed copy.

use std::{fs, path::PathBuf, process::ExitCode};

fn main() -> ExitCode {
    let yaml = match passport_crds::crds_yaml() {
        Ok(yaml) => yaml,
        Err(err) => {
            eprintln!("crdgen: cannot render the CRDs: {err}");
            return ExitCode::FAILURE;
        }
    };
    if std::env::args().nth(1).as_deref() != Some("--write") {
        print!("{yaml}");
        return ExitCode::SUCCESS;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    for path in passport_crds::COMMITTED_CRD_FILES {
        let target = root.join(path);
        if let Err(err) = fs::write(&target, &yaml) {
            eprintln!("crdgen: cannot write {}: {err}", target.display());
            return ExitCode::FAILURE;
        }
        eprintln!("crdgen: wrote {path}");
    }
    ExitCode::SUCCESS
}
