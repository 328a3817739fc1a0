#!/usr/bin/env bash
# Runs the Bicep CLI with the given arguments, restoring it first when the NuGet cache lacks it.
# The CLI comes from the NuGet package Azure.Bicep.CommandLine.linux-x64 because Bicep's own
# installer downloads from GitHub releases, which our machines cannot reach.
set -euo pipefail

BICEP_VERSION=0.49.2
packages="${NUGET_PACKAGES:-$HOME/.nuget/packages}"
bicep="$packages/azure.bicep.commandline.linux-x64/$BICEP_VERSION/tools/bicep"

if [[ ! -x "$bicep" ]]; then
  if ! command -v dotnet >/dev/null; then
    echo "infra/tools/bicep.sh: the .NET SDK (dotnet) is needed to restore the Bicep CLI from NuGet" >&2
    exit 1
  fi
  echo "restoring Azure.Bicep.CommandLine.linux-x64 $BICEP_VERSION from NuGet" >&2
  project="$(mktemp -d)"
  # A throwaway project whose only job is to download the package into the NuGet cache.
  cat >"$project/bicep-download.csproj" <<EOF
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup><TargetFramework>net$(dotnet --version | cut -d. -f1).0</TargetFramework></PropertyGroup>
  <ItemGroup><PackageDownload Include="Azure.Bicep.CommandLine.linux-x64" Version="[$BICEP_VERSION]" /></ItemGroup>
</Project>
EOF
  DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 dotnet restore "$project" --verbosity quiet >&2
  rm -rf "$project"
  chmod +x "$bicep"
fi

exec "$bicep" "$@"
