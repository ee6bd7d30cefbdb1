# ---- passport: provision (static text) ----

# First, under the lock: a request revoked on this host is never provisioned again. This command may
# have been delivered late, after the revoke that ended its request, and no revoke would follow.
if (Test-Path -LiteralPath $PassportTombstone) {
    Exit-Passport $PassportExitRevoked ("request $PassportHolder was already revoked on this host; " +
        'refusing to provision it again')
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

# The account expires when the last of its holders' access ends, a backstop should no revoke ever
# arrive; never while a holder's expiry is unknown (recorded by an earlier version).
$latest = $expiresAt
foreach ($other in $others) {
    $id = ($other -split ' ', 2)[0].Substring('holder='.Length)
    $line = $otherExpiries | Where-Object { ($_ -split ' ', 2)[0] -ceq ('expires=' + $id) } |
        Select-Object -First 1
    $seconds = Get-ExpiryOf $line
    if ($null -eq $seconds) {
        $latest = $null
        break
    }
    if ($seconds -gt $latest) {
        $latest = $seconds
    }
}
$accountExpires = $null
if ($null -ne $latest) {
    $accountExpires = [DateTimeOffset]::FromUnixTimeSeconds($latest).LocalDateTime
}

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
    if ($null -eq $accountExpires) {
        Clear-ADAccountExpiration -Identity $account
    } else {
        Set-ADAccountExpiration -Identity $account -DateTime $accountExpires
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
    if ($null -eq $accountExpires) {
        Set-LocalUser -InputObject $account -AccountNeverExpires
    } else {
        Set-LocalUser -InputObject $account -AccountExpires $accountExpires
    }
    try {
        Add-LocalGroupMember -SID $RemoteDesktopUsersSid -Member $account
    } catch [Microsoft.PowerShell.Commands.MemberExistsException] {
        # Already a member from an earlier run: nothing to do.
    }
}
Write-Output "passport: user $PassportUser is ready"
exit 0
