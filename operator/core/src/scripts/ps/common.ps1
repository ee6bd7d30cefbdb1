# ---- passport: common part (static text; request values only come from the variables above) ----

# The description marks an account as passport's: revocation only ever removes accounts carrying it.
# (The description of a local account holds at most 48 characters.)
$PassportDescription = 'Managed by passport; removed when access ends'
# Remote Desktop Users, by its well-known SID, so that localized Windows works too.
$RemoteDesktopUsersSid = 'S-1-5-32-555'

function Exit-Passport([int] $Code, [string] $Message) {
    [Console]::Error.WriteLine("passport: " + $Message)
    exit $Code
}

if ($PassportHolder -cnotmatch '^[0-9a-z-]{1,64}\z') {
    Exit-Passport $PassportExitInvalid "refusing to run: '$PassportHolder' is not a Kubernetes UID"
}

# A domain controller (DomainRole 4: backup, 5: primary) has no local accounts: the user is a domain
# account, one per request and controller, named rs-<masked id>-<suffix> with the suffix the first 6
# hex characters of SHA-256("<request UID>/<computer name, lower case>"). Neither two requests nor two
# controllers of one domain in one request ever share one, and the revoke finds the same name.
$PassportDomainRole = (Get-CimInstance -ClassName Win32_ComputerSystem).DomainRole
$PassportDomainController = ($PassportDomainRole -eq 4 -or $PassportDomainRole -eq 5)
if ($PassportDomainController) {
    $sha256 = [System.Security.Cryptography.SHA256]::Create()
    try {
        $seed = $PassportHolder + '/' + $env:COMPUTERNAME.ToLowerInvariant()
        $digest = $sha256.ComputeHash([System.Text.Encoding]::UTF8.GetBytes($seed))
    } finally {
        $sha256.Dispose()
    }
    $PassportUser = $PassportUser + '-' + (-join ($digest[0..2] | ForEach-Object { $_.ToString('x2') }))
}

# Defence in depth: the operator validated the name too, but this script never acts on another.
# (\z rather than $: in .NET, $ also matches before a final newline.)
if ($PassportUser -cnotmatch '^rs-[0-9a-f]{8}(-[a-z0-9]{1,6})?\z') {
    Exit-Passport $PassportExitInvalid "refusing to run: '$PassportUser' is not a passport username"
}
if ($PassportDomainController) {
    Import-Module ActiveDirectory
}

# One passport script at a time on a host: SSM runs commands concurrently, and the holders file is
# read, changed and written back. Windows releases the mutex when the process ends.
$PassportLock = New-Object System.Threading.Mutex($false, 'Global\passport')
try {
    if (-not $PassportLock.WaitOne(60000)) {
        Exit-Passport 1 'timed out waiting for another passport script on this host'
    }
} catch {
    # A mutex abandoned by a script that died is acquired all the same.
    if ($_.Exception.GetBaseException() -isnot [System.Threading.AbandonedMutexException]) {
        throw
    }
}

