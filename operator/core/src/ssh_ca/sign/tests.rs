use std::path::{Path, PathBuf};
use std::process::Command;

use ssh_key::certificate::CertType;
use ssh_key::public::{KeyData, RsaPublicKey};
use ssh_key::{Certificate, HashAlg, Mpint};

use crate::fixtures::{CA, OTHER_ED25519 as NEXT_ED25519, USER_RSA as NEXT_RSA, user_ed25519};
use crate::ssh_ca::Sha1Certificate;
use passport_crds::KeyType;

use super::*;

const PRINCIPAL: &str = "rs-1a2b3c4d";

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

fn request(public_key: &str, now: Timestamp) -> CertificateRequest<'_> {
    CertificateRequest {
        public_key,
        principal: PRINCIPAL,
        key_id: "team-a/alice-db#7".into(),
        source_addresses: None,
        serial: 7,
        now,
        ttl: Duration::from_secs(300),
        not_after: now + jiff::SignedDuration::from_hours(1),
    }
}

fn secs(t: Timestamp) -> u64 {
    u64::try_from(t.as_second()).expect("after 1970")
}

/// Signs, explaining the one known way RSA signing breaks (see [`CaSignatureAlgorithm`]).
fn sign(ca: &CaKeys, req: &CertificateRequest<'_>) -> Vec<IssuedCert> {
    ca.sign(req).unwrap_or_else(|e| {
        panic!(
            "{e}; if this is an RSA key failing with \"cryptographic error\": ssh-key 0.6.7 needs rsa <= 0.9.6 \
             (RustCrypto/SSH#217), check `cargo tree -i rsa`"
        )
    })
}

fn parse_cert(issued: &IssuedCert) -> Certificate {
    Certificate::from_openssh(&issued.certificate).expect("certificate parses back")
}

/// Everything the certificate must say, whatever the key type.
fn assert_certificate(issued: &IssuedCert, req: &CertificateRequest<'_>, subject: &PublicKey) {
    let cert = parse_cert(issued);
    assert_eq!(cert.cert_type(), CertType::User);
    assert_eq!(cert.valid_principals(), [PRINCIPAL]);
    assert_eq!(cert.key_id(), "team-a/alice-db#7");
    assert_eq!(cert.serial(), 7);
    assert_eq!(cert.public_key(), subject.key_data());
    assert!(cert.critical_options().is_empty());
    let extensions: Vec<(&str, &str)> = cert
        .extensions()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(extensions, [("permit-port-forwarding", ""), ("permit-pty", "")]);
    assert_eq!(cert.signature().algorithm().as_str(), issued.algorithm);
    assert_eq!(cert.valid_after(), secs(req.now) - 120);
    assert_eq!(cert.valid_before(), secs(issued.valid_before));

    let trusted = CA.trusted_fingerprints();
    cert.validate_at(secs(req.now), &trusted).expect("valid now");
    cert.validate_at(secs(req.now) - 120, &trusted)
        .expect("valid with clock skew");
    cert.validate_at(secs(issued.valid_before) - 1, &trusted)
        .expect("valid until the end");
    cert.validate_at(secs(issued.valid_before), &trusted)
        .expect_err("expired at valid_before");
    let other_ca = [
        NEXT_ED25519.fingerprint(HashAlg::Sha256),
        NEXT_RSA.fingerprint(HashAlg::Sha256),
    ];
    cert.validate_at(secs(req.now), &other_ca)
        .expect_err("not signed by another CA");
}

#[test]
fn ed25519_key_gets_one_ed25519_signed_certificate() {
    let user = user_ed25519();
    let line = user.public_key().to_openssh().expect("public line");
    let req = request(&line, ts("2030-06-01T12:00:00.75Z"));
    let issued = sign(&CA, &req);
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0].algorithm, "ssh-ed25519");
    assert!(
        issued[0]
            .certificate
            .starts_with("ssh-ed25519-cert-v01@openssh.com AAAA")
    );
    assert!(issued[0].certificate.ends_with(" team-a/alice-db#7"));
    assert_eq!(issued[0].valid_before, ts("2030-06-01T12:05:00Z"));
    assert_eq!(
        parse_cert(&issued[0]).signature_key(),
        CA.public_keys()[0].key_data()
    );
    assert_certificate(&issued[0], &req, user.public_key());
}

