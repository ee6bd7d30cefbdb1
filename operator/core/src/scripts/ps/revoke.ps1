# ---- passport: revoke (static text) ----

# Logs off the user's sessions and stops whatever it still runs.
function Stop-PassportSessions {
    # quser prints "USERNAME SESSIONNAME ID STATE IDLE LOGON"; SESSIONNAME is empty for disconnected
    # sessions, so the ID is the first all-digit field after the name. With no sessions at all quser
    # exits 1 with a message on stderr, which cmd discards.
    $lines = @(cmd.exe /d /c 'quser 2>nul')
    foreach ($line in @($lines | Select-Object -Skip 1)) {
        $fields = @($line.TrimStart(' ', '>') -split '\s+')
        if ($fields.Count -lt 3 -or $fields[0] -ne $PassportUser) {
            continue
        }
        $ids = @($fields[1..($fields.Count - 1)] | Where-Object { $_ -match '^\d+\z' })
        $id = $ids | Select-Object -First 1
        if ($null -ne $id) {
            logoff.exe $id
            Write-Output "passport: logged off session $id of $PassportUser"
        }
    }
    Get-Process -IncludeUserName |
        Where-Object { $_.UserName -and ($_.UserName -split '\\')[-1] -eq $PassportUser } |
        Stop-Process -Force -ErrorAction SilentlyContinue
}

# Before anything else (under the lock): a tombstone for this request, so that a provisioning command
# of it that runs later (delivered late) refuses instead of bringing the account back. Whatever
# follows, a revoke leaves it: for a missing account and for a holder not listed too.
New-PassportDir $PassportRevokedDir
[System.IO.File]::WriteAllText($PassportTombstone, $PassportUser + "`r`n")
# Holders never repeat and no provisioning command is delivered days late: old tombstones can go.
try {
    $cutoff = (Get-Date).ToUniversalTime().AddDays(-7)
    Get-ChildItem -LiteralPath $PassportRevokedDir -File |
        Where-Object { $_.LastWriteTimeUtc -lt $cutoff } |
        Remove-Item -Force
} catch {
    Write-Warning ("passport: could not prune old tombstones in " + $PassportRevokedDir + ": " + $_)
}

$account = Get-PassportAccount
if ($null -eq $account) {
    Remove-Item -LiteralPath $PassportHoldersFile -Force -ErrorAction SilentlyContinue
    Write-Output "passport: user $PassportUser does not exist; nothing to revoke"
    exit 0
}
Assert-PassportOwned $account

# This request lets go (a holder the file does not list changes nothing). Written first: should the
# removal below fail, a retry finds no holder left and removes the account.
$others = @(Get-OtherHolders)
Set-Holders ($others + @(Get-HolderLines 'expires' $false))
if ($others.Count -gt 0) {
    Write-Output ("passport: user $PassportUser kept: still held by " + $others.Count + ' other request(s)')
    exit 0
}
$sid = $account.SID.Value

# Disable first so that no new logon starts while sessions are being ended.
if ($PassportDomainController) {
    Disable-ADAccount -Identity $account
    Stop-PassportSessions
    Remove-ADUser -Identity $account -Confirm:$false
} else {
    Disable-LocalUser -InputObject $account
    Stop-PassportSessions
    Remove-LocalUser -InputObject $account
}

# The profile (C:\Users\<name>) outlives the account; remove it so that nothing of the user lingers.
try {
    Get-CimInstance -ClassName Win32_UserProfile -Filter "SID = '$sid'" | Remove-CimInstance
} catch {
    Write-Warning ("passport: could not remove the profile of " + $PassportUser + ": " + $_)
}
Remove-Item -LiteralPath $PassportHoldersFile -Force -ErrorAction SilentlyContinue
Write-Output "passport: revoked user $PassportUser"
exit 0
