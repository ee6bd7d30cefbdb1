# ---- passport: extend (static text; request values only come from the variables above) ----

# The request was extended: its recorded expiry, and with it the account's own, moves later to
# $PassportExpiresAt. Never earlier: an extension delivered late must not cut a later one short.
$account = Get-PassportAccount
if ($null -eq $account) {
    Write-Output "passport: no user $PassportUser here; nothing to extend"
    exit 0
}
Assert-PassportOwned $account
$holder = @(Get-HolderLines 'holder' $true)
if ($holder.Count -eq 0) {
    Write-Output "passport: this request does not hold $PassportUser here; nothing to extend"
    exit 0
}
$expiresAt = $PassportExpiresAt
$recorded = Get-ExpiryOf (Get-HolderLines 'expires' $true | Select-Object -First 1)
if ($null -ne $recorded -and $recorded -ge $expiresAt) {
    Write-Output "passport: $PassportUser already expires at $recorded or later"
    exit 0
}
$others = @(Get-OtherHolders)
$otherExpiries = @(Get-HolderLines 'expires' $false)
Set-Holders ($others + $otherExpiries + $holder + ('expires=' + $PassportHolder + ' ' + $expiresAt))
Set-PassportAccountExpires $account (Get-PassportAccountExpires $expiresAt $others $otherExpiries)
Write-Output "passport: $PassportUser now expires at $expiresAt (seconds since the epoch) or later"
exit 0