#[test]
fn rsa_key_gets_rsa_sha2_512_signed_certificate() {
    let line = NEXT_RSA.public_key().to_openssh().expect("public line");
    let req = request(&line, ts("2030-06-01T12:00:00Z"));
    let issued = sign(&CA, &req);
    let algorithms: Vec<&str> = issued.iter().map(|c| c.algorithm.as_str()).collect();
    assert_eq!(algorithms, ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]);
    assert_certificate(&issued[1], &req, NEXT_RSA.public_key());
    assert!(
        issued[0]
            .certificate
            .starts_with("ssh-rsa-cert-v01@openssh.com AAAA")
    );
    assert_eq!(
        parse_cert(&issued[0]).signature_key(),
        CA.public_keys()[1].key_data()
    );
    assert_certificate(&issued[0], &req, NEXT_RSA.public_key());
}

/// The `ssh-rsa` certificate: same key, principal, validity and options as the SHA-2 ones, its CA
/// signature SHA-1 PKCS#1 v1.5 by the RSA CA key.
#[test]
fn rsa_key_also_gets_an_ssh_rsa_sha1_signed_certificate() {
    let line = NEXT_RSA.public_key().to_openssh().expect("public line");
    let req = request(&line, ts("2030-06-01T12:00:00Z"));
    let issued = sign(&CA, &req);
    let sha1 = &issued[2];
    assert_eq!(sha1.algorithm, "ssh-rsa");
    assert!(sha1.certificate.starts_with("ssh-rsa-cert-v01@openssh.com AAAA"));
    assert!(sha1.certificate.ends_with(" team-a/alice-db#7"));
    assert_eq!(sha1.valid_before, issued[0].valid_before);
    // ssh-key cannot hold an ssh-rsa signature: that is why it is read with Sha1Certificate.
    assert!(Certificate::from_openssh(&sha1.certificate).is_err());

    let read = Sha1Certificate::parse(&sha1.certificate).expect("ssh-rsa certificate reads back");
    let sha2 = parse_cert(&issued[0]);
    let cert = read.fields();
    assert_eq!(cert.cert_type(), CertType::User);
    assert_eq!(cert.valid_principals(), [PRINCIPAL]);
    assert_eq!(cert.key_id(), "team-a/alice-db#7");
    assert_eq!(cert.serial(), 7);
    assert_eq!(cert.public_key(), NEXT_RSA.public_key().key_data());
    assert_eq!(cert.valid_after(), sha2.valid_after());
    assert_eq!(cert.valid_before(), sha2.valid_before());
    assert_eq!(cert.extensions(), sha2.extensions());
    assert_eq!(cert.critical_options(), sha2.critical_options());
    assert_ne!(cert.nonce(), sha2.nonce(), "a fresh nonce per certificate");
    assert_eq!(cert.signature_key(), CA.public_keys()[1].key_data());

    read.verify(CA.public_keys()[1].key_data())
        .expect("SHA-1 signature verifies against the RSA CA");
    read.verify(NEXT_RSA.public_key().key_data())
        .expect_err("not signed by another RSA key");
    read.verify(CA.public_keys()[0].key_data())
        .expect_err("not the Ed25519 CA");

    // A changed field breaks the signature.
    let mut fields: Vec<String> = sha1.certificate.split(' ').map(str::to_owned).collect();
    let blob = &mut fields[1];
    // Inside the nonce, so the fields still decode.
    let flipped = if &blob[60..61] == "A" { "B" } else { "A" };
    blob.replace_range(60..61, flipped);
    let tampered = Sha1Certificate::parse(&fields.join(" ")).expect("still parses");
    tampered
        .verify(CA.public_keys()[1].key_data())
        .expect_err("tampered certificate refused");

    // A SHA-2 certificate is not mistaken for an ssh-rsa one.
    Sha1Certificate::parse(&issued[0].certificate).expect_err("rsa-sha2-512 is not ssh-rsa");
}

#[test]
fn certificate_validates_against_the_system_clock() {
    let line = user_ed25519().public_key().to_openssh().expect("public line");
    let issued = sign(&CA, &request(&line, Timestamp::now()));
    parse_cert(&issued[0])
        .validate(&CA.trusted_fingerprints())
        .expect("valid now");
}

