# ---- passport: provision (static text) ----

# First, under the lock: a request revoked on this host is never provisioned again. This command may
# have been delivered late, after the revoke that ended its request, and no revoke would follow.
if (Test-Path -LiteralPath $PassportTombstone) {
    Exit-Passport $PassportExitRevoked ("request $PassportHolder was already revoked on this host; " +
        'refusing to provision it again')
}

# The password is made here and leaves this host only encrypted to the operator's one-time key
# ($PassportPasswordKey): RSA-OAEP with SHA-1 (RSACryptoServiceProvider.Encrypt with fOAEP = $true,
# available on every .NET Framework and .NET), base64. It stays a char[] and a SecureString: never a
# string, a cmdlet argument or a command line, so no transcript or module log records it.
# 28 characters from the CSPRNG (rejection sampling: no modulo bias) until all four classes appear.
# Look-alikes (I, O, l, 0, 1) are left out: the password may have to be typed into a login screen.
$PassportAlphabet = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789!#%*+,-.:=?@^_~'
$PassportPasswordLength = 28
function New-PassportPasswordChars {
    $rng = New-Object System.Security.Cryptography.RNGCryptoServiceProvider
    $byte = New-Object byte[] 1
    $limit = 256 - (256 % $PassportAlphabet.Length)
    try {
        while ($true) {
            $chars = New-Object char[] $PassportPasswordLength
            $i = 0
            while ($i -lt $chars.Length) {
                $rng.GetBytes($byte)
                if ($byte[0] -lt $limit) {
                    $chars[$i] = $PassportAlphabet[$byte[0] % $PassportAlphabet.Length]
                    $i++
                }
            }
            $upper = $false; $lower = $false; $digit = $false; $symbol = $false
            foreach ($c in $chars) {
                if ([char]::IsUpper($c)) { $upper = $true }
                elseif ([char]::IsLower($c)) { $lower = $true }
                elseif ([char]::IsDigit($c)) { $digit = $true }
                else { $symbol = $true }
            }
            if ($upper -and $lower -and $digit -and $symbol) {
                return ,$chars
            }
            [Array]::Clear($chars, 0, $chars.Length)
        }
    } finally {
        $rng.Dispose()
    }
}
$passwordChars = New-PassportPasswordChars
$PassportPassword = New-Object System.Security.SecureString
foreach ($c in $passwordChars) {
    $PassportPassword.AppendChar($c)
}
$PassportPassword.MakeReadOnly()
# Encrypted before anything changes: an unusable key fails the command with nothing done.
$rsa = New-Object System.Security.Cryptography.RSACryptoServiceProvider
$plain = $null
try {
    $rsa.FromXmlString($PassportPasswordKey)
    $plain = [System.Text.Encoding]::UTF8.GetBytes($passwordChars)
    $PassportSealedPassword = [Convert]::ToBase64String($rsa.Encrypt($plain, $true))
} finally {
    if ($null -ne $plain) {
        [Array]::Clear($plain, 0, $plain.Length)
    }
    [Array]::Clear($passwordChars, 0, $passwordChars.Length)
    $rsa.Dispose()
}

$account = Get-PassportAccount
$others = @()
$otherExpiries = @()
$expiresAt = $PassportExpiresAt
if ($null -ne $account) {
    Assert-PassportOwned $account
    $others = @(Get-OtherHolders)
    $otherExpiries = @(Get-HolderLines 'expires' $false)
    # Expiry only moves later: a provisioning command delivered late (after the one of an extension)
    # must not cut the access short.
    $recorded = Get-ExpiryOf (Get-HolderLines 'expires' $true | Select-Object -First 1)
    if ($null -ne $recorded -and $recorded -gt $expiresAt) {
        $expiresAt = $recorded
    }
}
# Control characters of the request would break the file into lines.
$holder = 'holder=' + $PassportHolder + ' ' + ($PassportRequest -replace '[\x00-\x1f\x7f]', '?')
$expires = 'expires=' + $PassportHolder + ' ' + $expiresAt
# Recorded first: an account passport created is never left without the request that holds it.
Set-Holders ($others + $otherExpiries + $holder + $expires)

$accountExpires = Get-PassportAccountExpires $expiresAt $others $otherExpiries

if ($PassportDomainController) {
    if ($null -eq $account) {
        $account = New-ADUser -Name $PassportUser -SamAccountName $PassportUser `
            -Description $PassportDescription -AccountPassword $PassportPassword `
            -PasswordNeverExpires $true -CannotChangePassword $true -Enabled $true -PassThru
        Write-Output "passport: created domain user $PassportUser"
    } else {
        Set-ADAccountPassword -Identity $account -Reset -NewPassword $PassportPassword
        Enable-ADAccount -Identity $account
        Write-Output "passport: domain user $PassportUser exists (created by passport); password reset"
    }
    # Adding a member that is already in the group is not an error.
    Add-ADGroupMember -Identity $RemoteDesktopUsersSid -Members $account
} else {
    if ($null -eq $account) {
        $account = New-LocalUser -Name $PassportUser -Password $PassportPassword `
            -Description $PassportDescription -PasswordNeverExpires -UserMayNotChangePassword `
            -AccountNeverExpires
        Write-Output "passport: created local user $PassportUser"
    } else {
        Set-LocalUser -InputObject $account -Password $PassportPassword -PasswordNeverExpires $true
        Enable-LocalUser -InputObject $account
        Write-Output "passport: local user $PassportUser exists (created by passport); password reset"
    }
    try {
        Add-LocalGroupMember -SID $RemoteDesktopUsersSid -Member $account
    } catch [Microsoft.PowerShell.Commands.MemberExistsException] {
        # Already a member from an earlier run: nothing to do.
    }
}
Set-PassportAccountExpires $account $accountExpires
# For the operator: the account set up here (on a domain controller, the domain account) and its new
# password, encrypted. Written straight to stdout, so no formatting can wrap the long line.
[Console]::Out.WriteLine('passport-user: ' + $PassportUser)
[Console]::Out.WriteLine('passport-password: ' + $PassportPasswordKeyId + ' ' + $PassportSealedPassword)
Write-Output "passport: user $PassportUser is ready"
exit 0
