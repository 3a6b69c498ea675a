#!/usr/bin/env bash
# Installs what the PowerShell module's tests need, only when it is missing, so it is cheap to call
# before every test run: PowerShell 7 as a .NET global tool and Pester from NuGet.
# Prints the pwsh path and the Pester module folder as PWSH=... and PESTER=... lines.
set -euo pipefail

PWSH_VERSION="${PWSH_VERSION:-7.6.9}"
PESTER_VERSION="${PESTER_VERSION:-5.7.1}"
TOOLS_DIR="${HOME}/.dotnet/tools"
NUGET_DIR="${NUGET_PACKAGES:-${HOME}/.nuget/packages}"
PWSH="${TOOLS_DIR}/pwsh"
PESTER_DIR="${NUGET_DIR}/pester/${PESTER_VERSION}/tools"

if ! command -v dotnet >/dev/null 2>&1; then
  echo "setup-powershell: dotnet is not installed; install the .NET SDK (8 or later) first." >&2
  exit 1
fi

if [ ! -x "${PWSH}" ]; then
  echo "setup-powershell: installing PowerShell ${PWSH_VERSION} as a dotnet global tool" >&2
  dotnet tool install --global PowerShell --version "${PWSH_VERSION}" >&2
fi

if [ ! -f "${PESTER_DIR}/Pester.psd1" ]; then
  echo "setup-powershell: downloading Pester ${PESTER_VERSION} from NuGet" >&2
  work="$(mktemp -d)"
  trap 'rm -rf "${work}"' EXIT
  # PackageDownload fetches the package into the NuGet cache without referencing it, which is the
  # one way `dotnet restore` will take a package that is not a .NET library.
  cat >"${work}/pester-download.csproj" <<CSPROJ
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup>
    <TargetFramework>net$(dotnet --version | cut -d. -f1).0</TargetFramework>
  </PropertyGroup>
  <ItemGroup>
    <PackageDownload Include="Pester" Version="[${PESTER_VERSION}]" />
  </ItemGroup>
</Project>
CSPROJ
  dotnet restore "${work}/pester-download.csproj" --nologo >&2
fi

if [ ! -f "${PESTER_DIR}/Pester.psd1" ]; then
  echo "setup-powershell: Pester ${PESTER_VERSION} is still missing at ${PESTER_DIR}" >&2
  exit 1
fi

echo "PWSH=${PWSH}"
echo "PESTER=${PESTER_DIR}/Pester.psd1"
