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

# Defence in depth: the operator validated the name too, but this script never acts on another.
# (\z rather than $: in .NET, $ also matches before a final newline.)
if ($PassportUser -cnotmatch '^rs-[0-9a-f]{8}(-[a-z0-9]{1,6})?\z') {
    Exit-Passport $PassportExitInvalid "refusing to run: '$PassportUser' is not a passport username"
}
if ($PassportDomainController) {
    Import-Module ActiveDirectory
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
