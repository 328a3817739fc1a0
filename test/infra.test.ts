/**
 * What the deployment promises, checked on what Azure receives: infra/main.bicep compiled to ARM
 * JSON by the Bicep CLI (restored from NuGet by infra/tools/bicep.sh on first use), and the lab-side
 * reset workflow that the app dispatches.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { TableClient } from "@azure/data-tables";
import { QueueClient } from "@azure/storage-queue";
import { beforeAll, describe, expect, inject, it } from "vitest";
import { parse } from "yaml";
import { HostSchema, loadLabConfigFile } from "../shared/lab/config.js";
import { ALERTS, SILENCE_ALERTS, alert, type Logger } from "../shared/logger.js";
import { DEFAULT_RECONCILE_QUEUE, readSettings } from "../shared/settings.js";
import type { StorageConnection } from "../shared/storage/connection.js";
import { TableCoverageStore } from "../shared/storage/coverage.js";
import { TableFactStore } from "../shared/storage/facts.js";
import { StorageReconcileQueue } from "../shared/storage/queue.js";
import { StoreError, TableStore } from "../shared/storage/tables.js";

/** Whatever the compiled JSON holds there: the tests read ARM JSON loosely. */
type Json = ReturnType<typeof JSON.parse>;

interface ArmResource {
  type: string;
  name: string;
  apiVersion: string;
  condition?: string;
  scope?: string;
  resourceGroup?: string;
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
  storageQueueDataContributor: "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
  monitoringMetricsPublisher: "3913510d-42f4-4e42-8a64-420c390055eb",
  keyVaultSecretsUser: "4633458b-17de-408a-b874-0445c86b69e6",
  keyVaultSecretsOfficer: "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
};

/**
 * Site properties Flex Consumption refuses (Microsoft's "Flex Consumption plan deprecations";
 * some regions answer error 51021, others ignore them): on the site or in its siteConfig.
 */
const FLEX_REFUSED_SITE_PROPERTIES = [
  "alwaysOn",
  "containerSize",
  "ftpsState",
  "functionAppScaleLimit",
  "functionsRuntimeScaleMonitoringEnabled",
  "isReserved",
  "isXenon",
  "javaContainer",
  "javaContainerVersion",
  "javaVersion",
  "linuxFxVersion",
  "netFrameworkVersion",
  "nodeVersion",
  "phpVersion",
  "powerShellVersion",
  "preWarmedInstanceCount",
  "pythonVersion",
  "use32BitWorkerProcess",
  "windowsFxVersion",
];

/**
 * Runs the Bicep CLI and returns what it printed; a missing .NET SDK or a compile error fails here.
 * Each run starts .NET (seconds of CPU): the file runs as few as it can, side by side.
 */
function bicep(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile("bash", ["infra/tools/bicep.sh", ...args, "--stdout"], { env, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) =>
      error ? reject(new Error(`bash infra/tools/bicep.sh ${args.join(" ")} failed (it needs the .NET SDK to restore the Bicep CLI):\n${stderr || error.message}`)) : resolve(stdout),
    ),
  );
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

/**
 * Evaluates exported functions of infra/modules/lib.bicep with the Bicep CLI itself: a throwaway
 * parameters file (`using none`) sets one parameter per call, and build-params computes them.
 */
