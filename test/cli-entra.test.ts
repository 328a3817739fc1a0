/**
 * The CLI against an app behind Entra sign-in (App Service authentication): the local host over
 * the seed lab, its admin routes behind a stand-in for Easy Auth that sends callers without a
 * token to the Entra login (302), refuses a token it does not accept (401 with a Bearer
 * challenge), and names the signed-in person (`x-ms-client-principal-name`) as Azure does.
 */
import type { AccessToken, TokenCredential } from "@azure/core-auth";
import azureFunctions, { type HttpHandler, type HttpResponseInit } from "@azure/functions";
import { AggregateAuthenticationError, CredentialUnavailableError } from "@azure/identity";
import { afterEach, describe, expect, it } from "vitest";
import { functionDefinitions, type FunctionDefinition } from "../functions/definitions.js";
import { main } from "../shared/cli/main.js";
import { startLocalHost, type LocalHost } from "../shared/local/host.js";
import { silentLogger } from "../shared/logger.js";
import { startTestLab, type TestLab } from "./support/lab.js";

const { HttpRequest } = azureFunctions;

const CLIENT_ID = "11111111-2222-3333-4444-555555555555";
const SCOPE = `api://${CLIENT_ID}/.default`;
const ACCEPTED = "token-for-lab-reset";
const TO_LOGIN: HttpResponseInit = { status: 302, headers: { location: `https://login.microsoftonline.com/72f988bf-0000-0000-0000-000000000000/oauth2/v2.0/authorize?client_id=${CLIENT_ID}` } };

let running: { lab: TestLab; host: LocalHost } | undefined;
afterEach(async () => {
  await running?.host.close();
  await running?.lab.close();
  running = undefined;
});

interface Seen {
  route: string;
  authorization: string | null;
  key: string | null;
}

/** Easy Auth in front of every route but the machine routes (infra/modules/function-app.bicep's excludedPaths). */
function behindEntraSignIn(definitions: FunctionDefinition[], seen: Seen[]): FunctionDefinition[] {
  return definitions.map((definition) => {
    if (definition.kind !== "http" || definition.route === "job-completed" || definition.route === "github-webhook") return definition;
    const handler: HttpHandler = async (request, context) => {
      seen.push({ route: definition.route, authorization: request.headers.get("authorization"), key: request.headers.get("x-functions-key") });
      const token = /^Bearer (.+)$/.exec(request.headers.get("authorization") ?? "")?.[1];
      if (token === undefined) return TO_LOGIN;
      if (token !== ACCEPTED) {
        const refused: HttpResponseInit = {
          status: 401,
          body: "You do not have permission to view this directory or page.",
          headers: { "www-authenticate": `Bearer realm="lab-reset" error="invalid_token", error_description="The audience '${token}' is invalid"` },
        };
        return refused;
      }
      const headers = { ...Object.fromEntries(request.headers.entries()), "x-ms-client-principal-name": "mara@contoso.com" };
      const body = await request.text();
      const signedIn = new HttpRequest({ method: request.method, url: request.url, headers, params: request.params, ...(body ? { body: { string: body } } : {}) });
      return definition.handler(signedIn, context);
    };
    return { ...definition, handler };
  });
}

async function startSignedInApp() {
  const lab = await startTestLab();
  const seen: Seen[] = [];
  const definitions = behindEntraSignIn(functionDefinitions(() => Promise.resolve(lab.runtime), { resetSchedule: "0 0 */6 * * *", reconcileQueue: "unused" }), seen);
  const host = await startLocalHost({ definitions, port: 0, logger: silentLogger });
  running = { lab, host };
  return { url: host.url, seen };
}

/** A credential that hands out `token` (or throws `failure`) and records the scopes asked for. */
function credential(answer: { token: string } | { failure: Error }) {
  const asked: string[] = [];
  const stub: TokenCredential = {
    getToken: (scopes): Promise<AccessToken> => {
      asked.push(...[scopes].flat());
      return "failure" in answer ? Promise.reject(answer.failure) : Promise.resolve({ token: answer.token, expiresOnTimestamp: Date.now() + 3_600_000 });
    },
  };
  return { asked, azureCredential: () => Promise.resolve(stub) };
}

async function run(argv: string[], options: { env?: Record<string, string>; azureCredential?: () => Promise<TokenCredential> } = {}) {
  let stdout = "";
  let stderr = "";
  const code = await main(argv, {
    stdout: (t) => void (stdout += t),
    stderr: (t) => void (stderr += t),
    env: options.env ?? {},
    now: () => new Date(),
    timeoutMs: 10_000,
    ...(options.azureCredential ? { azureCredential: options.azureCredential } : {}),
  });
  return { code, stdout, stderr, errors: stderr.split("\n").filter((l) => l !== "") };
}

