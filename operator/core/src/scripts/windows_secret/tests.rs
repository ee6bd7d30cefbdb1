//! The encryption round trip with the script's exact parameters. PowerShell cannot run here, so the
//! script's side (`RSACryptoServiceProvider.FromXmlString` + `Encrypt($bytes, $true)`: RSA-OAEP with
//! SHA-1 and MGF1-SHA-1, no label, big-endian output, standard padded base64) is played by independent
//! implementations: OpenSSL through Python's `cryptography` (a fixed vector, and live from the XML the
//! script receives) and the `rsa` crate's encryptor.

use super::*;
use std::sync::LazyLock;

/// The password in the fixed vector.
const VECTOR_PASSWORD: &str = "Xy7#pQ2!mN4%kL9=wR3?tV6@Ab8^";

/// A 3072-bit key and the ciphertext of [`VECTOR_PASSWORD`] that Python's `cryptography` (OpenSSL)
/// made with `padding.OAEP(mgf=MGF1(SHA1()), algorithm=SHA1(), label=None)`, base64.
fn vector() -> (PasswordKey, String) {
    let der = Base64::decode_vec(include_str!("vector_key.der.b64").trim()).expect("base64");
    let key = PasswordKey::from_der(&der).expect("PKCS#8 key");
    (key, include_str!("vector_ciphertext.txt").trim().to_owned())
}

static KEY: LazyLock<PasswordKey> = LazyLock::new(|| PasswordKey::generate().expect("keygen"));

fn rust_encrypt(key: &RsaPublicKey, password: &str) -> String {
    let ct = key
        .encrypt(&mut OsRng, Oaep::new::<sha1::Sha1>(), password.as_bytes())
        .expect("encrypt");
    Base64::encode_string(&ct)
}

#[test]
fn an_openssl_ciphertext_decrypts_to_the_password() {
    let (key, ciphertext) = vector();
    assert_eq!(key.public_key().size() * 8, 3072);
    assert_eq!(key.decrypt(&ciphertext).expect("decrypts"), VECTOR_PASSWORD);
    let stdout = format!(
        "passport: created local user rs-5f3a9c21\r\n{PASSWORD_LINE} {} {ciphertext}\r\n{USER_LINE} rs-5f3a9c21\r\n",
        key.id()
    );
    assert_eq!(
        decrypt(&stdout, &key).expect("a line").expect("decrypts"),
        VECTOR_PASSWORD
    );
    // Another key cannot, and says which key the line named.
    assert_eq!(
        decrypt(&stdout, &KEY),
        Some(Err(WindowsSecretError::Decrypt(key.id().to_owned())))
    );
}

#[test]
fn generated_keys_are_3072_bits_and_survive_storage() {
    assert_eq!(KEY.public_key().size() * 8, PASSWORD_KEY_BITS);
    assert_eq!(KEY.public_key().e(), &BigUint::from(65_537u32));
    let stored = PasswordKey::from_der(&KEY.to_der().expect("der")).expect("reads back");
    assert_eq!(stored.id(), KEY.id());
    let ct = rust_encrypt(&KEY.public_key(), "Pa55-word!Long.enough");
    assert_eq!(stored.decrypt(&ct).expect("decrypts"), "Pa55-word!Long.enough");
    assert_eq!(KEY.id().len(), 16);
    assert!(
        KEY.id()
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    let shown = format!("{:?}", *KEY);
    assert!(shown.contains(KEY.id()) && !shown.contains("private"), "{shown}");
    assert!(PasswordKey::from_der(b"not a key").is_err());
}

#[test]
fn the_public_key_xml_is_what_dotnet_reads() {
    let xml = public_key_xml(&KEY.public_key()).expect("xml");
    let inner = |tag: &str| {
        let open = format!("<{tag}>");
        let start = xml.find(&open).expect("element") + open.len();
        let end = xml.find(&format!("</{tag}>")).expect("closed");
        Base64::decode_vec(&xml[start..end]).expect("base64")
    };
    assert!(xml.starts_with("<RSAKeyValue><Modulus>") && xml.ends_with("</Exponent></RSAKeyValue>"));
    // .NET wants the unsigned big-endian modulus without a leading zero byte: 384 bytes for 3072 bits.
    assert_eq!(inner("Modulus"), KEY.public_key().n().to_bytes_be());
    assert_eq!(inner("Modulus").len(), 384);
    assert_eq!(inner("Exponent"), [1, 0, 1]);
    assert!(
        xml.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"<>/+=".contains(&b))
    );
    let small = RsaPrivateKey::new(&mut OsRng, 1024)
        .expect("keygen")
        .to_public_key();
    assert!(public_key_xml(&small).is_err());
}

