//! Argument parsing: every verb and its flags, as a person types them.

use clap::{CommandFactory, Parser, error::ErrorKind};
use passport_crds::KeyType;

use super::{Cli, KeyTypeArg, Verb};
use crate::ui::format::OutputFormat;

/// The command line `kubectl-passport ARGS…`, which must parse.
pub(crate) fn parse(args: &[&str]) -> Cli {
    let argv = std::iter::once("kubectl-passport").chain(args.iter().copied());
    match Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(err) => panic!("{args:?} should parse: {err}"),
    }
}

fn error(args: &[&str]) -> clap::Error {
    let mut argv = vec!["kubectl-passport"];
    argv.extend_from_slice(args);
    match Cli::try_parse_from(argv) {
        Ok(cli) => panic!("{args:?} should not parse: {cli:?}"),
        Err(err) => err,
    }
}

#[test]
fn the_command_definition_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn global_flags_go_anywhere() {
    let cli = parse(&["--context", "prod", "list", "-n", "team-a", "-o", "json"]);
    assert_eq!(cli.global.context.as_deref(), Some("prod"));
    assert_eq!(cli.global.namespace.as_deref(), Some("team-a"));
    assert_eq!(cli.global.output, OutputFormat::Json);
    assert!(matches!(cli.command, Verb::List));
    let cli = parse(&["whoami", "--kubeconfig", "/tmp/k", "--output", "yaml"]);
    assert_eq!(
        cli.global.kubeconfig.as_deref(),
        Some(std::path::Path::new("/tmp/k"))
    );
    assert_eq!(cli.global.output, OutputFormat::Yaml);
    assert_eq!(parse(&["list"]).global.output, OutputFormat::Table);
    assert_eq!(error(&["list", "-o", "wide"]).kind(), ErrorKind::InvalidValue);
}

#[test]
fn request_flags() {
    let cli = parse(&[
        "request",
        "db",
        "--instance",
        "i-0123456789abcdef0",
        "--instance",
        "i-0fedcba9876543210",
        "--reason",
        "CPU alarm",
        "--ticket",
        "INC-1",
        "--duration",
        "2h",
        "--account",
        "prod",
        "--source-cidr",
        "203.0.113.7/32",
        "--wait",
        "--timeout",
        "10m",
    ]);
    let Verb::Request(args) = cli.command else {
        panic!("not request")
    };
    assert_eq!(args.name.as_deref(), Some("db"));
    assert_eq!(args.instances, vec!["i-0123456789abcdef0", "i-0fedcba9876543210"]);
    assert_eq!(args.duration.text, "2h");
    assert_eq!(args.timeout.value.as_secs(), 600);
    assert!(args.wait);
    let Verb::Request(args) =
        parse(&["request", "--instance", "i-0123456789abcdef0", "--reason", "r"]).command
    else {
        panic!("not request")
    };
    assert_eq!(
        (args.duration.text.as_str(), args.timeout.value.as_secs()),
        ("1h", 300)
    );
    assert!(!args.wait && !args.dry_run && args.name.is_none());
    let dry = [
        "request",
        "--instance",
        "i-0123456789abcdef0",
        "--reason",
        "r",
        "--dry-run",
    ];
    assert!(matches!(parse(&dry).command, Verb::Request(args) if args.dry_run));
    assert_eq!(
        error(&[&dry[..], &["--wait"]].concat()).kind(),
        ErrorKind::ArgumentConflict
    );
    assert_eq!(
        error(&["request", "--reason", "r"]).kind(),
        ErrorKind::MissingRequiredArgument
    );
    assert_eq!(
        error(&["request", "--instance", "i-0123456789abcdef0"]).kind(),
        ErrorKind::MissingRequiredArgument
    );
    let bad = error(&[
        "request",
        "--instance",
        "i-0123456789abcdef0",
        "--reason",
        "r",
        "--duration",
        "1d",
    ]);
    assert_eq!(bad.kind(), ErrorKind::ValueValidation);
    assert!(
        bad.to_string().contains("use Go syntax such as 30m, 1h or 1h30m"),
        "{bad}"
    );
}

