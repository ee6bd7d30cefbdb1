//! How ssh is pointed at passport: the ProxyCommand line, quoting for the shell ssh runs it with and
//! for ssh's own `%` tokens, and the options `connect` passes on ssh's command line.

use std::path::Path;

use passport_crds::KeyType;

use super::direct::DirectEndpoint;
use crate::workstation::key_dir::KeyDir;

/// Everything the ProxyCommand needs to find the request again, from any shell, at any later time.
#[derive(Debug, Clone)]
pub struct ProxySpec<'a> {
    /// Absolute path of this binary.
    pub exe: &'a Path,
    pub kubeconfig: Option<&'a Path>,
    pub context: &'a str,
    pub namespace: &'a str,
    pub request: &'a str,
    pub key_type: KeyType,
    pub direct: &'a [DirectEndpoint],
}

impl ProxySpec<'_> {
    /// `<exe> [--kubeconfig F] --context C -n NS proxy [--prepare] REQUEST %h %p [--key-type rsa]
    /// [--direct I=H:P]…`, each word quoted for the shell and `%`-escaped for ssh.
    pub fn command(&self, prepare: bool) -> String {
        let mut words: Vec<String> = vec![self.exe.to_string_lossy().into_owned()];
        if let Some(kubeconfig) = self.kubeconfig {
            words.push("--kubeconfig".into());
            words.push(kubeconfig.to_string_lossy().into_owned());
        }
        words.extend(["--context".into(), self.context.to_owned()]);
        words.extend(["-n".into(), self.namespace.to_owned(), "proxy".into()]);
        if prepare {
            words.push("--prepare".into());
        }
        words.push(self.request.to_owned());
        let mut line: Vec<String> = words.iter().map(|w| ssh_escape(&shell_quote(w))).collect();
        line.extend(["%h".into(), "%p".into()]);
        if self.key_type != KeyType::default() {
            line.extend(["--key-type".into(), self.key_type.to_string()]);
        }
        for direct in self.direct {
            line.push("--direct".into());
            line.push(ssh_escape(&shell_quote(&direct.to_string())));
        }
        line.join(" ")
    }
}

