//! How passport ships, built as a release would build it and used as a user would: the operator's
//! image (scripts/image.sh, buildah, no Docker daemon) runs its entrypoint as its non-root user from
//! the image's own filesystem, under the name the Helm chart pulls; the krew manifest
//! (scripts/krew-release.sh) passes krew's validator and installs offline, and the installed plugin
//! prints its version and commit. Both package the debug binaries the suite already builds (the
//! release build is what the scripts do by default). Need no control plane.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail, ensure};
use passport_tests::binaries::workspace_binary;
use serde::Deserialize;

use crate::{E2e, alone};

pub fn trials() -> Vec<E2e> {
    vec![
        alone(
            "packaging::image_runs_the_operator_as_non_root_under_the_charts_name",
            || async { image_runs_the_operator_as_non_root_under_the_charts_name() },
        ),
        alone(
            "packaging::krew_manifest_validates_installs_offline_and_the_plugin_runs",
            || async { krew_manifest_validates_installs_offline_and_the_plugin_runs() },
        ),
    ]
}

const OPERATOR_ENTRYPOINT: &str = "/usr/local/bin/passport-operator";
const NON_ROOT_USER: &str = "65532:65532";
const OCI_LABELS: [&str; 6] = [
    "org.opencontainers.image.source",
    "org.opencontainers.image.version",
    "org.opencontainers.image.revision",
    "org.opencontainers.image.title",
    "org.opencontainers.image.description",
    "org.opencontainers.image.licenses",
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `command`; its stdout, or an error with its stderr.
fn stdout_of(command: &mut Command) -> Result<String> {
    let out = command.output().with_context(|| format!("running {command:?}"))?;
    if !out.status.success() {
        bail!(
            "{command:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// The image the chart deploys by default: `image.repository`, and `image.tag` or the appVersion.
fn charts_default_image() -> Result<String> {
    #[derive(Deserialize)]
    struct Values {
        image: ImageValues,
    }
    #[derive(Deserialize)]
    struct ImageValues {
        repository: String,
        #[serde(default)]
        tag: String,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Chart {
        app_version: String,
    }
    let chart = repo().join("charts/passport");
    let values: Values = serde_yaml::from_str(&std::fs::read_to_string(chart.join("values.yaml"))?)?;
    let meta: Chart = serde_yaml::from_str(&std::fs::read_to_string(chart.join("Chart.yaml"))?)?;
    let tag = Some(values.image.tag)
        .filter(|t| !t.is_empty())
        .unwrap_or(meta.app_version);
    Ok(format!("{}:{tag}", values.image.repository))
}

/// The part of `buildah inspect --type image` this test reads.
#[derive(Deserialize)]
struct Inspected {
    #[serde(rename = "OCIv1")]
    oci: OciImage,
}

#[derive(Deserialize)]
struct OciImage {
    config: OciConfig,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct OciConfig {
    #[serde(default)]
    user: String,
    #[serde(default)]
    entrypoint: Vec<String>,
    #[serde(default)]
    labels: std::collections::BTreeMap<String, String>,
}

fn image_runs_the_operator_as_non_root_under_the_charts_name() -> Result<()> {
    let operator = workspace_binary("passport-operator", "passport-operator")?;
    let storage = tempfile::tempdir()?;
    let built = stdout_of(
        Command::new("bash")
            .arg(repo().join("scripts/image.sh"))
            .arg("--binary")
            .arg(&operator)
            .arg("--storage")
            .arg(storage.path()),
    )?;
    let image = built.trim();
    let expected = charts_default_image()?;
    ensure!(
        image == expected,
        "scripts/image.sh builds {image} but the chart deploys {expected}"
    );
    let buildah = |args: &[&str]| {
        let root = storage.path();
        stdout_of(
            Command::new("buildah")
                .arg("--root")
                .arg(root.join("root"))
                .arg("--runroot")
                .arg(root.join("run"))
                .args(["--storage-driver", "vfs"])
                .args(args),
        )
    };
    let inspected: Inspected = serde_json::from_str(&buildah(&["inspect", "--type", "image", image])?)?;
    let config = inspected.oci.config;
    ensure!(config.user == NON_ROOT_USER, "image user {:?}", config.user);
    ensure!(
        config.entrypoint == [OPERATOR_ENTRYPOINT],
        "entrypoint {:?}",
        config.entrypoint
    );
    let version = env!("CARGO_PKG_VERSION");
    for label in OCI_LABELS {
        let value = config.labels.get(label).map(String::as_str).unwrap_or_default();
        ensure!(!value.is_empty(), "label {label} missing: {:?}", config.labels);
    }
    ensure!(config.labels["org.opencontainers.image.version"] == version);

    let container = buildah(&["from", image])?.trim().to_owned();
    let ran = (|| {
        let root = PathBuf::from(buildah(&["mount", &container])?.trim());
        let top: BTreeSet<String> = std::fs::read_dir(&root)?
            .map(|entry| Ok(entry?.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_>>()?;
        let expected_top = ["etc", "home", "lib", "lib64", "tmp", "usr"];
        ensure!(
            top == expected_top.map(str::to_owned).into(),
            "the image holds more than the operator needs: {top:?}"
        );
        // What a container runtime would run: the configured entrypoint, as the configured user,
        // with the image's filesystem as its root.
        stdout_of(
            Command::new("chroot")
                .arg(format!("--userspec={}", config.user))
                .arg(&root)
                .args(&config.entrypoint)
                .arg("--version"),
        )
    })();
    buildah(&["umount", &container])?;
    buildah(&["rm", &container])?;
    let said = ran?;
    ensure!(
        said.trim() == format!("passport-operator {version}"),
        "the entrypoint's --version said {said:?}"
    );
    let size = buildah(&["images", "--format", "{{.Size}}", image])?;
    println!("packaging: image {image} is {}", size.trim());
    Ok(())
}

fn krew_manifest_validates_installs_offline_and_the_plugin_runs() -> Result<()> {
    let plugin = workspace_binary("kubectl-passport", "kubectl-passport")?;
    let tools = passport_tests::tools::dir()?;
    let out = tempfile::tempdir()?;
    let manifest = stdout_of(
        Command::new("bash")
            .arg(repo().join("scripts/krew-release.sh"))
            .arg("--binary")
            .arg(&plugin)
            .arg("--out")
            .arg(out.path()),
    )?;
    let manifest = manifest.trim();
    let archive = out.path().join(format!(
        "kubectl-passport_v{}_linux_amd64.tar.gz",
        env!("CARGO_PKG_VERSION")
    ));
    ensure!(archive.exists(), "no {}", archive.display());
    stdout_of(Command::new(tools.join("validate-krew-manifest")).args([
        "-skip-install",
        "-manifest",
        manifest,
    ]))?;

    let krew_root = tempfile::tempdir()?;
    stdout_of(
        Command::new(tools.join("krew"))
            .env("KREW_ROOT", krew_root.path())
            .arg("install")
            .arg(format!("--manifest={manifest}"))
            .arg(format!("--archive={}", archive.display())),
    )?;
    let installed = krew_root.path().join("bin/kubectl-passport");
    let said = stdout_of(Command::new(&installed).arg("version").env_remove("KUBECONFIG"))?;
    let prefix = format!("kubectl-passport {} (commit ", env!("CARGO_PKG_VERSION"));
    let commit = said
        .strip_prefix(&prefix)
        .and_then(|rest| rest.strip_suffix(")\n"))
        .with_context(|| format!("`version` printed {said:?}, not one line of version and commit"))?;
    ensure!(
        commit == "unknown" || (commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "commit {commit:?}"
    );
    Ok(())
}
