//! Session Manager on the AWS SDK: passport's own session documents in each account
//! ([`passport_core::credentials::documents`]), and ending a request's open sessions at revocation.

use aws_sdk_ssm::{
    Client,
    error::ProvideErrorMetadata,
    types::{DocumentFormat, DocumentType, SessionFilter, SessionFilterKey, SessionState},
};
use passport_core::credentials::documents::{SessionDocument, session_documents};

use super::{AwsError, sdk::classify};

/// Creates each of passport's session documents that the account lacks, and brings back to
/// passport's content any that differ (a new default version), so a document edited by hand to
/// reach another port is put right.
pub async fn ensure_documents(ssm: &Client) -> Result<(), AwsError> {
    for document in session_documents() {
        ensure_document(ssm, &document).await?;
    }
    Ok(())
}

async fn ensure_document(ssm: &Client, document: &SessionDocument) -> Result<(), AwsError> {
    let content = document.content.to_string();
    let stored = ssm
        .get_document()
        .name(document.name)
        .document_format(DocumentFormat::Json)
        .send()
        .await;
    match stored {
        Ok(stored) if stored.content().is_some_and(|c| document.matches(c)) => Ok(()),
        Ok(_) => {
            let updated = ssm
                .update_document()
                .name(document.name)
                .content(&content)
                .document_format(DocumentFormat::Json)
                .document_version("$LATEST")
                .send()
                .await
                .map_err(classify)?;
            let version = updated
                .document_description()
                .and_then(|d| d.document_version())
                .ok_or_else(|| AwsError::Other("UpdateDocument answered without a version".into()))?;
            ssm.update_document_default_version()
                .name(document.name)
                .document_version(version)
                .send()
                .await
                .map_err(classify)?;
            tracing::info!(
                document = document.name,
                version,
                "session document put back to passport's content"
            );
            Ok(())
        }
        Err(err) if err.code() == Some("InvalidDocument") => {
            let created = ssm
                .create_document()
                .name(document.name)
                .content(&content)
                .document_type(DocumentType::Session)
                .document_format(DocumentFormat::Json)
                .send()
                .await;
            match created {
                // Another replica (or a second account sharing a region) created it meanwhile.
                Err(err) if err.code() == Some("DocumentAlreadyExists") => Ok(()),
                Err(err) => Err(classify(err)),
                Ok(_) => {
                    tracing::info!(document = document.name, "session document created");
                    Ok(())
                }
            }
        }
        Err(err) => Err(classify(err)),
    }
}

/// Ends every open session on `instance_id` whose owner is a role session named with
/// `session_prefix` (the request's: `passport-<uid8>-`); returns the ids of those it ended.
pub async fn terminate_sessions(
    ssm: &Client,
    instance_id: &str,
    session_prefix: &str,
) -> Result<Vec<String>, AwsError> {
    let filter = SessionFilter::builder()
        .key(SessionFilterKey::TargetId)
        .value(instance_id)
        .build()
        .map_err(|err| AwsError::Other(err.to_string()))?;
    let mut pages = ssm
        .describe_sessions()
        .state(SessionState::Active)
        .filters(filter)
        .into_paginator()
        .send();
    let mut ours = Vec::new();
    while let Some(page) = pages.next().await {
        for session in page.map_err(classify)?.sessions() {
            let owned = session
                .owner()
                .is_some_and(|owner| started_by(owner, session_prefix));
            if let (Some(id), true) = (session.session_id(), owned) {
                ours.push(id.to_owned());
            }
        }
    }
    for id in &ours {
        match ssm.terminate_session().session_id(id).send().await {
            Ok(_) => {}
            // Ended meanwhile (the user closed it): nothing left to do.
            Err(err) if err.code() == Some("DoesNotExistException") => {}
            Err(err) => return Err(classify(err)),
        }
    }
    Ok(ours)
}

/// True when `owner` (`arn:…:sts::<account>:assumed-role/<role>/<role session name>`) is a role
/// session whose name starts with `prefix`.
fn started_by(owner: &str, prefix: &str) -> bool {
    owner.contains(":assumed-role/")
        && owner
            .rsplit_once('/')
            .is_some_and(|(_, session_name)| session_name.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::started_by;

    #[test]
    fn only_the_requests_own_role_sessions_are_ended() {
        let ours = "arn:aws:sts::123456789012:assumed-role/passport/passport-4f1c2d3e-rs-5f3a9c21-0a1b2c3d";
        assert!(started_by(ours, "passport-4f1c2d3e-"));
        assert!(!started_by(ours, "passport-4f1c2d3f-"));
        let user = "arn:aws:iam::123456789012:user/passport-4f1c2d3e-admin";
        assert!(!started_by(user, "passport-4f1c2d3e-"));
        let operator = "arn:aws:sts::123456789012:assumed-role/passport/passport-operator";
        assert!(!started_by(operator, "passport-4f1c2d3e-"));
    }
}
