"""A stand-in for a Windows instance's PowerShell in the SSM emulator, because PowerShell cannot run
here. It does not run the script: it reads the quoted assignments of the header the operator
generated and prints what the real provisioning script prints on success, so the operator's side
(decrypting, storing, scrubbing, reporting the account) is exercised end to end:

    passport-user: <account>
    passport-password: <key id> <base64 of RSA-OAEP(SHA-1) of the password>

which is what RSACryptoServiceProvider.FromXmlString + Encrypt($bytes, $true) produce. As a domain
controller ("dc") it names the account as ps/common.ps1 does: rs-<id>-<first 6 hex of
SHA-256("<holder>/<computer name, lower case>")>. The password it made and the account are written to
<state dir>/<instance id>.password and .user for the test to compare, and the account expiry a
provisioning or extension script sets to .expires. A revoke script prints a line.

Usage (as an agent runner): fake_windows.py <instance id> <state dir> member|dc <script.ps1>
"""

import base64
import hashlib
import os
import re
import secrets
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

COMPUTER_NAME = "EC2AMAZ-FAKEDC1"
ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789!#%*+,-.:=?@^_~"


def assignment(script, name):
    match = re.search(r"^\$%s = '([^']*)'$" % name, script, re.MULTILINE)
    return match.group(1) if match else None


def assignment_long(script, name):
    match = re.search(r"^\$%s = \[long\] (\d+)$" % name, script, re.MULTILINE)
    return int(match.group(1)) if match else None


def main():
    instance_id, state_dir, role, path = sys.argv[1:5]
    with open(path) as file:
        script = file.read()
    user = assignment(script, "PassportUser")
    holder = assignment(script, "PassportHolder")
    if role == "dc":
        seed = "%s/%s" % (holder, COMPUTER_NAME.lower())
        user = "%s-%s" % (user, hashlib.sha256(seed.encode()).hexdigest()[:6])
    if "# passport: revoke" in script:
        print("passport: revoked user %s" % user)
        return 0
    expires = assignment_long(script, "PassportExpiresAt")
    with open(os.path.join(state_dir, instance_id + ".expires"), "w") as file:
        file.write(str(expires))
    if "# passport: extend" in script:
        print("passport: %s now expires at %s (seconds since the epoch) or later" % (user, expires), end="\r\n")
        return 0
    key_id = assignment(script, "PassportPasswordKeyId")
    xml = assignment(script, "PassportPasswordKey")
    if not key_id or not xml:
        sys.stderr.write("fake_windows: no password key in the script\n")
        return 1
    field = lambda tag: int.from_bytes(
        base64.b64decode(re.search("<%s>([^<]*)</%s>" % (tag, tag), xml).group(1)), "big"
    )
    key = rsa.RSAPublicNumbers(field("Exponent"), field("Modulus")).public_key()
    password = "".join(secrets.choice(ALPHABET) for _ in range(24)) + "Aa2!"
    oaep = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    sealed = base64.b64encode(key.encrypt(password.encode(), oaep)).decode()
    with open(os.path.join(state_dir, instance_id + ".password"), "w") as file:
        file.write(password)
    with open(os.path.join(state_dir, instance_id + ".user"), "w") as file:
        file.write(user)
    print("passport: created local user %s" % user, end="\r\n")
    print("passport-user: %s" % user, end="\r\n")
    print("passport-password: %s %s" % (key_id, sealed), end="\r\n")
    print("passport: user %s is ready" % user, end="\r\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