#[test]
fn certificates_are_unique_per_signing() {
    let line = user_ed25519().public_key().to_openssh().expect("public line");
    let req = request(&line, ts("2030-06-01T12:00:00Z"));
    let first = sign(&CA, &req);
    let second = sign(&CA, &req);
    assert_ne!(
        first[0].certificate, second[0].certificate,
        "fresh nonce each time"
    );
}

#[test]
fn valid_before_is_min_of_ttl_and_expiry_and_never_past_expiry() {
    let now = ts("2030-06-01T12:00:00.400Z");
    // (ttl seconds, not_after, expected valid_before)
    let cases = [
        (300, "2030-06-01T13:00:00Z", "2030-06-01T12:05:00Z"),
        (300, "2030-06-01T12:03:00Z", "2030-06-01T12:03:00Z"),
        (300, "2030-06-01T12:05:00.400Z", "2030-06-01T12:05:00Z"),
        (300, "2030-06-01T12:02:59.999Z", "2030-06-01T12:02:59Z"),
        (300, "2030-06-01T12:00:01Z", "2030-06-01T12:00:01Z"),
        (1, "2030-06-01T13:00:00Z", "2030-06-01T12:00:01Z"),
        (900, "2030-06-01T12:10:00Z", "2030-06-01T12:10:00Z"),
        (u64::MAX, "2030-06-01T12:30:00.5Z", "2030-06-01T12:30:00Z"),
    ];
    for (ttl, not_after, expected) in cases {
        let not_after = ts(not_after);
        let validity = Validity::compute(now, Duration::from_secs(ttl), not_after)
            .unwrap_or_else(|e| panic!("ttl {ttl}, not_after {not_after}: {e}"));
        assert_eq!(
            validity.valid_before,
            ts(expected),
            "ttl {ttl}, not_after {not_after}"
        );
        assert!(validity.valid_before <= not_after);
        assert_eq!(validity.valid_after, ts("2030-06-01T11:58:00Z"));
    }
}

#[test]
fn refuses_expired_access_requests() {
    let now = ts("2030-06-01T12:00:00.400Z");
    for not_after in [
        "2030-06-01T11:00:00Z",
        "2030-06-01T12:00:00.400Z",
        "2030-06-01T12:00:00.900Z",
    ] {
        let err = Validity::compute(now, Duration::from_secs(300), ts(not_after)).expect_err(not_after);
        assert!(
            matches!(err, CaError::AccessRequestExpired { .. }),
            "{not_after}: {err:?}"
        );
    }
    let line = user_ed25519().public_key().to_openssh().expect("public line");
    let req = CertificateRequest {
        not_after: ts("2030-06-01T11:00:00Z"),
        ..request(&line, now)
    };
    let err = CA.sign(&req).expect_err("expired");
    assert_eq!(
        err.to_string(),
        "the access request expired at 2030-06-01T11:00:00Z (it is now 2030-06-01T12:00:00.4Z); no \
         certificate can be issued for it: request access again"
    );
}

#[test]
fn refuses_zero_ttl_and_times_before_1970() {
    let now = ts("2030-06-01T12:00:00Z");
    let err = Validity::compute(now, Duration::ZERO, ts("2030-06-01T13:00:00Z")).expect_err("zero ttl");
    assert!(matches!(err, CaError::TtlTooShort));
    let err = Validity::compute(ts("1969-12-31T23:59:59Z"), Duration::from_secs(60), now).expect_err("1969");
    assert!(matches!(err, CaError::TimeOutOfRange(_)));
    let early = Validity::compute(ts("1970-01-01T00:00:30Z"), Duration::from_secs(60), now).expect("1970");
    assert_eq!(early.valid_after, Timestamp::UNIX_EPOCH);
}

/// A syntactically fine 1024-bit RSA public key (not a real key: only its size matters).
fn small_rsa_line() -> String {
    let rsa = RsaPublicKey {
        e: Mpint::from_positive_bytes(&[1, 0, 1]).expect("e"),
        n: Mpint::from_positive_bytes(&[0xC3; 128]).expect("n"),
    };
    PublicKey::new(KeyData::Rsa(rsa), "old")
        .to_openssh()
        .expect("line")
}

