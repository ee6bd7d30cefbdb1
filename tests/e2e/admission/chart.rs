//! The Helm chart's admission policy and RBAC are deploy/'s, text for text: rendering a chart template
//! with the release namespace `passport-system` and the chart's default values must give the deploy/
//! file, less its Namespace (the chart installs into the release namespace). Edit both, or neither.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail, ensure};

use super::repo_file;

/// `(deploy file, chart template)` pairs that must agree.
const COPIES: [(&str, &str); 2] = [
    (
        "deploy/admission.yaml",
        "charts/passport/templates/admission.yaml",
    ),
    ("deploy/rbac.yaml", "charts/passport/templates/rbac.yaml"),
];

const RELEASE_NAMESPACE: &str = "{{ .Release.Namespace }}";

pub async fn templates_match_deploy() -> Result<()> {
    let values = identity_values()?;
    let mut differences = Vec::new();
    for (deploy, chart) in COPIES {
        let expected = without_namespaces(&read(deploy)?);
        let rendered = render(&read(chart)?, &values).with_context(|| format!("rendering {chart}"))?;
        if let Some(difference) = first_difference(&expected, &rendered) {
            differences.push(format!("{chart} differs from {deploy}: {difference}"));
        }
    }
    ensure!(differences.is_empty(), "{}", differences.join("\n"));
    Ok(())
}

fn read(file: &str) -> Result<String> {
    std::fs::read_to_string(repo_file(file)).with_context(|| format!("reading {file}"))
}

/// The chart's `identity` values: the admission policy's settings.
fn identity_values() -> Result<BTreeMap<String, String>> {
    let values: serde_yaml::Value = serde_yaml::from_str(&read("charts/passport/values.yaml")?)?;
    let identity = values
        .get("identity")
        .context("values.yaml has no identity section")?;
    serde_yaml::from_value(identity.clone()).context("identity values must be strings")
}

/// The template with the release namespace `passport-system` and `{{ .Values.identity.K | quote }}`
/// replaced by K's value, quoted. Anything else Helm would render is refused: this check would not
/// understand it.
fn render(template: &str, identity: &BTreeMap<String, String>) -> Result<String> {
    let mut text = template.replace(RELEASE_NAMESPACE, "passport-system");
    for (key, value) in identity {
        let placeholder = format!("{{{{ .Values.identity.{key} | quote }}}}");
        text = text.replace(&placeholder, &serde_json::to_string(value)?);
    }
    if let Some(at) = text.find("{{") {
        let line = text[at..].lines().next().unwrap_or_default();
        bail!("a template action this check cannot render: {line}");
    }
    Ok(text)
}

/// The manifest without its Namespace documents.
fn without_namespaces(manifest: &str) -> String {
    manifest
        .split("\n---\n")
        .filter(|document| !document.lines().any(|line| line == "kind: Namespace"))
        .collect::<Vec<_>>()
        .join("\n---\n")
}

/// Where two texts first differ, by line, or `None` when they are the same.
fn first_difference(expected: &str, actual: &str) -> Option<String> {
    let (mut expected_lines, mut actual_lines) = (expected.lines(), actual.lines());
    for number in 1.. {
        match (expected_lines.next(), actual_lines.next()) {
            (None, None) => return None,
            (wanted, got) if wanted != got => {
                return Some(format!(
                    "rendered line {number} is {got:?}, deploy/ has {wanted:?}"
                ));
            }
            _ => {}
        }
    }
    None
}
