//! Logins passport must refuse, on real parts (control plane, emulator, the real operator, an OpenSSH
//! instance, the real `ssh`): a passport user who plants a key of its own in `~/.ssh/authorized_keys`
//! cannot log in with it (certificates are the only way in), and a certificate logs in only where
//! its own AccessRequest holds the user, although every request of a requester shares one OS user.

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, Result, bail, ensure};
use jiff::Timestamp;
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams, PostParams},
};
use passport_crds::{
    AccessRequest, CredentialRequest, CredentialRequestSpec, KeyType, Phase,
    conditions::{ConditionStatus, observe, types::ISSUED},
};
use passport_tests::{
    fixtures,
    instance::Instance,
    ssh::{self, request_principal},
    wait,
};

use crate::{
    E2e,
    scenario::{Scenario, on_instance, on_shared_stack, online_instance, username},
    test,
};

const PROVISION_TIMEOUT: Duration = Duration::from_secs(90);
const ISSUE_TIMEOUT: Duration = Duration::from_secs(30);
const REVOKE_TIMEOUT: Duration = Duration::from_secs(90);
/// The address the requests of these trials may open tunnels from (TEST-NET-3, never this host).
const WORKSTATION_CIDR: &str = "203.0.113.7/32";

pub fn trials() -> Vec<E2e> {
    vec![
        on_instance(
            "hostile_login::a_planted_authorized_key_never_logs_in",
            "plantkey",
            |s, instance| Box::pin(planted_key(s, instance)),
        ),
        test(
            "hostile_login::a_certificate_logs_in_only_where_its_request_holds_the_user",
            |env| async move {
                let emulator = env.emulator().await?;
                let (one, two) = tokio::try_join!(online_instance(emulator), online_instance(emulator))?;
                let s = on_shared_stack(&env, "ownprincipal", &["alice"], &[one.id(), two.id()]).await?;
                own_principal_only(&s, &one, &two).await
            },
        ),
    ]
}

/// A key pair of the test's workstation and the certificate the operator issued for it.
struct Credential {
    dir: tempfile::TempDir,
    request: String,
    username: String,
    certificate: String,
}

impl Credential {
    /// Asks the operator, through a CredentialRequest (created by the admin in alice's name, as the
    /// shared plane has no admission policy), for a certificate of AccessRequest `request`.
    async fn issue(s: &Scenario<'_>, request: &str) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("passport-hostile-").tempdir()?;
        let key = dir.path().join("id_ed25519");
        ssh::generate_key(&key, &["-t", "ed25519"]).await?;
        let spec = CredentialRequestSpec {
            access_request: request.into(),
            requester: "alice".into(),
            public_key: std::fs::read_to_string(key.with_extension("pub"))?
                .trim()
                .to_owned(),
            key_type: KeyType::Ed25519,
            sealing_key: age::x25519::Identity::generate().to_public().to_string(),
        };
        let api: Api<CredentialRequest> = Api::namespaced(s.admin.clone(), &s.namespace);
        let name = format!("{request}-cred");
        api.create(&PostParams::default(), &CredentialRequest::new(&name, spec))
            .await?;
        let decided = |r: Option<&CredentialRequest>| {
            r.and_then(|r| r.status.as_ref())
                .and_then(|st| observe(&st.conditions, ISSUED))
                .is_some_and(|c| c.status != ConditionStatus::Unknown)
        };
        let issued = match wait::object(&api, &name, ISSUE_TIMEOUT, decided).await {
            Ok(Some(issued)) => issued,
            other => bail!(
                "CredentialRequest {name} not decided ({other:?})\n--- operator log ---\n{}",
                s.operator.log_tail()
            ),
        };
        let status = issued.status.context("no status")?;
        let condition = observe(&status.conditions, ISSUED).context("no Issued condition")?;
        ensure!(
            condition.status == ConditionStatus::True,
            "refused: {}: {}",
            condition.reason,
            condition.message
        );
        let certificate = status
            .certificates
            .first()
            .context("no certificate")?
            .certificate
            .clone();
        Ok(Self {
            dir,
            request: request.into(),
            username: status.username.context("no username")?,
            certificate,
        })
    }

    fn key(&self) -> PathBuf {
        self.dir.path().join("id_ed25519")
    }