async function evaluateLib(calls: Record<string, string>): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), "lab-reset-bicep-"));
  try {
    const lib = relative(dir, resolve("infra/modules/lib.bicep")).split("\\").join("/");
    const file = join(dir, "calls.bicepparam");
    writeFileSync(file, [`using none`, `import * as lib from '${lib}'`, ...Object.entries(calls).map(([name, call]) => `param ${name} = lib.${call}`)].join("\n"));
    const { parametersJson } = JSON.parse(await bicep(["build-params", file])) as { parametersJson: string };
    const { parameters } = JSON.parse(parametersJson) as { parameters: Record<string, { value: unknown }> };
    return Object.fromEntries(Object.entries(parameters).map(([name, { value }]) => [name, value]));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A Bicep string literal. */
const bicepString = (text: string) => `'${text.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;

/** infra/main.bicepparam's default name prefix, as its text gives it (build-params must agree). */
const DEFAULT_NAME_PREFIX = /readEnvironmentVariable\('LAB_RESET_NAME_PREFIX', '([^']*)'\)/.exec(readFileSync("infra/main.bicepparam", "utf8"))?.[1];
const GOOD_PREFIXES = ["labreset", "lab2", "abc", "a23456789012", "0lab"];
const BAD_PREFIXES = ["LabReset", "lab-reset", "lab_reset", "lab reset", "läbreset", "ab", "abcdefghijklm", ""];

/** Every call of lib.bicep's functions that the tests check, by test: evaluated in one Bicep run. */
const LIB_CALLS = {
  alwaysReady: { one: "alwaysReadyFor(1)", two: "alwaysReadyFor(2)", none: "alwaysReadyFor(0)" },
  repositories: {
    none: "allowedRepositoryList('microsoft/netperf', '')",
    blank: "allowedRepositoryList('microsoft/netperf', ' , ')",
    others: "allowedRepositoryList('microsoft/netperf', ' microsoft/msquic ,microsoft/netperf,, microsoft/xdp-for-windows')",
  },
  prefixes: Object.fromEntries([...GOOD_PREFIXES, ...BAD_PREFIXES].map((prefix, i) => [`p${i}`, `namePrefixProblem(${bicepString(prefix)})`])),
  defaultPrefix: { p: `namePrefixProblem(${bicepString(DEFAULT_NAME_PREFIX ?? "")})` },
};
type LibResults = { [Group in keyof typeof LIB_CALLS]: Record<string, unknown> };

async function evaluateLibCalls(): Promise<LibResults> {
  const flat = Object.fromEntries(Object.entries(LIB_CALLS).flatMap(([group, calls]) => Object.entries(calls).map(([name, call]) => [`${group}_${name}`, call])));
  const values = await evaluateLib(flat);
  return Object.fromEntries(Object.entries(LIB_CALLS).map(([group, calls]) => [group, Object.fromEntries(Object.keys(calls).map((name) => [name, values[`${group}_${name}`]]))])) as LibResults;
}

/**
 * Evaluates the little of GitHub's expression language a workflow value here uses: string
 * literals, context values, startsWith (case-insensitive), fromJSON, && and || (short-circuiting,
 * each gives an operand back; "" is falsy, arrays are truthy) and parentheses. Anything else throws.
 */
function evaluateGithubExpression(expression: string, context: Record<string, string>): unknown {
  type Node = () => unknown;
  const tokens = expression.match(/'(?:[^']|'')*'|&&|\|\||[(),]|[A-Za-z_][\w.-]*|\S/g) ?? [];
  let at = 0;
  const next = () => tokens[at++];
  const expectToken = (token: string) => {
    if (next() !== token) throw new Error(`expected ${token} at token ${at} of ${expression}`);
  };
  const functions: Record<string, (...args: unknown[]) => unknown> = {
    startsWith: (text, prefix) => String(text).toLowerCase().startsWith(String(prefix).toLowerCase()),
    fromJSON: (text) => JSON.parse(String(text)),
  };
  const primary = (): Node => {
    const token = next();
    if (token === undefined) throw new Error(`unexpected end of ${expression}`);
    if (token === "(") {
      const inner = or();
      expectToken(")");
      return inner;
    }
    if (token.startsWith("'")) return () => token.slice(1, -1).replace(/''/g, "'");
    if (token in context) return () => context[token];
    const fn = functions[token];
    if (!fn) throw new Error(`unknown name ${token} in ${expression}`);
    expectToken("(");
    const args: Node[] = [];
    while (tokens[at] !== ")") {
      args.push(or());
      if (tokens[at] === ",") next();
    }
    expectToken(")");
    return () => fn(...args.map((arg) => arg()));
  };
  const chain = (operator: string, operand: () => Node, keepLeft: (value: unknown) => boolean): Node => {
    const operands = [operand()];
    while (tokens[at] === operator) {
      next();
      operands.push(operand());
    }
    return () => {
      let value: unknown;
      for (const node of operands) {
        value = node();
        if (keepLeft(value)) return value;
      }
      return value;
    };
  };
  const and = (): Node => chain("&&", primary, (value) => !value);
  const or = (): Node => chain("||", and, (value) => Boolean(value));
  const root = or();
  if (at !== tokens.length) throw new Error(`unexpected ${tokens[at]} in ${expression}`);
  return root();
}

let template: ArmTemplate;
let templateText: string;
let resources: PlacedResource[];
let lib: LibResults;
const ofType = (type: string) => resources.filter((r) => r.type === type);
const one = (type: string) => {
  const found = ofType(type);
  expect(found, type).toHaveLength(1);
  return found[0]!;
};
/** The parameters main.bicep passes to one of its modules, as ARM expressions. */
const moduleParameters = (module: string): Record<string, string> => {
  const deployment = resources.find((r) => r.module === "main" && r.type === "Microsoft.Resources/deployments" && r.name.startsWith(`[format('${module}-`));
  expect(deployment, `module ${module}`).toBeDefined();
  return Object.fromEntries(Object.entries(deployment!.properties.parameters as Record<string, { value: string }>).map(([name, { value }]) => [name, value]));
};
const appSettings = () => new Map<string, string>(one("Microsoft.Web/sites").properties.siteConfig.appSettings.map((s: { name: string; value: string }) => [s.name, s.value]));

beforeAll(async () => {
  [templateText, lib] = await Promise.all([bicep(["build", "infra/main.bicep"]), evaluateLibCalls()]);
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

  it("runs a Flex Consumption Linux app on Node.js 22 with a system-assigned identity, https only, TLS 1.2, FTP and basic-auth publishing off", () => {
    const plan = one("Microsoft.Web/serverfarms");
    expect(plan.sku).toEqual({ name: "FC1", tier: "FlexConsumption" });
    expect(plan.properties.reserved).toBe(true);

    const site = one("Microsoft.Web/sites");
    expect(site.kind).toBe("functionapp,linux");
    expect(site.identity).toEqual({ type: "SystemAssigned" });
    expect(site.properties.httpsOnly).toBe(true);
    expect(site.properties.siteConfig).toMatchObject({ minTlsVersion: "1.2", scmMinTlsVersion: "1.2" });
    expect(site.properties.functionAppConfig.runtime).toEqual({ name: "node", version: "22" });
    expect(site.properties.functionAppConfig.deployment.storage).toMatchObject({ type: "blobContainer", authentication: { type: "SystemAssignedIdentity" } });

    const basicAuth = ofType("Microsoft.Web/sites/basicPublishingCredentialsPolicies");
    expect(basicAuth.map((p) => [p.name.match(/'(ftp|scm)'/)?.[1], p.properties.allow])).toEqual([
      ["ftp", false],
      ["scm", false],
    ]);
  });

  it("sets no site property that Flex Consumption refuses, on the site or in its siteConfig", () => {
    const site = one("Microsoft.Web/sites");
    const refused = new Set(FLEX_REFUSED_SITE_PROPERTIES.map((name) => name.toLowerCase()));
    const set = [...Object.keys(site.properties), ...Object.keys(site.properties.siteConfig)].filter((name) => refused.has(name.toLowerCase()));
    expect(set).toEqual([]);
    // Only what Microsoft's Flex templates set, and the settings; no sites/config 'web' sets them either.
    expect(Object.keys(site.properties.siteConfig).sort()).toEqual(["appSettings", "minTlsVersion", "scmMinTlsVersion"]);
    expect(ofType("Microsoft.Web/sites/config").map((c) => c.name)).toEqual([expect.stringMatching(/'authsettingsV2'\)\]$/)]);
  });

  it("keeps alwaysReadyHttp instances of the http group always ready (default 1; 0: none)", () => {
    const parameter = (template as Json).parameters.alwaysReadyHttp;
    expect(parameter).toMatchObject({ type: "int", defaultValue: 1, minValue: 0 });
    expect(moduleParameters("functionApp").alwaysReady).toBe("[__bicep.alwaysReadyFor(parameters('alwaysReadyHttp'))]");
    expect(one("Microsoft.Web/sites").properties.functionAppConfig.scaleAndConcurrency).toMatchObject({ alwaysReady: "[parameters('alwaysReady')]", instanceMemoryMB: 512 });
    expect(lib.alwaysReady).toEqual({
      one: [{ name: "http", instanceCount: 1 }],
      two: [{ name: "http", instanceCount: 2 }],
      none: [],
    });
  }, 60_000);

  it("creates every table the app opens, named with LAB_TABLE_PREFIX, and tells the app so (LAB_STORAGE_PROVISIONED)", () => {
    const tables = ofType("Microsoft.Storage/storageAccounts/tableServices/tables");
    expect(tables).toHaveLength(1); // one copy loop over tableSuffixes
    const table = tables[0]!;
    expect(table.module).toBe("storage");
    expect((table as Json).copy.count).toBe("[length(variables('tableSuffixes'))]");
    expect(table.name).toBe("[format('{0}/{1}/{2}', parameters('storageAccountName'), 'default', format('{0}{1}', parameters('tablePrefix'), variables('tableSuffixes')[copyIndex()]))]");
    const suffixes = table.variables.tableSuffixes as string[];
    // What the code opens: openTable(…, `${…tablePrefix}Pairs`) and the like under shared/, and
    // the redelivery bookkeeping (`<prefix>Deliveries`).
    const opened = new Set(["Deliveries"]);
    for (const file of readdirSync("shared", { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".ts"))) {
      for (const call of readFileSync(join("shared", file), "utf8").matchAll(/openTable\([^;]*?([A-Z][A-Za-z]+)[`"']\s*\)/g)) opened.add(call[1]!);
    }
    expect(opened.size).toBeGreaterThanOrEqual(5);
    expect([...suffixes].sort()).toEqual([...opened].sort());
    // One prefix for the tables the deployment makes and the ones the app opens.
    expect((template as Json).parameters.tablePrefix).toMatchObject({ type: "string", defaultValue: "labreset", minLength: 3, maxLength: 41 });
    expect(moduleParameters("storage").tablePrefix).toBe("[parameters('tablePrefix')]");
    expect(moduleParameters("functionApp").tablePrefix).toBe("[parameters('tablePrefix')]");
    const settings = appSettings();
    expect(settings.get("LAB_TABLE_PREFIX")).toBe("[parameters('tablePrefix')]");
    expect(settings.get("LAB_STORAGE_PROVISIONED")).toBe("true");
    expect(readSettings({ LAB_STORAGE_PROVISIONED: settings.get("LAB_STORAGE_PROVISIONED") }).storageProvisioned).toBe(true);
    expect(readSettings({}).storageProvisioned).toBe(false);
  });

  it("passes REDELIVER_SCHEDULE, every 5 minutes unless the parameter says otherwise", () => {
    expect((template as Json).parameters.redeliverSchedule).toMatchObject({ type: "string", defaultValue: "0 */5 * * * *", minLength: 1 });
    expect(moduleParameters("functionApp").redeliverSchedule).toBe("[parameters('redeliverSchedule')]");
    expect(appSettings().get("REDELIVER_SCHEDULE")).toBe("[parameters('redeliverSchedule')]");
  });

  it("accepts the CLI's bearer token for the app registration's App ID URI when Entra sign-in is on", () => {
    const auth = one("Microsoft.Web/sites/config");
    expect(auth.properties.identityProviders.azureActiveDirectory.validation).toEqual({ allowedAudiences: ["[format('api://{0}', parameters('entraClientId'))]"] });
  });

  it("gives the app settings the app reads, with secrets only as Key Vault references", () => {
    const settings = appSettings();
    expect([...settings.keys()]).toEqual(
      expect.arrayContaining([
        "AzureWebJobsStorage__accountName",
        "AzureWebJobsStorage__queueServiceUri",
        "RECONCILE_QUEUE",
        "ALLOWED_REPOSITORIES",
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

  it("grants the app's identity exactly the five roles it uses, each scoped to its resource", () => {
    const appRoles = ofType("Microsoft.Authorization/roleAssignments").filter((r) => r.module === "functionApp");
    const granted = appRoles.map((r) => ({
      role: roleOf(r),
      scope: r.scope?.match(/^\[resourceId\('([^']+)'/)?.[1],
    }));
    expect(granted).toEqual([
      { role: "storageBlobDataOwner", scope: "Microsoft.Storage/storageAccounts" },
      { role: "storageTableDataContributor", scope: "Microsoft.Storage/storageAccounts" },
      { role: "storageQueueDataContributor", scope: "Microsoft.Storage/storageAccounts" },
      { role: "monitoringMetricsPublisher", scope: "Microsoft.Insights/components" },
      { role: "keyVaultSecretsUser", scope: "Microsoft.KeyVault/vaults" },
    ]);
    for (const role of appRoles) {
      expect(role.properties.principalId).toMatch(/^\[reference\(resourceId\('Microsoft\.Web\/sites', parameters\('functionAppName'\)\), '[\d-]+', 'full'\)\.identity\.principalId\]$/);
      expect(role.properties.principalType).toBe("ServicePrincipal");
    }
  });

  it("creates the reconcile queue, with the app's default name, and its poison queue in the app's storage account", () => {
    const queues = ofType("Microsoft.Storage/storageAccounts/queueServices/queues");
    expect(queues.map((q) => q.module)).toEqual(["storage", "storage"]);
    expect(queues.map((q) => q.name)).toEqual([
      "[format('{0}/{1}/{2}', parameters('storageAccountName'), 'default', parameters('reconcileQueueName'))]",
      "[format('{0}/{1}/{2}', parameters('storageAccountName'), 'default', format('{0}-poison', parameters('reconcileQueueName')))]",
    ]);
    // The name main.bicep gives both modules is the app's default (shared/settings.ts), and the
    // app setting is the very queue the storage module created.
    expect(moduleParameters("storage").reconcileQueueName).toBe("[variables('names').reconcileQueue]");
    expect((template.variables?.names as Record<string, string>).reconcileQueue).toBe(DEFAULT_RECONCILE_QUEUE);
    expect(moduleParameters("functionApp").reconcileQueueName).toBe("[reference('storage').outputs.reconcileQueueName.value]");
    const settings = appSettings();
    expect(settings.get("RECONCILE_QUEUE")).toBe("[parameters('reconcileQueueName')]");
    // The queue endpoint comes from the account itself (no cloud's DNS suffix in the template),
    // beside the account name the host and the app's tables use.
    expect(settings.get("AzureWebJobsStorage__queueServiceUri")).toMatch(/^\[reference\(resourceId\('Microsoft\.Storage\/storageAccounts', parameters\('storageAccountName'\)\), '[\d-]+'\)\.primaryEndpoints\.queue\]$/);
    expect(settings.get("AzureWebJobsStorage__accountName")).toBe("[parameters('storageAccountName')]");
  });

  it("passes ALLOWED_REPOSITORIES as the lab repository followed by the allowedRepositories parameter's, each once", () => {
    expect(appSettings().get("ALLOWED_REPOSITORIES")).toBe("[parameters('allowedRepositories')]");
    expect(moduleParameters("functionApp").allowedRepositories).toBe("[__bicep.allowedRepositoryList(format('{0}/{1}', parameters('githubOwner'), parameters('githubRepo')), parameters('allowedRepositories'))]");
    expect(lib.repositories).toEqual({ none: "microsoft/netperf", blank: "microsoft/netperf", others: "microsoft/netperf,microsoft/msquic,microsoft/xdp-for-windows" });
  }, 60_000);

  it("refuses a name prefix that would make an illegal resource name, before creating the resource group", () => {
    const parameter = (template as Json).parameters.namePrefix;
    expect(parameter).toMatchObject({ type: "string", minLength: 3, maxLength: 12 });
    expect(template.variables?.prefixProblem).toBe("[__bicep.namePrefixProblem(parameters('namePrefix'))]");
    const group = one("Microsoft.Resources/resourceGroups");
    expect(group.name).toMatch(/^\[if\(empty\(variables\('prefixProblem'\)\), parameters\('resourceGroupName'\), fail\(format\('namePrefix ''\{0\}'' \{1\}: use 3-12 lower-case letters \(a-z\) and digits \(0-9\)/);
    // Every module is deployed into that resource group, so none starts when the prefix is refused.
    for (const deployment of ofType("Microsoft.Resources/deployments").filter((r) => r.module === "main")) expect(deployment.resourceGroup, deployment.name).toBe(group.name);
    // The rule itself, evaluated by the Bicep CLI.
    const problems = [...GOOD_PREFIXES, ...BAD_PREFIXES].map((prefix, i) => [prefix, lib.prefixes[`p${i}`]] as const);
    for (const [prefix, problem] of problems.slice(0, GOOD_PREFIXES.length)) expect(problem, prefix).toBe("");
    for (const [prefix, problem] of problems.slice(GOOD_PREFIXES.length)) expect(problem, prefix).not.toBe("");
    expect(new Map(problems).get("ab")).toBe("is 2 characters long, not 3-12");
    expect(new Map(problems).get("lab-reset")).toBe("holds a character other than the lower-case letters a-z and the digits 0-9");
  }, 60_000);

  it("puts people, not keys, in front of the status page and admin routes when an Entra client id is given", () => {
    const auth = one("Microsoft.Web/sites/config");
    expect(auth.module).toBe("functionApp");
    expect(auth.name).toMatch(/'authsettingsV2'\)\]$/);
    expect(auth.condition).toBe("[not(empty(parameters('entraClientId')))]");
    expect(moduleParameters("functionApp").entraClientId).toBe("[parameters('entraClientId')]");
    const { globalValidation, identityProviders, platform } = auth.properties;
    expect(platform.enabled).toBe(true);
    expect(globalValidation).toMatchObject({ requireAuthentication: true, unauthenticatedClientAction: "RedirectToLoginPage", redirectToProvider: "azureactivedirectory" });
    // Only the routes machines call (they prove themselves with an OIDC token or an HMAC), and the
    // host's master-key admin API, skip sign-in.
    expect(globalValidation.excludedPaths).toEqual(["/api/job-completed", "/api/github-webhook", "/admin/*"]);
    const definitions = readFileSync("functions/definitions.ts", "utf8");
    for (const route of ["job-completed", "github-webhook"]) expect(definitions).toContain(`route: "${route}"`);
    for (const path of ["/api/status", "/api/plan", "/api/pairs", "/api/pairs/vm-42-43/clear"]) {
      expect(globalValidation.excludedPaths.some((excluded: string) => path === excluded || (excluded.endsWith("/*") && path.startsWith(excluded.slice(0, -1)))), path).toBe(false);
    }
    const aad = identityProviders.azureActiveDirectory;
    expect(aad.enabled).toBe(true);
    expect(aad.registration.clientId).toBe("[parameters('entraClientId')]");
    expect(aad.registration.openIdIssuer).toBe("[format('{0}{1}/v2.0', environment().authentication.loginEndpoint, tenant().tenantId)]");
    // No client secret to store or rotate: the sign-in uses the ID token.
    expect(aad.registration.clientSecretSettingName).toBeUndefined();
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

  it("takes the repository from lab.config.json in infra/main.bicepparam, and the optional e-mail and Entra client id from the environment", async () => {
    const base: NodeJS.ProcessEnv = { ...process.env, LAB_RESET_GITHUB_APP_ID: "123", LAB_RESET_GITHUB_APP_INSTALLATION_ID: "456" };
    delete base.LAB_RESET_ALERT_EMAIL;
    delete base.LAB_RESET_ENTRA_CLIENT_ID;
    delete base.LAB_RESET_NAME_PREFIX;
    const build = async (env: NodeJS.ProcessEnv) => {
      const { parametersJson } = JSON.parse(await bicep(["build-params", "infra/main.bicepparam"], env)) as { parametersJson: string };
      return (JSON.parse(parametersJson) as { parameters: Record<string, { value: string }> }).parameters;
    };
    const [parameters, set] = await Promise.all([
      build(base),
      build({ ...base, LAB_RESET_ALERT_EMAIL: "lab-admins@example.com", LAB_RESET_ENTRA_CLIENT_ID: "11111111-2222-3333-4444-555555555555" }),
    ]);
    const lab = loadLabConfigFile("lab.config.json");
    expect(parameters.githubOwner?.value).toBe(lab.github.owner);
    expect(parameters.githubRepo?.value).toBe(lab.github.repo);
    expect(parameters.githubAppId?.value).toBe("123");
    expect(parameters.alertEmail?.value).toBe("");
    expect(parameters.entraClientId?.value).toBe("");
    expect(parameters.allowedRepositories?.value).toBe("");
    // The default prefix (evaluated with the other lib calls) passes the rule main.bicep enforces.
    expect(parameters.namePrefix?.value).toBe(DEFAULT_NAME_PREFIX);
    expect(lib.defaultPrefix.p).toBe("");
    expect(set.alertEmail?.value).toBe("lab-admins@example.com");
    expect(set.entraClientId?.value).toBe("11111111-2222-3333-4444-555555555555");
  }, 90_000);

  it("names the GitHub App key and webhook secrets in Key Vault as docs/deploy.md stores them", () => {
    const variables = resources.find((r) => r.module === "functionApp")!.variables as Record<string, string>;
    expect(variables.githubAppPrivateKeySecret).toBe("github-app-private-key");
    expect(variables.githubWebhookSecret).toBe("github-webhook-secret");
    const settings = appSettings();
    expect(settings.get("GITHUB_APP_PRIVATE_KEY")).toContain("variables('githubAppPrivateKeySecret')");
    expect(settings.get("GITHUB_WEBHOOK_SECRET")).toContain("variables('githubWebhookSecret')");
    const deploy = readFileSync("docs/deploy.md", "utf8");
    const stored = [...deploy.matchAll(/az keyvault secret set [^\n]*--name ([\w-]+)/g)].map((m) => m[1]);
    expect(new Set(stored)).toEqual(new Set(["github-app-private-key", "github-webhook-secret"]));
    // No other spelling of the App key's secret anywhere in the deploy guide.
    expect(new Set(deploy.match(/github-app-[\w-]*key\b/g))).toEqual(new Set(["github-app-private-key"]));
  });
});

describe("infra/modules/alerts.bicep, the alerts on the app's Application Insights", () => {
  const alertsOf = () => {
    const rules = ofType("Microsoft.Insights/scheduledQueryRules");
    expect(rules).toHaveLength(1); // one copy loop over the alerts variable
    const rule = rules[0]!;
    expect(rule.module).toBe("alerts");
    const list = rule.variables.alerts as { name: string; severity: number; query: string; description: string; evaluationFrequency: string; windowSize: string }[];
    return { rule, list };
  };

  it("has one rule per alert the app logs, each querying the trace that shared/logger.ts writes", () => {
    const { rule, list } = alertsOf();
    expect((rule as Json).copy.count).toBe("[length(variables('alerts'))]");
    expect(list.map((a) => a.name).sort()).toEqual([...ALERTS, ...SILENCE_ALERTS].sort());
    for (const name of ALERTS) {
      const { query } = list.find((a) => a.name === name)!;
      const prefix = query.match(/traces \| where message startswith "([^"]+)"/)?.[1];
      expect(prefix, name).toBe(`lab-reset alert ${name}:`);
      // What the app really logs for that alert starts with it.
      const logged: string[] = [];
      const logger: Logger = { info: () => {}, warn: () => {}, error: (message) => logged.push(message) };
      alert(logger, name, "pair vm-42-43: something happened");
      expect(logged).toHaveLength(1);
      expect(logged[0]!.startsWith(prefix!), name).toBe(true);
    }
    // Failed invocations of the timer and of the queue-triggered reconcile count as reconcile-failed.
    expect(list.find((a) => a.name === "reconcile-failed")!.query).toContain('(requests | where success == false and operation_Name in ("scheduledReset", "reconcileLab", "redeliverWebhooks"))');
    // Nothing else is queried by the other rules.
    for (const { name, query } of list.filter((a) => (ALERTS as readonly string[]).includes(a.name) && a.name !== "reconcile-failed")) expect(query, name).toBe(`traces | where message startswith "lab-reset alert ${name}:"`);
    expect(list.map((a) => [a.name, a.severity])).toEqual(
      expect.arrayContaining([
        ["pair-gave-up", 1],
        ["poison-message", 1],
        ["reset-failed-twice", 2],
        ["reconcile-failed", 2],
        ["pair-out-of-routing", 2],
        ["no-reconcile", 1],
      ]),
    );
    for (const { description } of list) expect(description.length).toBeGreaterThan(20);
  });

  it("evaluates the event alerts every 5 minutes over at most 15, on the app's Application Insights, once per event", () => {
    const { rule, list } = alertsOf();
    expect(rule.kind).toBe("LogAlert");
    const p = rule.properties;
    expect(p.enabled).toBe(true);
    expect(p.scopes).toEqual(["[resourceId('Microsoft.Insights/components', parameters('appInsightsName'))]"]);
    expect(moduleParameters("alerts").appInsightsName).toBe("[reference('monitoring').outputs.appInsightsName.value]");
    expect(p.evaluationFrequency).toBe("[variables('alerts')[copyIndex()].evaluationFrequency]");
    expect(p.windowSize).toBe("[variables('alerts')[copyIndex()].windowSize]");
    for (const a of list.filter((a) => (ALERTS as readonly string[]).includes(a.name))) {
      expect(a.evaluationFrequency, a.name).toBe("PT5M");
      expect(["PT5M", "PT10M", "PT15M"], a.name).toContain(a.windowSize);
    }
    expect(p.autoMitigate).toBe(true);
    expect(p.severity).toBe("[variables('alerts')[copyIndex()].severity]");
    expect(p.criteria.allOf).toEqual([
      {
        query: "[variables('alerts')[copyIndex()].query]",
        timeAggregation: "Count",
        operator: "GreaterThan",
        threshold: 0,
        failingPeriods: { numberOfEvaluationPeriods: 1, minFailingPeriodsToAlert: 1 },
      },
    ]);
    // The rules run with Azure Monitor's own access: no identity, no role for them, none for the app.
    expect(rule.identity).toBeUndefined();
    expect(ofType("Microsoft.Authorization/roleAssignments").filter((r) => r.module === "alerts")).toEqual([]);
  });

  it("alerts when no reconcile has succeeded for 7 hours, also when the app logs nothing at all", () => {
    const { list } = alertsOf();
    const rule = list.find((a) => a.name === "no-reconcile")!;
    // The line every successful reconcile logs, as shared/reconcile/reconcile.ts writes it.
    expect(readFileSync("shared/reconcile/reconcile.ts", "utf8")).toMatch(/logger\.info\(`reconcile \$\{JSON\.stringify\(\{ trigger, ok,/);
    const line = (ok: boolean) => `reconcile ${JSON.stringify({ trigger: "timer", ok, pairs: { clean: 4 }, dispatches: 0 })}`;
    const [, prefix, fragment] = rule.query.match(/where message startswith "([^"]+)" and message contains '([^']+)'/) ?? [];
    expect(line(true).startsWith(prefix!)).toBe(true);
    expect(line(true).includes(fragment!)).toBe(true);
    expect(line(false).includes(fragment!)).toBe(false);
    // Its own 7-hour look-back, one row only when it found none (so an app that logs nothing, whose
    // query would otherwise return no rows, fires), counted like the other rules (Count > 0).
    expect(rule.query).toMatch(/^traces \| where timestamp > ago\(7h\) \| /);
    expect(rule.query).toMatch(/\| summarize succeeded = count\(\) \| where succeeded == 0$/);
    // Hourly, over a day of data (the query time range; at most two days): covers the 7 hours.
    expect(rule.evaluationFrequency).toBe("PT1H");
    expect(rule.windowSize).toBe("P1D");
    // The timer alone reconciles every 6 hours, inside the 7.
    expect((template as Json).parameters.resetSchedule.defaultValue).toBe("0 0 */6 * * *");
  });

  it("e-mails alertEmail through one action group, which exists (and is wired to the rules) only when the address is set", () => {
    const group = one("Microsoft.Insights/actionGroups");
    expect(group.module).toBe("alerts");
    expect(group.condition).toBe("[not(empty(parameters('alertEmail')))]");
    expect(group.properties.emailReceivers).toEqual([{ name: "lab-admin", emailAddress: "[parameters('alertEmail')]", useCommonAlertSchema: true }]);
    expect(group.properties.groupShortName.length).toBeLessThanOrEqual(12);
    const { rule } = alertsOf();
    expect(rule.properties.actions).toEqual({
      actionGroups: "[if(empty(parameters('alertEmail')), createArray(), createArray(resourceId('Microsoft.Insights/actionGroups', parameters('actionGroupName'))))]",
    });
    expect(group.name).toBe("[parameters('actionGroupName')]");
    expect(moduleParameters("alerts").alertEmail).toBe("[parameters('alertEmail')]");
    expect((template as Json).parameters.alertEmail).toEqual(expect.objectContaining({ type: "string", defaultValue: "" }));
  });
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
    expect(guard?.run).toMatch(/if \(\$workers -gt 0\) \{\s*Write-Output "::error::A job is running in VM[^\n]*\n\s*exit 1/);
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

  it("looks again inside the VM, with the check job's very function, right before turning it off and restoring it", () => {
    // Label edits reach GitHub's job assignment late: a job may have reached the VM since the check job.
    type Step = { name: string; run: string; env?: Record<string, string> };
    const definition = /^function Assert-NoJobInVM \{\n[\s\S]*?\n\}$/m;
    const checkStep = (workflow.jobs.check.steps as Step[]).find((s) => definition.test(s.run))!;
    const restoreStep = (steps as Step[]).find((s) => /Restore-VMCheckpoint/.test(s.run))!;
    expect(checkStep, "the check job defines Assert-NoJobInVM").toBeDefined();
    const checkFunction = checkStep.run.match(definition)![0];
    const restoreFunction = restoreStep.run.match(definition)?.[0];
    expect(restoreFunction, "the restore step defines the same function").toBe(checkFunction);
    // The function refuses a VM with a running job, or one it cannot look into.
    expect(checkFunction).toMatch(/Invoke-Command -VMName \$env:VM_NAME -Credential \$credential -ScriptBlock \{\s*@\(Get-Process -Name Runner\.Worker[^\n]*\)\.Count/);
    expect(checkFunction).toMatch(/if \(\$workers -gt 0\) \{\s*Write-Output "::error::A job is running in VM[^\n]*\n\s*exit 1\s*\}/);
    expect(checkFunction).toMatch(/\} catch \{\s*Write-Output "::error::Cannot look inside VM[^\n]*\n\s*exit 1/);
    // Both steps call it; the restore step after finding the checkpoint and before anything stops
    // or restores the VM.
    const after = (run: string) => run.slice(run.search(definition) + run.match(definition)![0].length);
    expect(after(checkStep.run)).toMatch(/^\s*Assert-NoJobInVM\s*$/m);
    const body = after(restoreStep.run);
    const at = (pattern: RegExp) => body.search(pattern);
    const call = at(/^\s*Assert-NoJobInVM\s*$/m);
    expect(call).toBeGreaterThan(at(/Get-VMCheckpoint -VMName \$env:VM_NAME -Name LATEST/));
    expect(call).toBeLessThan(at(/Stop-VM/));
    expect(at(/Stop-VM/)).toBeLessThan(at(/Restore-VMCheckpoint/));
    expect(restoreStep.run.slice(0, restoreStep.run.search(definition))).not.toMatch(/Stop-VM|Restore-VMCheckpoint/);
    // It has what the function reads: the guest account and the list of VMs it cannot enter.
    expect(restoreStep.env).toEqual(checkStep.env);
    expect(Object.keys(restoreStep.env ?? {}).sort()).toEqual(["UNCHECKED_VMS", "VM_GUEST_PASSWORD", "VM_GUEST_USERNAME"]);
  });

  it("runs the report job where LAB_RESET_REPORT_RUNS_ON says (a label or a JSON list), else on ubuntu-latest", () => {
    const report = workflow.jobs.report;
    expect(report.needs).toBe("reset");
    const runsOn = String(report["runs-on"]);
    const expression = runsOn.match(/^\$\{\{(.*)\}\}$/)?.[1];
    expect(expression, runsOn).toBeDefined();
    const runsOnFor = (value: string) => evaluateGithubExpression(expression!, { "vars.LAB_RESET_REPORT_RUNS_ON": value });
    expect(runsOnFor("")).toBe("ubuntu-latest");
    expect(runsOnFor("lab-utility")).toBe("lab-utility");
    expect(runsOnFor('["self-hosted", "linux", "utility"]')).toEqual(["self-hosted", "linux", "utility"]);
    // Still only when lab-reset's URL is known, and whatever the resets' outcome.
    expect(report.if).toBe("always() && vars.LAB_RESET_URL != ''");
  });
});

describe("LAB_STORAGE_PROVISIONED: the app opens the tables and queue the deployment made, and never creates one", () => {
  const connectionString = () => inject("azuriteConnectionString");
  const provisioned = (): StorageConnection => ({ kind: "connectionString", connectionString: connectionString(), provisioned: true });
  const tableExists = (name: string) =>
    TableClient.fromConnectionString(connectionString(), name, { allowInsecureConnection: true })
      .listEntities()
      .byPage({ maxPageSize: 1 })
      .next()
      .then(
        () => true,
        () => false,
      );
  const failure = (promise: Promise<unknown>) =>
    promise.then(
      () => {
        throw new Error("expected a failure");
      },
      (error: unknown) => error,
    );

  it("opens every store without creating a table or the queue; the first use of a missing one says to run the deployment", async () => {
    const prefix = `p${randomBytes(5).toString("hex")}`;
    const queueName = `q-${randomBytes(5).toString("hex")}`;
    const options = { connection: provisioned(), tablePrefix: prefix, lab: "microsoft.netperf" };
    const [store, facts, coverage, queue] = await Promise.all([TableStore.open(options), TableFactStore.open(options), TableCoverageStore.open(options), StorageReconcileQueue.open(options.connection, queueName)]);
    for (const suffix of ["Pairs", "Events", "Facts", "Control"]) expect(await tableExists(`${prefix}${suffix}`), suffix).toBe(false);
    expect(await new QueueClient(connectionString(), queueName).exists()).toBe(false);

    const tableError = await failure(store.listPairs());
    expect(tableError).toBeInstanceOf(StoreError);
    expect((tableError as Error).message).toBe(
      `Table Storage list ${prefix}Pairs failed: table ${prefix}Pairs does not exist: the deployment creates it (LAB_STORAGE_PROVISIONED=true); run the deploy command again (docs/deploy.md, step 2)`,
    );
    // Not "no record yet": a missing table is said as such by every store, also where a missing entity is normal.
    expect(((await failure(coverage.read())) as Error).message).toContain(`read reconcile coverage failed: table ${prefix}Control does not exist: the deployment creates it`);
    expect(((await failure(store.getPair("vm-42-43"))) as Error).message).toContain(`table ${prefix}Pairs does not exist: the deployment creates it`);
    expect(((await failure(facts.listSince(new Date(0)))) as Error).message).toContain(`table ${prefix}Facts does not exist: the deployment creates it`);
    const queueError = (await failure(queue.send({ trigger: "timer" }))) as Error;
    expect(queueError).toBeInstanceOf(StoreError);
    expect(queueError.message).toBe(
      `Queue Storage queue a reconcile on ${queueName} failed: queue ${queueName} does not exist: the deployment creates it (LAB_STORAGE_PROVISIONED=true); run the deploy command again (docs/deploy.md, step 2)`,
    );
    for (const error of [tableError as Error, queueError]) expect(error.message).not.toContain("\n");

    // Made as the deployment makes them (the compiled template's table list), they serve the stores.
    const tableTemplate = resources.find((r) => r.type === "Microsoft.Storage/storageAccounts/tableServices/tables")!;
    for (const suffix of tableTemplate.variables.tableSuffixes as string[]) {
      await TableClient.fromConnectionString(connectionString(), `${prefix}${suffix}`, { allowInsecureConnection: true }).createTable();
    }
    await new QueueClient(connectionString(), queueName).create();
    expect(await store.listPairs()).toEqual([]);
    expect(await facts.listSince(new Date(0))).toEqual([]);
    expect((await coverage.read()).events).toBeNull();
    await queue.send({ trigger: "timer" });
    expect((await new QueueClient(connectionString(), queueName).getProperties()).approximateMessagesCount).toBe(1);
  });

  it("creates them on first use without it, as under npm start", async () => {
    const prefix = `p${randomBytes(5).toString("hex")}`;
    await TableStore.open({ connection: { kind: "connectionString", connectionString: connectionString() }, tablePrefix: prefix, lab: "microsoft.netperf" });
    expect(await tableExists(`${prefix}Pairs`)).toBe(true);
  });
});
