use serde_json::{Value, json};

use super::*;

const ROLE: &str = "arn:aws:iam::123456789012:role/passport";

fn at(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

fn ids(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn scope<'a>(instance_ids: &'a [String], cidrs: &'a [String]) -> Scope<'a> {
    Scope {
        role_arn: ROLE,
        region: "eu-west-1",
        session_name: "passport-0b5d2f0e-rs-5f3a9c21-0a1b2c3d",
        instance_ids,
        source_cidrs: cidrs,
        expires_at: at("2030-01-02T03:04:05.678Z"),
    }
}

fn parsed(scope: &Scope<'_>) -> Value {
    serde_json::from_str(&session_policy(scope).expect("policy")).expect("policy is JSON")
}

#[test]
fn example_policy_without_source_cidrs() {
    let targets = ids(&["i-0123456789abcdef0", "mi-0123456789abcdef1"]);
    let policy = parsed(&scope(&targets, &[]));
    let before = json!({ "aws:CurrentTime": "2030-01-02T03:04:05Z" });
    assert_eq!(
        policy,
        json!({
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "StartSessionOnTargets",
                    "Effect": "Allow",
                    "Action": ["ssm:StartSession"],
                    "Resource": [
                        "arn:aws:ec2:eu-west-1:123456789012:instance/i-0123456789abcdef0",
                        "arn:aws:ssm:eu-west-1:123456789012:managed-instance/mi-0123456789abcdef1",
                        "arn:aws:ssm:eu-west-1:123456789012:document/Passport-SSH",
                        "arn:aws:ssm:eu-west-1:123456789012:document/Passport-RDP",
                    ],
                    "Condition": {
                        "Bool": { "ssm:SessionDocumentAccessCheck": "true" },
                        "DateLessThan": before,
                    },
                },
                {
                    "Sid": "OwnSessions",
                    "Effect": "Allow",
                    "Action": ["ssm:TerminateSession", "ssm:ResumeSession"],
                    "Resource": [
                        "arn:aws:ssm:eu-west-1:123456789012:session/passport-0b5d2f0e-rs-5f3a9c21-0a1b2c3d-*"
                    ],
                    "Condition": { "DateLessThan": before },
                },
            ],
        })
    );
}

#[test]
fn source_cidrs_restrict_every_statement() {
    let targets = ids(&["i-0123456789abcdef0"]);
    let cidrs = ids(&["203.0.113.7/32", "2001:db8::/64"]);
    let policy = parsed(&scope(&targets, &cidrs));
    let statements = policy["Statement"].as_array().expect("statements");
    assert_eq!(statements.len(), 2);
    for statement in statements {
        assert_eq!(
            statement["Condition"]["IpAddress"],
            json!({ "aws:SourceIp": ["203.0.113.7/32", "2001:db8::/64"] })
        );
        assert_eq!(
            statement["Condition"]["DateLessThan"]["aws:CurrentTime"],
            "2030-01-02T03:04:05Z"
        );
    }
}

#[test]
fn nothing_but_session_actions_and_no_wildcard_targets() {
    let targets = ids(&["i-0123456789abcdef0"]);
    let policy = parsed(&scope(&targets, &[]));
    for statement in policy["Statement"].as_array().expect("statements") {
        assert_eq!(statement["Effect"], "Allow");
        for action in statement["Action"].as_array().expect("actions") {
            let action = action.as_str().expect("action");
            assert!(
                ["ssm:StartSession", "ssm:TerminateSession", "ssm:ResumeSession"].contains(&action),
                "{action}"
            );
        }
        for resource in statement["Resource"].as_array().expect("resources") {
            let resource = resource.as_str().expect("resource");
            // The only wildcard: the random part of session ids after our own session name.
            assert!(
                !resource.contains('*')
                    || resource.ends_with(":session/passport-0b5d2f0e-rs-5f3a9c21-0a1b2c3d-*"),
                "{resource}"
            );
        }
    }
}

#[test]
fn partition_comes_from_the_role() {
    let targets = ids(&["i-0123456789abcdef0"]);
    let mut s = scope(&targets, &[]);
    s.role_arn = "arn:aws-cn:iam::123456789012:role/path/passport";
    s.region = "cn-north-1";
    let text = session_policy(&s).expect("policy");
    assert!(text.contains("arn:aws-cn:ec2:cn-north-1:123456789012:instance/i-0123456789abcdef0"));
    assert!(text.contains("arn:aws-cn:ssm:cn-north-1:123456789012:document/Passport-SSH"));
    assert!(!text.contains("AWS-Start"), "no stock session document: {text}");
    assert!(!text.contains("arn:aws:"));
}

#[test]
fn bad_role_arns_are_refused() {
    for bad in [
        "",
        "arn:aws:iam::12345678901:role/x",
        "arn:aws:iam::123456789012:user/x",
        "arn:aws:sts::123456789012:role/x",
        "arn:aws:iam:us-east-1:123456789012:role/x",
    ] {
        assert_eq!(
            partition_and_account(bad),
            Err(PolicyError::RoleArn(bad.to_owned())),
            "{bad}"
        );
    }
    assert_eq!(partition_and_account(ROLE), Ok(("aws", "123456789012")));
}

#[test]
fn too_many_targets_are_refused_with_the_limit() {
    let many: Vec<String> = (0..50).map(|i| format!("i-{i:017x}")).collect();
    let cidrs = ids(&["203.0.113.7/32"]);
    let err = session_policy(&scope(&many, &cidrs)).expect_err("50 instances do not fit");
    let PolicyError::TooLarge { targets, max_targets } = err.clone() else {
        panic!("{err}")
    };
    assert_eq!(targets, 50);
    assert!(max_targets >= 15, "{max_targets}");
    // The limit is exact: that many fit, one more does not.
    let fit = session_policy(&scope(&many[..max_targets], &cidrs)).expect("fits");
    assert!(fit.len() <= MAX_POLICY_CHARS);
    assert!(session_policy(&scope(&many[..=max_targets], &cidrs)).is_err());
    assert!(
        err.to_string()
            .contains(&format!("at most {max_targets} instances"))
    );
}

#[test]
fn session_names_follow_sts_rules() {
    let serial = 0x0a1b_2c3d_ffff_ffff;
    assert_eq!(
        role_session_name("0b5d2f0e-6d0c-4b43", "rs-5f3a9c21", serial),
        "passport-0b5d2f0e-rs-5f3a9c21-0a1b2c3d"
    );
    let odd = role_session_name("0b5d2f0e-6d0c-4b43", "rs 5f/3a:9c21", serial);
    assert_eq!(odd, "passport-0b5d2f0e-rs-5f-3a-9c21-0a1b2c3d");
    let long = role_session_name("0b5d2f0e-6d0c-4b43", &"x".repeat(200), serial);
    assert_eq!(long.len(), MAX_SESSION_NAME);
    assert!(long.ends_with("-0a1b2c3d"));
    let valid = |c: char| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c);
    assert!(odd.chars().all(valid) && long.chars().all(valid));
}
