# Dot-sourced in BeforeAll by the Pester files that run the module over the real host
# (bin/azsbackup.js, built by npm run build): imports the module and gives the helpers they share.
if ($env:AZSBACKUP_TEST_HOST_BUILT -ne '1') {
    throw 'The host is not built (dist/host/main.js is missing): run npm run build before these tests.'
}
Remove-Item Env:AZSBACKUP_CLI -ErrorAction Ignore
Import-Module $env:AZSBACKUP_TEST_MODULE -Force -ErrorAction Stop
$script:compiled = Get-Content -LiteralPath $env:AZSBACKUP_TEST_MANIFESTS -Raw | ConvertFrom-Json -AsHashtable
$script:secrets = Get-Content -LiteralPath $env:AZSBACKUP_TEST_SECRETS_FILE -Raw | ConvertFrom-Json -AsHashtable

function ConvertTo-Secure([string] $text) {
    $s = [System.Security.SecureString]::new()
    foreach ($ch in $text.ToCharArray()) { $s.AppendChar($ch) }
    $s.MakeReadOnly()
    $s
}
function New-TestFolder([string] $name) {
    $dir = Join-Path $env:AZSBACKUP_TEST_WORK ($name + '-' + [guid]::NewGuid().ToString('n').Substring(0, 8))
    New-Item -ItemType Directory -Path $dir -Force | Out-Null
    $dir
}
