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
/// passport's content any whose default version differs, so a document edited to reach another
/// port or to open a shell is put right.
pub async fn ensure_documents(ssm: &Client) -> Result<(), AwsError> {
    for document in session_documents() {
        ensure_document(ssm, &document).await?;
    }
    Ok(())
}

async fn ensure_document(ssm: &Client, document: &SessionDocument) -> Result<(), AwsError> {
    let stored = ssm
        .get_document()
        .name(document.name)
        .document_format(DocumentFormat::Json)
        .send()
        .await;
    match stored {
        Ok(stored) if stored.content().is_some_and(|c| document.matches(c)) => Ok(()),
        Ok(_) => restore(ssm, document).await,
        Err(err) if err.code() == Some("InvalidDocument") => create(ssm, document).await,
        Err(err) => Err(classify(err)),
    }
}

async fn create(ssm: &Client, document: &SessionDocument) -> Result<(), AwsError> {
    let created = ssm
        .create_document()
        .name(document.name)
        .content(document.content.to_string())
        .document_type(DocumentType::Session)
        .document_format(DocumentFormat::Json)
        .send()
        .await;
    match created {
        // Another replica created it meanwhile; the next check compares its content.
        Err(err) if err.code() == Some("DocumentAlreadyExists") => Ok(()),
        Err(err) => Err(classify(err)),
        Ok(_) => {
            tracing::info!(document = document.name, "session document created");
            Ok(())
        }
    }
}

/// Makes passport's content the default version again: a new version, or the latest one when it
/// already holds passport's content (SSM then refuses a duplicate).
async fn restore(ssm: &Client, document: &SessionDocument) -> Result<(), AwsError> {
    let updated = ssm
        .update_document()
        .name(document.name)
        .content(document.content.to_string())
        .document_format(DocumentFormat::Json)
        .document_version("$LATEST")
        .send()
        .await;
    let version = match updated {
        Ok(updated) => updated
            .document_description()
            .and_then(|d| d.document_version())
            .map(str::to_owned)
            .ok_or_else(|| AwsError::Other("UpdateDocument answered without a version".into()))?,
        Err(err) if err.code() == Some("DuplicateDocumentContent") => latest_matching(ssm, document).await?,
        Err(err) => return Err(classify(err)),
    };
    ssm.update_document_default_version()
        .name(document.name)
        .document_version(&version)
        .send()
        .await
        .map_err(classify)?;
    tracing::warn!(
        document = document.name,
        version,
        "session document was not passport's: its content is the default again"
    );
    Ok(())
}

/// The latest version of `document`, when it holds passport's content.
async fn latest_matching(ssm: &Client, document: &SessionDocument) -> Result<String, AwsError> {
    let described = ssm
        .describe_document()
        .name(document.name)
        .send()
        .await
        .map_err(classify)?;
    let latest = described
        .document()
        .and_then(|d| d.latest_version())
        .ok_or_else(|| AwsError::Other("DescribeDocument answered without a latest version".into()))?
        .to_owned();
    let stored = ssm
        .get_document()
        .name(document.name)
        .document_version(&latest)
        .document_format(DocumentFormat::Json)
        .send()
        .await
        .map_err(classify)?;
    if stored.content().is_some_and(|c| document.matches(c)) {
        Ok(latest)
    } else {
        Err(AwsError::Other(format!(
            "{} version {latest} is not passport's, yet SSM refused passport's content as a duplicate",
            document.name
        )))
    }
}

/// Ends every open session on `instance_ids` started by a session of the account's role
/// (`role_name`) named with `session_prefix` (the request's: `passport-<uid8>-`); returns their ids.
/// One listing serves every instance (filtered by target when there is one). Every session is tried
/// whatever happens to the others; the first failure is returned.
pub async fn terminate_sessions(
    ssm: &Client,
    instance_ids: &[String],
    role_name: &str,
    session_prefix: &str,
) -> Result<Vec<String>, AwsError> {
    let mut listing = ssm.describe_sessions().state(SessionState::Active);
    if let [only] = instance_ids {
        let filter = SessionFilter::builder()
            .key(SessionFilterKey::TargetId)
            .value(only)
            .build()
            .map_err(|err| AwsError::Other(err.to_string()))?;
        listing = listing.filters(filter);
    }
    let mut pages = listing.into_paginator().send();
    let mut ours = Vec::new();
    while let Some(page) = pages.next().await {
        for session in page.map_err(classify)?.sessions() {
            let on_target = session
                .target()
                .is_some_and(|target| instance_ids.iter().any(|id| id == target));
            let owned = session
                .owner()
                .is_some_and(|owner| started_by(owner, role_name, session_prefix));
            if let (Some(id), true, true) = (session.session_id(), on_target, owned) {
                ours.push(id.to_owned());
            }
        }
    }
    let mut failure = None;
    for id in &ours {
        match ssm.terminate_session().session_id(id).send().await {
            Ok(_) => {}
            // Ended meanwhile (the user closed it): nothing left to do.
            Err(err) if err.code() == Some("DoesNotExistException") => {}
            Err(err) => {
                failure.get_or_insert(classify(err));
            }
        }
    }
    failure.map_or(Ok(ours), Err)
}

/// True when `owner` (`arn:…:sts::<account>:assumed-role/<role>/<role session name>`) is a session
/// of the account's role whose name starts with `prefix`.
fn started_by(owner: &str, role_name: &str, prefix: &str) -> bool {
    owner
        .split_once(":assumed-role/")
        .and_then(|(_, rest)| rest.rsplit_once('/'))
        .is_some_and(|(role, session_name)| role == role_name && session_name.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::started_by;

    #[test]
    fn only_the_requests_own_role_sessions_are_ended() {
        let ours = "arn:aws:sts::123456789012:assumed-role/passport/passport-4f1c2d3e-rs-5f3a9c21-0a1b2c3d";
        assert!(started_by(ours, "passport", "passport-4f1c2d3e-"));
        assert!(!started_by(ours, "passport", "passport-4f1c2d3f-"));
        assert!(!started_by(ours, "other-role", "passport-4f1c2d3e-"));
        let user = "arn:aws:iam::123456789012:user/passport-4f1c2d3e-admin";
        assert!(!started_by(user, "passport", "passport-4f1c2d3e-"));
        let operator = "arn:aws:sts::123456789012:assumed-role/passport/passport-operator";
        assert!(!started_by(operator, "passport", "passport-4f1c2d3e-"));
    }
}
