/**
 * What the deployment promises, checked on what Azure receives: infra/main.bicep compiled to ARM
 * JSON by the Bicep CLI (restored from NuGet by infra/tools/bicep.sh on first use), and the lab-side
 * reset workflow that the app dispatches.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { HostSchema, loadLabConfigFile } from "../shared/lab/config.js";

/** Whatever the compiled JSON holds there: the tests read ARM JSON loosely. */
type Json = ReturnType<typeof JSON.parse>;

interface ArmResource {
  type: string;
  name: string;
  apiVersion: string;
  condition?: string;
  scope?: string;
  kind?: string;
  sku?: Record<string, unknown>;
  identity?: { type: string };
  properties?: Json;
}

interface ArmTemplate {
  variables?: Record<string, unknown>;
  resources: ArmResource[] | Record<string, ArmResource>;
  outputs?: Record<string, { type: string; value: string }>;
}

type PlacedResource = ArmResource & { module: string; variables: Record<string, unknown> };

const ROLE = {
  storageBlobDataOwner: "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
  storageTableDataContributor: "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
  monitoringMetricsPublisher: "3913510d-42f4-4e42-8a64-420c390055eb",
  keyVaultSecretsUser: "4633458b-17de-408a-b874-0445c86b69e6",
  keyVaultSecretsOfficer: "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
};

