//! passport's own Session Manager documents, which the operator ensures in every account it acts in.
//!
//! The stock documents reach too far: `AWS-StartPortForwardingSession` forwards to any port the
//! caller names, and `AWS-StartSSHSession` to any port too. passport's documents fix the port in
//! their properties, so scoped credentials that may start only these two documents reach SSH on
//! port 22 and RDP on port 3389 and nothing else on the instance.
//!
//! They are account-owned (`arn:…:ssm:<region>:<account>:document/<name>`), so the session policy
//! names them with the account id.

use serde_json::{Value, json};

/// SSH through the session's standard streams (ssh's ProxyCommand) to port [`SSH_PORT`].
pub const SSH_DOCUMENT: &str = "Passport-SSH";
/// A local port forwarded to RDP ([`RDP_PORT`]); the workstation port is the only parameter.
pub const RDP_DOCUMENT: &str = "Passport-RDP";
pub const SSH_PORT: u16 = 22;
pub const RDP_PORT: u16 = 3389;
/// The one parameter of [`RDP_DOCUMENT`]: the port the session-manager-plugin listens on.
pub const LOCAL_PORT_PARAMETER: &str = "localPortNumber";

/// A Session Manager document as `CreateDocument` takes it (`DocumentType` `Session`, JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct SessionDocument {
    pub name: &'static str,
    pub content: Value,
}

impl SessionDocument {
    /// True when `stored` (the `Content` SSM holds) is this document: compared as JSON, so key
    /// order and whitespace do not matter.
    pub fn matches(&self, stored: &str) -> bool {
        serde_json::from_str::<Value>(stored).is_ok_and(|value| value == self.content)
    }
}

/// Both documents, in the order they are ensured.
pub fn session_documents() -> [SessionDocument; 2] {
    [ssh_document(), rdp_document()]
}

fn ssh_document() -> SessionDocument {
    SessionDocument {
        name: SSH_DOCUMENT,
        content: json!({
            "schemaVersion": "1.0",
            "description": format!(
                "passport: SSH to port {SSH_PORT} of the instance over the session's streams; no other port"
            ),
            "sessionType": "Port",
            "parameters": {},
            "properties": { "portNumber": SSH_PORT.to_string() },
        }),
    }
}

fn rdp_document() -> SessionDocument {
    SessionDocument {
        name: RDP_DOCUMENT,
        content: json!({
            "schemaVersion": "1.0",
            "description": format!(
                "passport: forward a local port to RDP (port {RDP_PORT}) on the instance; no other port"
            ),
            "sessionType": "Port",
            "parameters": {
                LOCAL_PORT_PARAMETER: {
                    "type": "String",
                    "description": "The port the workstation listens on (0: any free port)",
                    "allowedPattern": "^([0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$",
                    "default": "0",
                },
            },
            "properties": {
                "portNumber": RDP_PORT.to_string(),
                "type": "LocalPortForwarding",
                LOCAL_PORT_PARAMETER: format!("{{{{ {LOCAL_PORT_PARAMETER} }}}}"),
            },
        }),
    }
}

/// The ARN `ssm:StartSession` checks for an account-owned document.
pub fn document_arn(partition: &str, region: &str, account: &str, document: &str) -> String {
    format!("arn:{partition}:ssm:{region}:{account}:document/{document}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_reaches_port_22_over_the_streams_and_takes_no_parameter() {
        let doc = ssh_document();
        assert_eq!(doc.content["sessionType"], "Port");
        assert_eq!(doc.content["properties"], json!({"portNumber": "22"}));
        assert_eq!(doc.content["parameters"], json!({}));
    }

    #[test]
    fn rdp_forwards_a_local_port_to_3389_only() {
        let doc = rdp_document();
        let properties = &doc.content["properties"];
        assert_eq!(properties["portNumber"], "3389");
        assert_eq!(properties["type"], "LocalPortForwarding");
        assert_eq!(properties["localPortNumber"], "{{ localPortNumber }}");
        let parameters = doc.content["parameters"].as_object().expect("parameters");
        assert_eq!(parameters.keys().collect::<Vec<_>>(), ["localPortNumber"]);
    }

    #[test]
    fn the_local_port_pattern_takes_ports_and_nothing_else() {
        let doc = rdp_document();
        let pattern = doc.content["parameters"]["localPortNumber"]["allowedPattern"]
            .as_str()
            .expect("pattern");
        let re = regex_lite::Regex::new(pattern).expect("regex");
        for good in ["0", "22", "3389", "50000", "65535"] {
            assert!(re.is_match(good), "{good}");
        }
        for bad in ["65536", "70000", "-1", "1 2", "22;rm", ""] {
            assert!(!re.is_match(bad), "{bad}");
        }
    }

    #[test]
    fn stored_content_matches_whatever_its_formatting() {
        let doc = ssh_document();
        let pretty = serde_json::to_string_pretty(&doc.content).expect("json");
        assert!(doc.matches(&pretty));
        assert!(!doc.matches(&pretty.replace("\"22\"", "\"2222\"")));
        assert!(!doc.matches("not json"));
    }

    #[test]
    fn account_owned_arns_carry_the_account() {
        assert_eq!(
            document_arn("aws", "eu-west-1", "123456789012", SSH_DOCUMENT),
            "arn:aws:ssm:eu-west-1:123456789012:document/Passport-SSH"
        );
    }
}