    /// Runs `remote` on `instance` over SSH as the request's user: with the certificate, or with
    /// the bare key when `certificate` is false. Returns (success, stdout, stderr).
    async fn ssh(
        &self,
        instance: &Instance,
        certificate: bool,
        remote: &str,
    ) -> Result<(bool, String, String)> {
        self.ssh_as(instance, &self.username, certificate, remote).await
    }

    /// [`Credential::ssh`] as `user`.
    async fn ssh_as(
        &self,
        instance: &Instance,
        user: &str,
        certificate: bool,
        remote: &str,
    ) -> Result<(bool, String, String)> {
        // Not id_ed25519-cert.pub: ssh would pick that up next to the key by itself, and a login
        // "with the bare key" would use the certificate.
        let cert = self.dir.path().join("certificate.pub");
        std::fs::write(&cert, format!("{}\n", self.certificate))?;
        let known_hosts = self.dir.path().join(format!("known_hosts-{}", instance.id()));
        std::fs::write(&known_hosts, instance.known_hosts())?;
        let key = self.key();
        let cert = certificate.then_some(cert.as_path());
        let mut command = ssh::pinned_command(&key, cert, &known_hosts, user, instance.ssh_port(), remote);
        let output = command.output().await.context("running ssh")?;
        Ok((
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).trim().to_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ))
    }

    /// Fails unless the certificate logs in to `instance` (as the request's user).
    async fn logs_in(&self, instance: &Instance) -> Result<()> {
        let (ok, stdout, stderr) = self.ssh(instance, true, "whoami").await?;
        ensure!(
            ok && stdout == self.username,
            "the certificate of {} did not log in to {} (stdout {stdout:?}): {stderr}\n--- sshd log ---\n{}",
            self.request,
            instance.id(),
            instance.log_tail()
        );
        Ok(())
    }

    /// Fails unless sshd refuses the certificate (or, with `certificate` false, the bare key).
    async fn refused(&self, instance: &Instance, certificate: bool) -> Result<()> {
        let (ok, stdout, stderr) = self.ssh(instance, certificate, "whoami").await?;
        ensure!(
            !ok && stderr.contains("Permission denied (publickey)"),
            "{} of {} was not refused by {}: success {ok}, stdout {stdout:?}, stderr {stderr}",
            if certificate {
                "the certificate"
            } else {
                "the bare key"
            },
            self.request,
            instance.id()
        );
        Ok(())
    }
}

/// Applies AccessRequest `name` of alice on `instance` (only from [`WORKSTATION_CIDR`]) and waits
/// until it is Active.
async fn active_request(s: &Scenario<'_>, name: &str, instance: &Instance) -> Result<AccessRequest> {
    s.apply(
        &fixtures::request(name)
            .namespace(&s.namespace)
            .requester("alice")
            .reason("e2e hostile login")
            .duration("1h")
            .account(&s.account)
            .source_cidrs([WORKSTATION_CIDR])
            .targets([instance.id()]),
    )?;
    s.wait_phase(name, Phase::Active, PROVISION_TIMEOUT).await
}