/// Encrypts like the script, with OpenSSL, from the XML the script receives. Skipped (saying so) when
/// Python's `cryptography` is missing.
#[test]
fn openssl_encrypting_from_the_script_xml_round_trips() {
    let xml = public_key_xml(&KEY.public_key()).expect("xml");
    let program = r#"
import base64, re, sys
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives import hashes
xml, password = sys.argv[1], sys.argv[2]
field = lambda tag: int.from_bytes(base64.b64decode(re.search("<%s>([^<]*)</%s>" % (tag, tag), xml).group(1)), "big")
key = rsa.RSAPublicNumbers(field("Exponent"), field("Modulus")).public_key()
oaep = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
print(base64.b64encode(key.encrypt(password.encode("utf-8"), oaep)).decode())
"#;
    let password = "Aa1!#%*+,-.:=?@^_~zZ9";
    let out = std::process::Command::new("python3")
        .args(["-c", program, &xml, password])
        .output();
    let Some(out) = out.ok().filter(|o| o.status.success()) else {
        eprintln!("skipped: python3 with the cryptography package is not available");
        return;
    };
    let ciphertext = String::from_utf8(out.stdout).expect("ascii");
    let stdout = format!("{PASSWORD_LINE} {} {}", KEY.id(), ciphertext.trim());
    assert_eq!(decrypt(&stdout, &KEY).expect("line").expect("decrypts"), password);
}

#[test]
fn lines_are_parsed_strictly() {
    let id = KEY.id();
    assert_eq!(encrypted_password("passport: ready\n"), None);
    assert_eq!(decrypt("nothing here", &KEY), None);
    for bad in [
        format!("{PASSWORD_LINE} {id}"),
        format!("{PASSWORD_LINE} short AAAA"),
        format!("{PASSWORD_LINE} {id} AAAA extra"),
        format!("x{PASSWORD_LINE} {id} AAAA"),
    ] {
        assert_eq!(encrypted_password(&bad), None, "{bad}");
    }
    let line = encrypted_password(&format!("  {PASSWORD_LINE} {id} QUJD\r\n")).expect("parsed");
    assert_eq!(line.key_id, id);
    assert_eq!(line.ciphertext, "QUJD");
    assert_eq!(KEY.decrypt("not base64!"), Err(WindowsSecretError::NotBase64));
    assert!(matches!(KEY.decrypt("QUJD"), Err(WindowsSecretError::Decrypt(_))));
    // A control character is not a password.
    let ct = rust_encrypt(&KEY.public_key(), "abc\ndef");
    assert_eq!(KEY.decrypt(&ct), Err(WindowsSecretError::NotAPassword));
}

#[test]
fn the_reported_user_must_be_a_passport_name() {
    assert_eq!(
        reported_user("passport: x\r\npassport-user: rs-5f3a9c21-0a1b2c\r\n").as_deref(),
        Some("rs-5f3a9c21-0a1b2c")
    );
    assert_eq!(reported_user("passport-user: Administrator\n"), None);
    assert_eq!(reported_user("passport-user:\n"), None);
    assert_eq!(reported_user(""), None);
}

#[test]
fn scrubbing_removes_every_password_line() {
    let (key, ciphertext) = vector();
    let text = format!(
        "passport: created\n{PASSWORD_LINE} {} {ciphertext}\nWARNING: x {PASSWORD_LINE} {ciphertext}\nlast",
        key.id()
    );
    let clean = scrub(&text);
    assert!(
        !clean.contains(&ciphertext[..40]) && !clean.contains(PASSWORD_LINE),
        "{clean}"
    );
    assert!(clean.starts_with("passport: created\n") && clean.ends_with("last"));
    assert_eq!(scrub("nothing\nto do"), "nothing\nto do");
}