const ECDSA_LINE: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBNqrb5gTT06+NcBtcH66o\
    95teEyRuLSt6jzZ9pPT3mCHZjxU48lbHcsLJFDKGT/5OicPO631MlRVvRvE6mZVETQ= me@laptop";

#[test]
fn rejects_unusable_public_keys_naming_the_field() {
    let ed25519 = user_ed25519().public_key().to_openssh().expect("line");
    let certificate = sign(&CA, &request(&ed25519, ts("2030-06-01T12:00:00Z")))[0]
        .certificate
        .clone();
    let truncated = ed25519[..ed25519.len() - 8].to_owned();
    let two_lines = format!("{ed25519}\n{ed25519}");
    let small_rsa = small_rsa_line();
    let cases: [(&str, &str); 8] = [
        ("", "it is empty"),
        ("hello world", "does not start with a key type"),
        (&truncated, "not an OpenSSH public key line"),
        ("ssh-ed25519 not-base64!", "not an OpenSSH public key line"),
        (&two_lines, "several lines"),
        (&certificate, "it is a certificate"),
        (
            ECDSA_LINE,
            "is of type ecdsa-sha2-nistp256; passport certifies only ssh-ed25519 and ssh-rsa",
        ),
        (
            &small_rsa,
            "is a 1024-bit RSA key; RSA keys must have 2048 to 16384 bits",
        ),
    ];
    for (line, expected) in cases {
        let err = parse_user_public_key(line).expect_err(line);
        let message = err.to_string();
        assert!(message.starts_with("spec.publicKey "), "{line:?}: {message}");
        assert!(message.contains(expected), "{line:?}: {message}");
        assert!(
            message.contains("ssh-keygen") || message.contains(".pub"),
            "says how to fix: {message}"
        );
        let err = CA
            .sign(&request(line, ts("2030-06-01T12:00:00Z")))
            .expect_err(line);
        assert_eq!(err.to_string(), message);
    }
}

#[test]
fn accepts_keys_with_surrounding_whitespace_and_reports_their_type() {
    let ed25519 = user_ed25519().public_key().to_openssh().expect("line");
    let (key_type, _) = parse_user_public_key(&format!("  {ed25519}\n")).expect("trimmed");
    assert_eq!(key_type, KeyType::Ed25519);
    let rsa = NEXT_RSA.public_key().to_openssh().expect("line");
    let (key_type, _) = parse_user_public_key(&rsa).expect("rsa");
    assert_eq!((key_type, key_type.as_str()), (KeyType::Rsa, "rsa"));
}

#[test]
fn rejects_principals_that_are_not_one_user_name() {
    let line = user_ed25519().public_key().to_openssh().expect("line");
    for principal in ["", "rs-a,root", "rs-a root", "rs-a\n"] {
        let req = CertificateRequest {
            principal,
            ..request(&line, ts("2030-06-01T12:00:00Z"))
        };
        let err = CA.sign(&req).expect_err(principal);
        assert!(
            matches!(err, CaError::InvalidPrincipal(_)),
            "{principal:?}: {err:?}"
        );
    }
}

#[test]
fn the_principal_is_the_requests_own() {
    let principal = request_principal("0b9c1f5e-3d2a-4c8b-9e7f-6a5d4c3b2a10");
    assert_eq!(principal, "passport-0b9c1f5e-3d2a-4c8b-9e7f-6a5d4c3b2a10");
    let line = user_ed25519().public_key().to_openssh().expect("line");
    let req = CertificateRequest {
        principal: &principal,
        ..request(&line, ts("2030-06-01T12:00:00Z"))
    };
    let cert = parse_cert(&sign(&CA, &req)[0]);
    assert_eq!(cert.valid_principals(), [principal.as_str()]);
}

#[test]
fn source_addresses_become_the_source_address_option() {
    let line = user_ed25519().public_key().to_openssh().expect("line");
    let list: Vec<String> = ["203.0.113.7/32", "127.0.0.1/32", "::1/128"]
        .map(String::from)
        .into();
    let req = CertificateRequest {
        source_addresses: Some(&list),
        ..request(&line, ts("2030-06-01T12:00:00Z"))
    };
    for issued in sign(&CA, &req) {
        let cert = parse_cert(&issued);
        let options: Vec<(&str, &str)> = cert
            .critical_options()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            options,
            [("source-address", "203.0.113.7/32,127.0.0.1/32,::1/128")]
        );
    }
    // A malformed entry or an empty list never makes it into a certificate.
    for bad in [vec!["203.0.113.7/32,0.0.0.0/0".to_owned()], Vec::new()] {
        let req = CertificateRequest {
            source_addresses: Some(&bad),
            ..request(&line, ts("2030-06-01T12:00:00Z"))
        };
        let err = CA.sign(&req).expect_err("refused");
        assert!(
            matches!(err, CaError::InvalidSourceAddress(_)),
            "{bad:?}: {err:?}"
        );
    }
}