async fn planted_key(s: &Scenario<'_>, instance: &Instance) -> Result<()> {
    let active = active_request(s, "r", instance).await?;
    let user = username(&active)?;
    let credential = Credential::issue(s, "r").await?;
    // The certificate names the request and only lets tunnels in: the workstation's CIDR (checked by
    // AWS when the tunnel opens) and the instance's loopback, where the tunnel arrives (this login).
    let described = describe(&credential).await?;
    let uid = active.uid().context("no uid")?;
    for expected in [
        format!("Key ID: \"{}/r-cred#", s.namespace),
        format!("uid={uid}\""),
        format!("source-address {WORKSTATION_CIDR},127.0.0.1/32,::1/128"),
    ] {
        ensure!(described.contains(&expected), "no {expected:?} in:\n{described}");
    }
    let principal = request_principal(&uid);
    ensure!(
        described.lines().any(|l| l.trim() == principal) && !described.contains(&format!(" {user}\n")),
        "the certificate's principal is not {principal} alone:\n{described}"
    );
    credential.logs_in(instance).await?;

    // The user plants the certificate's key for itself, to come back without passport.
    let public_key = std::fs::read_to_string(credential.key().with_extension("pub"))?;
    let plant = format!(
        "umask 077 && mkdir -p ~/.ssh && printf '%s\\n' '{}' >> ~/.ssh/authorized_keys && echo planted",
        public_key.trim()
    );
    let (ok, stdout, stderr) = credential.ssh(instance, true, &plant).await?;
    ensure!(ok && stdout == "planted", "could not plant the key: {stderr}");
    let planted = instance
        .exec(&["cat", &format!("/home/{user}/.ssh/authorized_keys")])
        .await?
        .ok()?;
    ensure!(planted.stdout.contains(public_key.trim()), "{planted:?}");

    // sshd ignores it for passport's users (and only for them), and refuses the bare key.
    let effective = sshd_settings(instance, &user).await?;
    for setting in [
        "authorizedkeysfile none",
        "authorizedkeyscommand none",
        "passwordauthentication no",
        "kbdinteractiveauthentication no",
        "hostbasedauthentication no",
    ] {
        ensure!(
            effective.lines().any(|l| l == setting),
            "sshd -T for {user} lacks {setting:?}:\n{effective}"
        );
    }
    let for_root = sshd_settings(instance, "root").await?;
    ensure!(
        for_root
            .lines()
            .any(|l| l.starts_with("authorizedkeysfile .ssh/authorized_keys")),
        "the Match block reached other users:\n{for_root}"
    );
    credential.refused(instance, false).await?;
    // Control: the same bare key, planted for a user of the instance's own, logs in.
    let plain = "plainuser";
    instance.exec(&["useradd", "--create-home", plain]).await?.ok()?;
    let home = format!("/home/{plain}/.ssh");
    let install = format!(
        "install -d -m 700 -o {plain} {home} && printf '%s\\n' '{}' > {home}/authorized_keys && \
         chown {plain} {home}/authorized_keys",
        public_key.trim()
    );
    instance.exec(&["bash", "-c", &install]).await?.ok()?;
    let (ok, stdout, stderr) = credential.ssh_as(instance, plain, false, "whoami").await?;
    ensure!(
        ok && stdout == plain,
        "control: the bare key did not log in as {plain}: {stderr}"
    );
    // The certificate still logs in.
    credential.logs_in(instance).await?;

    // The principals line of the request ends by itself, in UTC (OpenSSH 9.2): at the latest time an
    // extension could reach (12h after activation, written before the clock started: at most the
    // provisioning timeout later), never before the request's own expiry.
    let principals = instance
        .exec(&["cat", &format!("/etc/ssh/passport/principals/{user}")])
        .await?
        .ok()?
        .stdout;
    let expires_at = active
        .status
        .as_ref()
        .and_then(|st| st.expires_at.as_ref())
        .context("no expiresAt")?
        .0;
    let line_expiry = principal_expiry(&principals, &uid)?;
    let activated_at = active
        .status
        .as_ref()
        .and_then(|st| st.activated_at.as_ref())
        .context("no activatedAt")?
        .0;
    let ceiling = activated_at + jiff::SignedDuration::from_hours(12);
    ensure!(
        line_expiry >= expires_at
            && line_expiry >= ceiling
            && line_expiry <= ceiling + jiff::SignedDuration::from_mins(11),
        "principals line expires at {line_expiry}, the request at {expires_at}:\n{principals}"
    );
    // The account itself expires the (UTC) day after: shadow counts days since 1970.
    let shadow = instance.exec(&["getent", "shadow", &user]).await?.ok()?.stdout;
    let expire_day = shadow.trim().split(':').nth(7).unwrap_or_default().to_owned();
    let day_after = line_expiry.as_second().div_euclid(86_400) + 1;
    ensure!(
        expire_day == day_after.to_string(),
        "account expiry day {expire_day:?}, expected {day_after}: {shadow}"
    );

    // sshd honours the line's expiry as written: the same line, expired a minute ago, lets the
    // (still valid) certificate in no more.
    let when = |t: Timestamp| t.strftime("%Y%m%d%H%M%SZ").to_string();
    let expired = principals.replace(
        &when(line_expiry),
        &when(Timestamp::now() - jiff::SignedDuration::from_mins(1)),
    );
    ensure!(expired != principals, "{principals}");
    let file = format!("/etc/ssh/passport/principals/{user}");
    let write = |text: &str| format!("printf '%s' '{text}' > {file}");
    instance.exec(&["bash", "-c", &write(&expired)]).await?.ok()?;
    credential.refused(instance, true).await?;
    instance.exec(&["bash", "-c", &write(&principals)]).await?.ok()?;
    credential.logs_in(instance).await?;
    Ok(())
}