/** Runs the Bicep CLI and returns what it printed; a missing .NET SDK or a compile error fails here. */
function bicep(args: string[], env: NodeJS.ProcessEnv = process.env): string {
  try {
    return execFileSync("bash", ["infra/tools/bicep.sh", ...args, "--stdout"], { env, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (error) {
    const { stderr } = error as { stderr?: string };
    throw new Error(`bash infra/tools/bicep.sh ${args.join(" ")} failed (it needs the .NET SDK to restore the Bicep CLI):\n${stderr ?? String(error)}`);
  }
}

/** Every resource of the template and of its modules' nested templates, with the module it is in. */
function allResources(template: ArmTemplate, module = "main"): PlacedResource[] {
  const own = Array.isArray(template.resources) ? template.resources : Object.values(template.resources);
  return own.flatMap((resource) => [
    { ...resource, module, variables: template.variables ?? {} },
    ...(resource.type === "Microsoft.Resources/deployments" ? allResources(resource.properties.template as ArmTemplate, resource.name.replace(/^\[format\('([a-zA-Z]+)-.*$/, "$1")) : []),
  ]);
}

/** The role a role assignment grants, by its name in ROLE, looking through the template's variables. */
function roleOf(assignment: PlacedResource): string {
  const expression = assignment.properties.roleDefinitionId as string;
  const variable = expression.match(/variables\('(\w+)'\)(?:\.(\w+))?/);
  const value = variable ? (variable[2] ? (assignment.variables[variable[1]!] as Record<string, unknown>)[variable[2]] : assignment.variables[variable[1]!]) : expression;
  const id = String(value).match(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/)?.[0];
  return Object.entries(ROLE).find(([, roleId]) => roleId === id)?.[0] ?? `unknown role ${expression}`;
}

let template: ArmTemplate;
let templateText: string;
let resources: PlacedResource[];
const ofType = (type: string) => resources.filter((r) => r.type === type);
const one = (type: string) => {
  const found = ofType(type);
  expect(found, type).toHaveLength(1);
  return found[0]!;
};

beforeAll(() => {
  templateText = bicep(["build", "infra/main.bicep"]);
  template = JSON.parse(templateText) as ArmTemplate;
  resources = allResources(template);
}, 120_000);

describe("infra/main.bicep compiled to ARM", () => {
  it("reaches storage by identity only, over TLS 1.2, with no public blob access", () => {
    const storage = one("Microsoft.Storage/storageAccounts").properties;
    expect(storage).toMatchObject({ allowSharedKeyAccess: false, allowBlobPublicAccess: false, minimumTlsVersion: "TLS1_2", supportsHttpsTrafficOnly: true });
    expect(one("Microsoft.Storage/storageAccounts/blobServices/containers").properties.publicAccess).toBe("None");
    // No account key or connection string is ever read, anywhere in the template.
    expect(templateText).not.toMatch(/listKeys|listConnectionStrings|listAccountSas|AccountKey=|SharedAccessSignature=/i);
  });

  it("runs a Flex Consumption Linux app on Node.js 22 with a system-assigned identity, https only, TLS 1.2, FTP off", () => {
    const plan = one("Microsoft.Web/serverfarms");
    expect(plan.sku).toEqual({ name: "FC1", tier: "FlexConsumption" });
    expect(plan.properties.reserved).toBe(true);

    const site = one("Microsoft.Web/sites");
    expect(site.kind).toBe("functionapp,linux");
    expect(site.identity).toEqual({ type: "SystemAssigned" });
    expect(site.properties.httpsOnly).toBe(true);
    expect(site.properties.siteConfig).toMatchObject({ minTlsVersion: "1.2", scmMinTlsVersion: "1.2", ftpsState: "Disabled" });
    expect(site.properties.functionAppConfig.runtime).toEqual({ name: "node", version: "22" });
    expect(site.properties.functionAppConfig.deployment.storage).toMatchObject({ type: "blobContainer", authentication: { type: "SystemAssignedIdentity" } });

    const basicAuth = ofType("Microsoft.Web/sites/basicPublishingCredentialsPolicies");
    expect(basicAuth.map((p) => [p.name.match(/'(ftp|scm)'/)?.[1], p.properties.allow])).toEqual([
      ["ftp", false],
      ["scm", false],
    ]);
  });

  it("gives the app settings the app reads, with secrets only as Key Vault references", () => {
    const settings = new Map<string, string>(one("Microsoft.Web/sites").properties.siteConfig.appSettings.map((s: { name: string; value: string }) => [s.name, s.value]));
    expect([...settings.keys()]).toEqual(
      expect.arrayContaining([
        "AzureWebJobsStorage__accountName",
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
        "GITHUB_API_URL",
        "GITHUB_APP_ID",
        "GITHUB_APP_INSTALLATION_ID",
        "GITHUB_APP_PRIVATE_KEY",
        "GITHUB_WEBHOOK_SECRET",
        "LAB_CONFIG_PATH",
        "LAB_TABLE_PREFIX",
        "RESET_SCHEDULE",
        "OIDC_AUDIENCE",
        "OIDC_ISSUER",
      ]),
    );
    expect(settings.get("APPLICATIONINSIGHTS_AUTHENTICATION_STRING")).toBe("Authorization=AAD");
    // A connection string or a token in plain settings, or settings Flex rejects, must not appear.
    // __credential is for user-assigned identities; with the system-assigned one it must be absent.
    for (const name of settings.keys()) {
      expect(name).not.toMatch(/^(AzureWebJobsStorage|GITHUB_TOKEN|FUNCTIONS_WORKER_RUNTIME|FUNCTIONS_EXTENSION_VERSION|WEBSITE_RUN_FROM_PACKAGE)$|__credential$/);
    }
    for (const [name, value] of settings) {
      if (/KEY|SECRET|TOKEN|PASSWORD/i.test(name)) expect(value, name).toMatch(/^\[format\('@Microsoft\.KeyVault\(VaultName=\{0\};SecretName=\{1\}\)'/);
      expect(value, name).not.toMatch(/-----BEGIN|AccountKey=|SharedAccessSignature|[?&]sig=|password=|ghp_|github_pat_/i);
    }
    // The Application Insights connection string only names the resource: local auth is off, so
    // ingestion needs the app's Entra token.
    expect(settings.get("APPLICATIONINSIGHTS_CONNECTION_STRING")).toMatch(/^\[reference\(resourceId\('Microsoft\.Insights\/components'.*\)\.ConnectionString\]$/);
  });

  it("grants the app's identity exactly the four roles it uses, each scoped to its resource", () => {
    const appRoles = ofType("Microsoft.Authorization/roleAssignments").filter((r) => r.module === "functionApp");
    const granted = appRoles.map((r) => ({
      role: roleOf(r),
      scope: r.scope?.match(/^\[resourceId\('([^']+)'/)?.[1],
    }));
    expect(granted).toEqual([
      { role: "storageBlobDataOwner", scope: "Microsoft.Storage/storageAccounts" },
      { role: "storageTableDataContributor", scope: "Microsoft.Storage/storageAccounts" },
      { role: "monitoringMetricsPublisher", scope: "Microsoft.Insights/components" },
      { role: "keyVaultSecretsUser", scope: "Microsoft.KeyVault/vaults" },
    ]);
    for (const role of appRoles) {
      expect(role.properties.principalId).toMatch(/^\[reference\(resourceId\('Microsoft\.Web\/sites', parameters\('functionAppName'\)\), '[\d-]+', 'full'\)\.identity\.principalId\]$/);
      expect(role.properties.principalType).toBe("ServicePrincipal");
    }
  });

  it("keeps secrets in an RBAC Key Vault that only an admin named at deployment may write", () => {
    const vault = one("Microsoft.KeyVault/vaults").properties;
    expect(vault).toMatchObject({ enableRbacAuthorization: true, enableSoftDelete: true });
    expect(vault.accessPolicies).toBeUndefined();
    const adminRoles = ofType("Microsoft.Authorization/roleAssignments").filter((r) => r.module === "keyVault");
    expect(adminRoles).toHaveLength(1);
    expect(roleOf(adminRoles[0]!)).toBe("keyVaultSecretsOfficer");
    expect(adminRoles[0]!.scope).toMatch(/^\[resourceId\('Microsoft\.KeyVault\/vaults'/);
    expect(adminRoles[0]!.condition).toBe("[not(empty(parameters('adminPrincipalId')))]");
  });

  it("lets that admin, and no one else, clear a pair's record (Table data role on the storage account)", () => {
    const adminRoles = ofType("Microsoft.Authorization/roleAssignments").filter((r) => r.module === "storage");
    expect(adminRoles).toHaveLength(1);
    expect(roleOf(adminRoles[0]!)).toBe("storageTableDataContributor");
    expect(adminRoles[0]!.scope).toMatch(/^\[resourceId\('Microsoft\.Storage\/storageAccounts'/);
    expect(adminRoles[0]!.condition).toBe("[not(empty(parameters('adminPrincipalId')))]");
  });

  it("sends telemetry with Entra auth only", () => {
    expect(one("Microsoft.Insights/components").properties.DisableLocalAuth).toBe(true);
    expect(one("Microsoft.OperationalInsights/workspaces").properties.features.disableLocalAuth).toBe(true);
  });

  it("outputs the function app's name and base URL", () => {
    expect(Object.keys(template.outputs ?? {})).toEqual(expect.arrayContaining(["functionAppName", "baseUrl", "resourceGroupName", "keyVaultName", "oidcAudience"]));
  });

  it("takes the repository from lab.config.json in infra/main.bicepparam", () => {
    const env = { ...process.env, LAB_RESET_GITHUB_APP_ID: "123", LAB_RESET_GITHUB_APP_INSTALLATION_ID: "456" };
    const { parametersJson } = JSON.parse(bicep(["build-params", "infra/main.bicepparam"], env)) as { parametersJson: string };
    const { parameters } = JSON.parse(parametersJson) as { parameters: Record<string, { value: string }> };
    const lab = loadLabConfigFile("lab.config.json");
    expect(parameters.githubOwner?.value).toBe(lab.github.owner);
    expect(parameters.githubRepo?.value).toBe(lab.github.repo);
    expect(parameters.githubAppId?.value).toBe("123");
  }, 60_000);
});

describe("infra/github/lab-reset.yml, the reset workflow the app dispatches", () => {
  const workflow = parse(readFileSync("infra/github/lab-reset.yml", "utf8"));
  const job = workflow.jobs.reset;
  const steps: { name: string; run: string; "timeout-minutes"?: number }[] = job.steps;

  it("takes exactly the inputs the app sends, and names its run after the request", () => {
    const inputs = workflow.on.workflow_dispatch.inputs;
    expect(Object.keys(inputs).sort()).toEqual(["hosts", "pair", "request_id"]);
    for (const input of Object.values(inputs)) expect(input).toMatchObject({ required: true, type: "string" });
    // The app finds the run by request_id in its title when GitHub cannot return the run id.
    expect(workflow["run-name"]).toContain("${{ inputs.request_id }}");
    expect(workflow["run-name"]).toContain("${{ inputs.pair }}");
  });

  it("resets each host of the pair on that host's runner, reading the fields of the lab config's hosts", () => {
    expect(job.strategy.matrix.host).toBe("${{ fromJSON(inputs.hosts) }}");
    expect(job.strategy["fail-fast"]).toBe(false);
    expect(job["runs-on"]).toEqual(["self-hosted", "${{ matrix.host.runnerLabel }}"]);
    const used = new Set([...JSON.stringify(job).matchAll(/matrix\.host\.(\w+)/g)].map((m) => m[1]));
    expect([...used].sort()).toEqual(Object.keys(HostSchema.shape).sort());
    expect(job["timeout-minutes"]).toBeGreaterThan(0);
  });

  it("looks for a running job inside both VMs before restoring either, then waits for an IP address with a timeout", () => {
    // The pair's one VM runner lives in one of its two VMs: both are checked, and no restore starts
    // until both checks passed.
    const check = workflow.jobs.check;
    const checkSteps: { run: string }[] = check.steps;
    expect(check.strategy.matrix.host).toBe("${{ fromJSON(inputs.hosts) }}");
    expect(check["runs-on"]).toEqual(["self-hosted", "${{ matrix.host.runnerLabel }}"]);
    expect(job.needs).toBe("check");
    const guard = checkSteps.find((s) => /Invoke-Command -VMName \$env:VM_NAME[\s\S]*Runner\.Worker/.test(s.run));
    expect(guard?.run).toMatch(/if \(\$workers -gt 0\) \{\s*Write-Output "::error::A job is running in VM/);
    const index = (pattern: RegExp) => steps.findIndex((s) => pattern.test(s.run));
    const restore = index(/Get-VMCheckpoint -VMName \$env:VM_NAME -Name LATEST[\s\S]*Restore-VMCheckpoint/);
    const start = index(/Start-VM[\s\S]*IPAddresses/);
    expect(restore).toBeGreaterThanOrEqual(0);
    expect(start).toBeGreaterThan(restore);
    expect(steps[start]!["timeout-minutes"]).toBeGreaterThan(0);
    // One reset of a pair at a time.
    expect(workflow.concurrency).toEqual({ group: "lab-reset-${{ inputs.pair }}", "cancel-in-progress": false });
    // Inputs reach the scripts through env only, so a crafted VM name cannot inject PowerShell.
    for (const step of [...steps, ...checkSteps]) expect(step.run).not.toContain("${{");
  });
});