/// Quotes a word for a POSIX shell, leaving plain words as they are.
pub fn shell_quote(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_./:@=,+-".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// Escapes ssh's `%` tokens.
pub fn ssh_escape(text: &str) -> String {
    text.replace('%', "%%")
}

/// A path as an ssh_config value: `%`-escaped, double-quoted when it has blanks.
pub fn config_path(path: &Path) -> String {
    let text = ssh_escape(&path.to_string_lossy());
    if text.chars().any(char::is_whitespace) {
        format!("\"{text}\"")
    } else {
        text
    }
}

/// What an RSA key's host entry adds to ssh's `PubkeyAcceptedAlgorithms`: the `ssh-rsa` certificate
/// type, which OpenSSH 8.8+ clients no longer offer by default, so that a server older than OpenSSH
/// 7.2 (no `server-sig-algs`, no SHA-2 RSA signatures) gets the certificate whose CA signature is
/// `ssh-rsa`. Newer servers announce rsa-sha2-512, and ssh then signs with that for either
/// certificate; each server checks the CA signature against its own `CASignatureAlgorithms`.
pub const RSA_SHA1_PUBKEY_ALGORITHMS: &str = "+ssh-rsa-cert-v01@openssh.com";

/// A command as the double-quoted argument of `Match exec`.
pub fn match_exec_arg(command: &str) -> String {
    format!("\"{}\"", command.replace('\\', "\\\\").replace('"', "\\\""))
}

/// ssh's arguments for `connect`: key, certificate (for RSA, then the `ssh-rsa`-signed one), pinned
/// host keys under the instance id, the ProxyCommand, then `user@instance` and whatever the user
/// added after `--`.
pub fn connect_args(
    keys: &KeyDir,
    instance: &str,
    username: &str,
    proxy: &str,
    extra: &[String],
) -> Vec<String> {
    let option = |name: &str, value: String| ["-o".to_owned(), format!("{name}={value}")];
    let mut args = vec!["-i".to_owned(), keys.private_key().to_string_lossy().into_owned()];
    args.extend(option("CertificateFile", config_path(&keys.certificate())));
    if keys.key_type == KeyType::Rsa {
        args.extend(option("CertificateFile", config_path(&keys.certificate_sha1())));
        args.extend(option(
            "PubkeyAcceptedAlgorithms",
            RSA_SHA1_PUBKEY_ALGORITHMS.into(),
        ));
    }
    args.extend(option("UserKnownHostsFile", config_path(&keys.known_hosts())));
    args.extend(option("HostKeyAlias", instance.to_owned()));
    args.extend(option("StrictHostKeyChecking", "yes".into()));
    args.extend(option("IdentitiesOnly", "yes".into()));
    args.extend(option("ProxyCommand", proxy.to_owned()));
    args.push(format!("{username}@{instance}"));
    args.extend(extra.iter().cloned());
    args
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn spec<'a>(exe: &'a Path, direct: &'a [DirectEndpoint], key_type: KeyType) -> ProxySpec<'a> {
        ProxySpec {
            exe,
            kubeconfig: None,
            context: "alice@passport-local",
            namespace: "team-a",
            request: "db-incident",
            key_type,
            direct,
        }
    }

    #[test]
    fn proxy_command_names_context_namespace_and_request() {
        let exe = PathBuf::from("/usr/local/bin/kubectl-passport");
        let line = spec(&exe, &[], KeyType::Ed25519).command(false);
        assert_eq!(
            line,
            "/usr/local/bin/kubectl-passport --context alice@passport-local -n team-a proxy db-incident %h %p"
        );
        let direct = vec!["i-0123456789abcdef0=127.0.0.1:2222".parse().expect("direct")];
        let kubeconfig = PathBuf::from("/home/al ice/kube config");
        let mut with_all = spec(&exe, &direct, KeyType::Rsa);
        with_all.kubeconfig = Some(&kubeconfig);
        assert_eq!(
            with_all.command(true),
            "/usr/local/bin/kubectl-passport --kubeconfig '/home/al ice/kube config' --context alice@passport-local \
             -n team-a proxy --prepare db-incident %h %p --key-type rsa --direct i-0123456789abcdef0=127.0.0.1:2222"
        );
    }

    #[test]
    fn quoting_for_shell_and_ssh_tokens() {
        assert_eq!(shell_quote("plain-word_1.2"), "plain-word_1.2");
        assert_eq!(shell_quote("it's here"), "'it'\\''s here'");
        assert_eq!(shell_quote(""), "''");
        let exe = PathBuf::from("/opt/100%/kubectl-passport");
        let line = spec(&exe, &[], KeyType::Ed25519).command(false);
        assert!(line.starts_with("'/opt/100%%/kubectl-passport' "), "{line}");
        assert!(line.ends_with(" %h %p"), "{line}");
        assert_eq!(config_path(Path::new("/a b/%c")), "\"/a b/%%c\"");
        assert_eq!(config_path(Path::new("/a/b")), "/a/b");
        assert_eq!(match_exec_arg("x \"y\" \\z"), "\"x \\\"y\\\" \\\\z\"");
    }

    #[test]
    fn connect_passes_pinned_keys_and_extra_arguments() {
        let keys = KeyDir {
            dir: PathBuf::from("/c/passport/ctx/ns/db"),
            key_type: KeyType::Rsa,
        };
        let args = connect_args(
            &keys,
            "i-0123456789abcdef0",
            "rs-1",
            "proxy %h %p",
            &["-N".into(), "true".into()],
        );
        assert_eq!(
            args,
            vec![
                "-i",
                "/c/passport/ctx/ns/db/id_rsa",
                "-o",
                "CertificateFile=/c/passport/ctx/ns/db/id_rsa-cert.pub",
                "-o",
                "CertificateFile=/c/passport/ctx/ns/db/id_rsa-sha1-cert.pub",
                "-o",
                "PubkeyAcceptedAlgorithms=+ssh-rsa-cert-v01@openssh.com",
                "-o",
                "UserKnownHostsFile=/c/passport/ctx/ns/db/known_hosts",
                "-o",
                "HostKeyAlias=i-0123456789abcdef0",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "ProxyCommand=proxy %h %p",
                "rs-1@i-0123456789abcdef0",
                "-N",
                "true",
            ]
        );
    }
}
