//! The cache directory: where it is, private directories (0700), atomic owner-only writes, and path
//! components that are safe whatever a context or request is called.

use std::{
    fs::{self, DirBuilder, OpenOptions},
    io::Write,
    os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, anyhow};

/// `$XDG_CACHE_HOME/passport`, else `~/.cache/passport`.
pub fn cache_root() -> Result<PathBuf> {
    let xdg = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let base = match xdg {
        Some(dir) => dir,
        None => std::env::var_os("HOME")
            .map(|home| PathBuf::from(home).join(".cache"))
            .ok_or_else(|| anyhow!("neither XDG_CACHE_HOME nor HOME is set: cannot place keys"))?,
    };
    Ok(base.join("passport"))
}

/// `<cache>/<context>/<namespace>`: everything kept for one namespace of one context.
pub fn namespace_dir(context: &str, namespace: &str) -> Result<PathBuf> {
    Ok(cache_root()?
        .join(path_component(context))
        .join(path_component(namespace)))
}

/// Creates `dir` and its missing parents with mode 0700, and makes sure `dir` itself is 0700.
pub fn private_dir(dir: &Path) -> Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("restricting {}", dir.display()))
}

/// Writes `contents` to `path` atomically with permissions `mode`: a reader sees the old file or the
/// new one, never half of one.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().context("file without a directory")?;
    let name = path.file_name().context("file without a name")?.to_string_lossy();
    let temp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&temp)
        .with_context(|| format!("writing {}", temp.display()))?;
    file.write_all(contents)?;
    file.sync_all()?;
    fs::set_permissions(&temp, fs::Permissions::from_mode(mode))?;
    fs::rename(&temp, path).with_context(|| format!("writing {}", path.display()))
}

/// One safe path component: letters, digits, `.`, `_`, `@`, `-` kept, anything else `_`; never
/// empty, `.` or `..`.
pub fn path_component(text: &str) -> String {
    let out: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    match out.as_str() {
        "" | "." | ".." => format!("_{out}"),
        _ => out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_are_private() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let sub = dir.path().join("a/b");
        private_dir(&sub)?;
        assert_eq!(fs::metadata(&sub)?.permissions().mode() & 0o777, 0o700);
        let file = sub.join("secret");
        write_atomic(&file, b"one", 0o600)?;
        write_atomic(&file, b"two", 0o600)?;
        assert_eq!(fs::read_to_string(&file)?, "two");
        assert_eq!(fs::metadata(&file)?.permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read_dir(&sub)?.count(), 1, "no temporary file left");
        Ok(())
    }

    #[test]
    fn path_components_are_safe() {
        assert_eq!(path_component("alice@passport-local"), "alice@passport-local");
        assert_eq!(
            path_component("arn:aws:eks:eu-west-1:1:cluster/prod"),
            "arn_aws_eks_eu-west-1_1_cluster_prod"
        );
        assert_eq!(path_component(".."), "_..");
        assert_eq!(path_component(""), "_");
    }
}