#[test]
fn review_and_change_verbs() {
    let Verb::Approve(args) = parse(&["approve", "db", "--comment", "ok"]).command else {
        panic!("not approve")
    };
    assert_eq!((args.name.as_str(), args.comment.as_deref()), ("db", Some("ok")));
    assert_eq!(error(&["deny", "db"]).kind(), ErrorKind::MissingRequiredArgument);
    let Verb::Extend(args) = parse(&["extend", "db", "--by", "30m"]).command else {
        panic!("not extend")
    };
    assert_eq!(args.by.map(|d| d.value.as_secs()), Some(1800));
    assert_eq!(
        error(&["extend", "db"]).kind(),
        ErrorKind::MissingRequiredArgument
    );
    assert_eq!(
        error(&["extend", "db", "--by", "1m", "--to", "2h"]).kind(),
        ErrorKind::ArgumentConflict
    );
    assert!(matches!(parse(&["complete", "db"]).command, Verb::Complete(a) if a.name == "db"));
    assert!(matches!(parse(&["logbook", "db"]).command, Verb::Logbook(a) if a.name == "db"));
    assert!(matches!(parse(&["get", "db"]).command, Verb::Get(a) if a.name == "db"));
}

#[test]
fn connect_takes_an_instance_key_type_direct_endpoints_and_ssh_arguments() {
    let cli = parse(&[
        "connect",
        "db",
        "i-0123456789abcdef0",
        "--key-type",
        "rsa",
        "--direct",
        "i-0123456789abcdef0=127.0.0.1:2222",
        "--",
        "-L",
        "8080:localhost:80",
        "uptime",
    ]);
    let Verb::Connect(args) = cli.command else {
        panic!("not connect")
    };
    assert_eq!(args.instance.as_deref(), Some("i-0123456789abcdef0"));
    assert_eq!(args.tunnel.key_type, KeyTypeArg(KeyType::Rsa));
    assert_eq!(args.tunnel.direct[0].address, "127.0.0.1:2222");
    assert_eq!(args.ssh_args, vec!["-L", "8080:localhost:80", "uptime"]);
    let bad = error(&["connect", "db", "--key-type", "dsa"]);
    assert_eq!(bad.kind(), ErrorKind::InvalidValue);
    let line = crate::ui::errors::clap_line(&bad.render().to_string());
    assert!(
        line.contains("invalid value 'dsa'") && line.contains("ed25519, rsa"),
        "{line}"
    );
    assert!(!line.contains('\n'));
}

#[test]
fn ssh_config_and_the_hidden_proxy() {
    let Verb::SshConfig(args) = parse(&["ssh-config"]).command else {
        panic!("not ssh-config")
    };
    assert!(args.name.is_none());
    assert_eq!(args.tunnel.key_type, KeyTypeArg(KeyType::Ed25519));
    let cli = parse(&[
        "--context",
        "c",
        "-n",
        "ns",
        "proxy",
        "--prepare",
        "db",
        "i-0123456789abcdef0",
        "22",
        "--key-type",
        "rsa",
    ]);
    let Verb::Proxy(args) = cli.command else {
        panic!("not proxy")
    };
    assert!(args.prepare);
    assert_eq!((args.instance.as_str(), args.port), ("i-0123456789abcdef0", 22));
    let help = Cli::command().render_help().to_string();
    assert!(!help.contains("proxy"), "proxy is hidden: {help}");
    for verb in [
        "request",
        "list",
        "get",
        "approve",
        "deny",
        "extend",
        "complete",
        "connect",
        "ssh-config",
        "logbook",
        "whoami",
        "version",
        "completion",
    ] {
        assert!(help.contains(verb), "{verb} missing from help");
    }
}

#[test]
fn completion_shells() {
    assert!(matches!(
        parse(&["completion", "zsh"]).command,
        Verb::Completion(_)
    ));
    assert_eq!(error(&["completion", "tcsh"]).kind(), ErrorKind::InvalidValue);
}