describe("lab-reset against an app behind Entra sign-in", () => {
  it("--entra sends a bearer token for api://<client-id>/.default beside the function key, and the app knows who asked", async () => {
    const { url, seen } = await startSignedInApp();
    const { asked, azureCredential } = credential({ token: ACCEPTED });
    const held = await run(["hold", "vm-42-43", "--reason", "firmware update", "--url", url, "--key", "k3y", "--entra", CLIENT_ID], { azureCredential });
    expect(held).toMatchObject({ code: 0, stderr: "", stdout: "vm-42-43: held by mara@contoso.com (firmware update); no resets and routing closed until lab-reset release vm-42-43\n" });
    expect(asked).toEqual([SCOPE]);
    expect(seen).toEqual([{ route: "pairs/{id}/hold", authorization: `Bearer ${ACCEPTED}`, key: "k3y" }]);

    // LAB_RESET_ENTRA_CLIENT_ID does the same for every command; no key: only the token.
    const status = await run(["status", "--json"], { env: { LAB_RESET_URL: url, LAB_RESET_ENTRA_CLIENT_ID: CLIENT_ID }, azureCredential });
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout).pairs.find((p: { id: string }) => p.id === "vm-42-43")).toMatchObject({ holdBy: "mara@contoso.com" });
    expect(seen.at(-1)).toEqual({ route: "pairs", authorization: `Bearer ${ACCEPTED}`, key: null });
    expect(asked).toEqual([SCOPE, SCOPE]);
  });

  it("without --entra, the redirect to the Entra login says to pass --entra or set LAB_RESET_ENTRA_CLIENT_ID", async () => {
    const { url, seen } = await startSignedInApp();
    const result = await run(["status", "--url", url, "--key", "k3y"]);
    expect(result).toMatchObject({ code: 1, stdout: "" });
    expect(result.errors).toEqual([
      `lab-reset: GET /api/pairs: lab-reset wants an Entra sign-in (302 to the Entra login from ${url}); pass --entra <client-id> or set LAB_RESET_ENTRA_CLIENT_ID to its app registration's client id, after az login`,
    ]);
    // Not followed to the login page: the app was asked once.
    expect(seen).toHaveLength(1);
  });

  it("a token the sign-in refuses says to check the client id", async () => {
    const { url } = await startSignedInApp();
    const result = await run(["plan", "--url", url, "--entra", CLIENT_ID], credential({ token: "token-for-another-app" }));
    expect(result).toMatchObject({ code: 1, stdout: "" });
    expect(result.errors).toEqual([
      `lab-reset: GET /api/plan: the Entra token for api://${CLIENT_ID} was refused (401 from ${url}: The audience 'token-for-another-app' is invalid); check --entra is the client id of lab-reset's app registration, and that it issues tokens for api://${CLIENT_ID} (docs/deploy.md)`,
    ]);
  });

  it("a credential that cannot get a token is one line saying to run az login or check the client id, and nothing is sent", async () => {
    const { url, seen } = await startSignedInApp();
    // DefaultAzureCredential's failure: every credential it tried, the Azure CLI's among them.
    const notSignedIn = new AggregateAuthenticationError(
      [
        new CredentialUnavailableError("EnvironmentCredential is unavailable. No underlying credential could be used.\nTo troubleshoot, visit https://aka.ms/azsdk/js/identity/environmentcredential/troubleshoot."),
        new CredentialUnavailableError("ManagedIdentityCredential: Authentication failed. Message Attempted to use the IMDS endpoint, but it is not available."),
        new CredentialUnavailableError("AzureCliCredential: Please run 'az login' from a command prompt to authenticate before using this credential."),
      ],
      "DefaultAzureCredential failed to retrieve a token from the included credentials. Attempted credentials:",
    );
    const result = await run(["reset", "vm-25-26", "--url", url, "--entra", CLIENT_ID], credential({ failure: notSignedIn }));
    expect(result).toMatchObject({ code: 1, stdout: "" });
    expect(result.errors).toEqual([
      `lab-reset: cannot get an Entra token for ${SCOPE} (--entra): AzureCliCredential: Please run 'az login' from a command prompt to authenticate before using this credential; run az login as a person allowed to sign in to lab-reset, or check --entra is the client id of its app registration`,
    ]);

    // Entra's own refusal (not assigned to the app, a wrong client id) is the reason given, without its trace ids.
    const refused = new AggregateAuthenticationError(
      [
        new CredentialUnavailableError("EnvironmentCredential is unavailable."),
        new Error("AzureCliCredential: ERROR: AADSTS700016: Application with identifier 'api://99999999-2222-3333-4444-555555555555' was not found in the directory 'Contoso'. Trace ID: 1f0c Correlation ID: 2a7b Timestamp: 2026-12-01 10:00:00Z"),
      ],
      "DefaultAzureCredential failed to retrieve a token from the included credentials.",
    );
    const wrongId = await run(["status"], { env: { LAB_RESET_URL: url, LAB_RESET_ENTRA_CLIENT_ID: "99999999-2222-3333-4444-555555555555" }, ...credential({ failure: refused }) });
    expect(wrongId.errors).toEqual([
      "lab-reset: cannot get an Entra token for api://99999999-2222-3333-4444-555555555555/.default (LAB_RESET_ENTRA_CLIENT_ID): AzureCliCredential: ERROR: AADSTS700016: Application with identifier 'api://99999999-2222-3333-4444-555555555555' was not found in the directory 'Contoso'; run az login as a person allowed to sign in to lab-reset, or check LAB_RESET_ENTRA_CLIENT_ID is the client id of its app registration",
    ]);
    expect(seen).toEqual([]);
  });
});
