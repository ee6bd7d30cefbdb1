# ---- passport: provision (static text) ----

# First, under the lock: a request revoked on this host is never provisioned again. This command may
# have been delivered late, after the revoke that ended its request, and no revoke would follow.
if (Test-Path -LiteralPath $PassportTombstone) {
    Exit-Passport $PassportExitRevoked ("request $PassportHolder was already revoked on this host; " +
        'refusing to provision it again')
}

$account = Get-PassportAccount
$others = @()
if ($null -ne $account) {
    Assert-PassportOwned $account
    $others = @(Get-OtherHolders)
}
# Control characters of the request would break the file into lines.
$holder = 'holder=' + $PassportHolder + ' ' + ($PassportRequest -replace '[\x00-\x1f\x7f]', '?')
# Recorded first: an account passport created is never left without the request that holds it.
Set-Holders ($others + $holder)

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
        Set-LocalUser -InputObject $account -Password $PassportPassword -PasswordNeverExpires $true `
            -AccountNeverExpires
        Enable-LocalUser -InputObject $account
        Write-Output "passport: local user $PassportUser exists (created by passport); password reset"
    }
    try {
        Add-LocalGroupMember -SID $RemoteDesktopUsersSid -Member $account
    } catch [Microsoft.PowerShell.Commands.MemberExistsException] {
        # Already a member from an earlier run: nothing to do.
    }
}
Write-Output "passport: user $PassportUser is ready"
exit 0