async fn own_principal_only(s: &Scenario<'_>, one: &Instance, two: &Instance) -> Result<()> {
    // Alice's requests share her OS user: A holds it on one, B on two.
    let (a, b) = tokio::try_join!(active_request(s, "a", one), active_request(s, "b", two))?;
    ensure!(username(&a)? == username(&b)?, "two requests of alice, two users");
    let (cred_a, cred_b) = tokio::try_join!(Credential::issue(s, "a"), Credential::issue(s, "b"))?;
    cred_a.logs_in(one).await?;
    cred_b.logs_in(two).await?;
    // Same user, other request: refused both ways.
    cred_a.refused(two, true).await?;
    cred_b.refused(one, true).await?;

    // C holds the user on one too. A ends: its certificate, still valid, no longer logs in there,
    // C's still does, with its own expiry line untouched.
    active_request(s, "c", one).await?;
    let cred_c = Credential::issue(s, "c").await?;
    cred_c.logs_in(one).await?;
    let principals_file = format!("/etc/ssh/passport/principals/{}", cred_c.username);
    let before = one.exec(&["cat", &principals_file]).await?.ok()?.stdout;
    let patch = serde_json::json!({ "spec": { "completed": true } });
    s.requests
        .patch("a", &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    s.wait_phase("a", Phase::Completed, REVOKE_TIMEOUT).await?;
    cred_a.refused(one, true).await?;
    cred_c.logs_in(one).await?;
    let after = one.exec(&["cat", &principals_file]).await?.ok()?.stdout;
    let uid_c = s.requests.get("c").await?.uid().context("no uid")?;
    let line_c = |text: &str| {
        text.lines()
            .find(|l| l.ends_with(&request_principal(&uid_c)))
            .map(str::to_owned)
    };
    ensure!(
        after.lines().count() == 1 && line_c(&after).is_some() && line_c(&after) == line_c(&before),
        "principals before A ended:\n{before}after:\n{after}"
    );
    Ok(())
}

/// `ssh-keygen -L` of the credential's certificate, in UTC.
async fn describe(credential: &Credential) -> Result<String> {
    let path = credential.dir.path().join("describe-cert.pub");
    std::fs::write(&path, format!("{}\n", credential.certificate))?;
    let output = tokio::process::Command::new("ssh-keygen")
        .env("TZ", "UTC")
        .arg("-L")
        .arg("-f")
        .arg(&path)
        .output()
        .await?;
    ensure!(output.status.success(), "ssh-keygen -L failed");
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// What the instance's sshd applies to a connection of `user` from loopback (`sshd -T -C`).
async fn sshd_settings(instance: &Instance, user: &str) -> Result<String> {
    let spec = format!("user={user},host=localhost,addr=127.0.0.1,laddr=127.0.0.1,lport=22");
    Ok(instance
        .exec(&["/usr/sbin/sshd", "-T", "-C", &spec])
        .await?
        .ok()?
        .stdout)
}

/// The `expiry-time` of the principals line of the request with UID `uid`.
fn principal_expiry(principals: &str, uid: &str) -> Result<Timestamp> {
    let principal = request_principal(uid);
    let line = principals
        .lines()
        .find(|l| l.split_whitespace().last() == Some(principal.as_str()))
        .with_context(|| format!("no line for {principal} in:\n{principals}"))?;
    let when = line
        .strip_prefix("expiry-time=\"")
        .and_then(|rest| rest.split_once("Z\""))
        .map(|(when, _)| when)
        .with_context(|| format!("no UTC expiry-time in {line:?}"))?;
    let civil = jiff::civil::DateTime::strptime("%Y%m%d%H%M%S", when)?;
    Ok(civil.to_zoned(jiff::tz::TimeZone::UTC)?.timestamp())
}