# Several access requests of one requester share one account. This file lists the requests holding
# it, one line each: "holder=<AccessRequest UID> <namespace/name>", and when each one's access ends:
# "expires=<AccessRequest UID> <seconds since the epoch>" (absent for holders recorded by versions
# that did not record it); the last one to go removes the account. (On a domain controller the file
# is on that controller, not in the domain.)
# Upgrade rule: accounts created before holders existed have no file, and earlier versions recorded
# no request. The missing file counts as one unknown holder standing for the requests provisioned
# before the upgrade: the next provisioning adopts it (the file then lists that request), a revoke
# before that releases it. Those requests thus count as one, and the first to end can end the access
# of the others: ending access early is preferred to an account no revoke would ever remove.
$PassportHoldersFile = Join-Path $env:ProgramData ('passport\users\' + $PassportUser)

# The lines of kind $Kind ('holder' or 'expires') of this request ($Mine) or of every other one.
function Get-HolderLines([string] $Kind, [bool] $Mine) {
    if (Test-Path -LiteralPath $PassportHoldersFile) {
        Get-Content -LiteralPath $PassportHoldersFile | Where-Object {
            $_ -clike ($Kind + '=*') -and
                ((($_ -split ' ', 2)[0] -ceq ($Kind + '=' + $PassportHolder)) -eq $Mine)
        }
    }
}

# The holder lines of every request but this one.
function Get-OtherHolders {
    Get-HolderLines 'holder' $false
}

# The expiry (seconds since the epoch) an "expires=" line records, or $null.
function Get-ExpiryOf($Line) {
    $seconds = 0L
    if ($null -ne $Line -and [long]::TryParse(($Line -split ' ')[1], [ref] $seconds)) {
        return $seconds
    }
    return $null
}

# A revoke leaves a tombstone named after its holder here; provisioning a tombstoned holder (a late
# command, run after its own revoke) is refused. Holders (AccessRequest UIDs) never repeat.
$PassportRevokedDir = Join-Path $env:ProgramData 'passport\revoked'
$PassportTombstone = Join-Path $PassportRevokedDir $PassportHolder

# Creates directory $Dir if needed, for SYSTEM and Administrators only.
function New-PassportDir([string] $Dir) {
    if (-not (Test-Path -LiteralPath $Dir)) {
        New-Item -ItemType Directory -Path $Dir -Force | Out-Null
        icacls.exe $Dir /inheritance:r /grant:r '*S-1-5-18:(OI)(CI)F' '*S-1-5-32-544:(OI)(CI)F' | Out-Null
    }
}

# Writes the holders file. Its directory is for SYSTEM and Administrators only.
function Set-Holders([string[]] $Lines) {
    New-PassportDir (Split-Path -Parent $PassportHoldersFile)
    $text = ''
    foreach ($line in $Lines) {
        $text += $line + "`r`n"
    }
    [System.IO.File]::WriteAllText($PassportHoldersFile, $text)
}

# The account, or $null. The AD filter is a literal string: the AD module reads $PassportUser itself.
function Get-PassportAccount {
    if ($PassportDomainController) {
        Get-ADUser -Filter 'SamAccountName -eq $PassportUser' -Properties Description
    } else {
        Get-LocalUser | Where-Object { $_.Name -eq $PassportUser }
    }
}

function Assert-PassportOwned($Account) {
    if ($Account.Description -cne $PassportDescription) {
        Exit-Passport $PassportExitForeign ("user $PassportUser exists but was not created by passport " +
            "(its description is not '$PassportDescription'); refusing to touch it")
    }
}

# When the account is to expire by itself, a backstop should no revoke ever arrive: when the last of
# its holders' access ends ($ExpiresAt for this request; the other holders' recorded expiries), or
# never while a holder's expiry is unknown (recorded by an earlier version).
function Get-PassportAccountExpires([long] $ExpiresAt, $Others, $OtherExpiries) {
    $latest = $ExpiresAt
    foreach ($other in $Others) {
        $id = ($other -split ' ', 2)[0].Substring('holder='.Length)
        $line = $OtherExpiries | Where-Object { ($_ -split ' ', 2)[0] -ceq ('expires=' + $id) } |
            Select-Object -First 1
        $seconds = Get-ExpiryOf $line
        if ($null -eq $seconds) {
            return $null
        }
        if ($seconds -gt $latest) {
            $latest = $seconds
        }
    }
    return [DateTimeOffset]::FromUnixTimeSeconds($latest).LocalDateTime
}

# Sets the account's own expiry ($null: never).
function Set-PassportAccountExpires($Account, $Expires) {
    if ($PassportDomainController) {
        if ($null -eq $Expires) {
            Clear-ADAccountExpiration -Identity $Account
        } else {
            Set-ADAccountExpiration -Identity $Account -DateTime $Expires
        }
    } elseif ($null -eq $Expires) {
        Set-LocalUser -InputObject $Account -AccountNeverExpires
    } else {
        Set-LocalUser -InputObject $Account -AccountExpires $Expires
    }
}