/// `PATH` lookup, like `which`.
fn find_on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}

fn ssh_keygen(program: &Path, args: &[&str]) -> std::process::Output {
    Command::new(program)
        .args(args)
        .env("TZ", "UTC")
        .output()
        .expect("run ssh-keygen")
}

/// OpenSSH's own parser verifies the CA signature when it loads a certificate, so `ssh-keygen -L`
/// succeeding means OpenSSH accepts what ssh-key produced.
#[test]
fn ssh_keygen_accepts_and_describes_the_certificates() {
    let Some(program) = find_on_path("ssh-keygen") else {
        eprintln!("note: ssh-keygen is not installed; skipping the OpenSSH interoperability check");
        return;
    };
    let dir = std::env::temp_dir().join(format!("passport-ssh-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = |name: &str| dir.join(name).to_str().expect("utf-8 path").to_owned();

    let trusted = path("trusted_user_ca_keys");
    std::fs::write(&trusted, CA.trusted_public_keys().join("\n") + "\n").expect("write");
    let out = ssh_keygen(&program, &["-l", "-f", &trusted]);
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    for fingerprint in CA.trusted_fingerprints() {
        assert!(listing.contains(&fingerprint.to_string()), "{listing}");
    }

    let now = ts("2030-06-01T12:00:00Z");
    for (key_type, bits, ca_type, ca_fingerprint) in [
        ("ed25519", "256", "ED25519", CA.trusted_fingerprints()[0]),
        ("rsa", "2048", "RSA", CA.trusted_fingerprints()[1]),
    ] {
        let key = path(&format!("id_{key_type}"));
        let _ = std::fs::remove_file(&key);
        let out = ssh_keygen(
            &program,
            &[
                "-q", "-t", key_type, "-b", bits, "-N", "", "-C", "t@t", "-f", &key,
            ],
        );
        assert!(out.status.success(), "{out:?}");
        let public = std::fs::read_to_string(format!("{key}.pub")).expect("read .pub");
        let all = sign(&CA, &request(&public, now));
        for issued in all.chunks(1) {
            let cert_path = format!("{key}-cert.pub");
            std::fs::write(&cert_path, format!("{}\n", issued[0].certificate)).expect("write cert");

            let out = ssh_keygen(&program, &["-L", "-f", &cert_path]);
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{out:?}");
            let algorithm = &issued[0].algorithm;
            for expected in [
                format!("Type: ssh-{key_type}-cert-v01@openssh.com user certificate"),
                "Key ID: \"team-a/alice-db#7\"".to_owned(),
                "Serial: 7".to_owned(),
                format!("Signing CA: {ca_type} {ca_fingerprint} (using {algorithm})"),
                "Valid: from 2030-06-01T11:58:00 to 2030-06-01T12:05:00".to_owned(),
                format!("Principals: \n                {PRINCIPAL}\n"),
                "Critical Options: (none)".to_owned(),
                "Extensions: \n                permit-port-forwarding\n                permit-pty\n"
                    .to_owned(),
            ] {
                assert!(text.contains(&expected), "missing {expected:?} in\n{text}");
            }

            // Negative control: a flipped signature byte must make ssh-keygen refuse the certificate.
            let mut fields: Vec<String> = issued[0].certificate.split(' ').map(str::to_owned).collect();
            let blob = &mut fields[1];
            let at = blob.trim_end_matches('=').len() - 4;
            let flipped = if &blob[at..=at] == "A" { "B" } else { "A" };
            blob.replace_range(at..=at, flipped);
            std::fs::write(&cert_path, fields.join(" ") + "\n").expect("write cert");
            let out = ssh_keygen(&program, &["-L", "-f", &cert_path]);
            assert!(!out.status.success(), "tampered certificate accepted: {out:?}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
