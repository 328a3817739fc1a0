/**
 * Hostile input against both public endpoints, over HTTP through the local host, with OIDC on
 * and a webhook secret set, as in Azure. Every case must get its 4xx with a JSON error that
 * echoes no secret, write no pair record and no job fact, queue no reconcile and dispatch
 * nothing. The one 5xx case is an unreachable key set: that is our failure, not the caller's, so
 * the caller may retry (503).
 */
import { generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { functionDefinitions } from "../functions/definitions.js";
import { startLocalHost, type LocalHost } from "../shared/local/host.js";
import { silentLogger } from "../shared/logger.js";
import { startTestLab, type TestLab } from "./support/lab.js";
import { base64url, TestIssuer } from "./support/oidc-issuer.js";
import { deliveryHeaders, signedDelivery, WEBHOOK_SECRET, workflowJobPayload } from "./support/webhook-deliveries.js";

const AUDIENCE = "lab-reset-test";
const RUN = 1000;
const JOB = "/api/job-completed";
const HOOK = "/api/github-webhook";

interface Served {
  issuer: TestIssuer;
  lab: TestLab;
  host: LocalHost;
}

async function serve(issuerOptions: Parameters<typeof TestIssuer.start>[0], settings: Record<string, string>): Promise<Served> {
  const issuer = await TestIssuer.start(issuerOptions);
  const lab = await startTestLab({ settings: { OIDC_ISSUER: issuer.url, OIDC_AUDIENCE: AUDIENCE, ...settings } });
  const runtime = lab.runtime;
  const host = await startLocalHost({ definitions: functionDefinitions(() => Promise.resolve(runtime), runtime.settings), port: 0, logger: silentLogger });
  return { issuer, lab, host };
}

const close = async (s: Served | undefined) => {
  await s?.host.close();
  await s?.lab.close();
  await s?.issuer.close();
};

/** A request to send: the path, headers and body, and the secrets it carries that must not come back. */
interface Attempt {
  path: string;
  headers: Record<string, string>;
  body: string;
  secrets: string[];
}

const jobBody = (extra: Record<string, unknown> = {}) => JSON.stringify({ repository: "microsoft/netperf", runId: RUN, ...extra });
const bearer = (token: string, body = jobBody()): Attempt => ({ path: JOB, headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body, secrets: [token] });

/** Sends the attempt and checks everything a hostile case must leave as it was. */
async function expectRefused(served: Served, attempt: Attempt, status: number, message: RegExp) {
  const response = await fetch(`${served.host.url}${attempt.path}`, { method: "POST", headers: attempt.headers, body: attempt.body });
  const text = await response.text();
  expect(response.status).toBe(status);
  expect(response.headers.get("content-type")).toMatch(/^application\/json/);
  const answer = JSON.parse(text);
  expect(answer.error).toEqual(expect.any(String));
  expect(answer.error).toMatch(message);
  for (const secret of [...attempt.secrets, WEBHOOK_SECRET]) expect(text).not.toContain(secret);
  expect(await served.lab.runtime.store.listPairs()).toEqual([]);
  expect(await served.lab.runtime.facts.listSince(new Date(0))).toEqual([]);
  expect(served.lab.queue.length).toBe(0);
  expect(served.lab.github.dispatches).toEqual([]);
}

let served: Served;
beforeAll(async () => {
  served = await serve({}, { GITHUB_WEBHOOK_SECRET: WEBHOOK_SECRET });
});
afterAll(() => close(served));

type Case = [name: string, status: number, message: RegExp, attempt: () => Promise<Attempt>];

describe("job-completed refuses callers without a valid GitHub Actions token for their own run", () => {
  const mint: TestIssuer["mint"] = (job, options) => served.issuer.mint(job, options);
  const cases: Case[] = [
    ["no Authorization header", 401, /Authorization: Bearer/, () => Promise.resolve({ path: JOB, headers: {}, body: jobBody(), secrets: [] })],
    ["a function-key-style Basic header", 401, /Authorization: Bearer/, () => Promise.resolve({ path: JOB, headers: { authorization: "Basic bGFiOnJlc2V0" }, body: jobBody(), secrets: ["bGFiOnJlc2V0"] })],
    ["a bearer token that is not a JWT", 401, /not a well-formed signed JWT/, () => Promise.resolve(bearer("not-a-jwt"))],
    ["an unsigned token (alg none)", 401, /Only RS256/, async () => {
      const valid = await mint({ runId: RUN });
      const payload = valid.split(".")[1]!;
      return bearer(`${base64url({ alg: "none", typ: "JWT" })}.${payload}.`);
    }],
    ["an HS256 token keyed with the issuer's public key", 401, /Only RS256/, async () => {
      const forged = await new SignJWT({ repository: "microsoft/netperf", run_id: String(RUN), run_attempt: "1" })
        .setProtectedHeader({ alg: "HS256", kid: served.issuer.kid })
        .setIssuer(served.issuer.url).setAudience(AUDIENCE).setIssuedAt().setExpirationTime("5m")
        .sign(new TextEncoder().encode(served.issuer.publicKeyPem));
      return bearer(forged);
    }],
    ["an RS256 token signed by another key under the issuer's key id", 401, /signature does not verify/, async () => bearer(await mint({ runId: RUN }, { key: (await generateKeyPair("RS256")).privateKey }))],
    ["an RS256 token naming a key the issuer does not publish", 401, /key the issuer does not publish/, async () => bearer(await mint({ runId: RUN }, { kid: "attacker-key" }))],
    ["a token from another issuer", 401, /not issued by the configured issuer/, async () => bearer(await mint({ runId: RUN }, { issuer: "https://token.actions.githubusercontent.com" }))],
    ["a token for another audience", 401, /another audience/, async () => bearer(await mint({ runId: RUN }, { audience: "https://other-app.example" }))],
    ["an expired token", 401, /expired/, async () => bearer(await mint({ runId: RUN }, { notBefore: -900, expiresIn: -300 }))],
    ["a token not valid yet", 401, /not valid yet/, async () => bearer(await mint({ runId: RUN }, { notBefore: 300, expiresIn: 900 }))],
    ["a token without the run's claims", 401, /lacks repository, run_id or run_attempt/, async () => bearer(await mint({ runId: RUN }, { claims: { run_id: undefined } }))],
    ["a token of a repository that is not configured", 403, /someone\/else may not call lab-reset/, async () => bearer(await mint({ repository: "someone/else", runId: RUN }), jobBody({ repository: "someone/else" }))],
    ["a valid token replayed for another run id", 403, /cannot report run 1001/, async () => bearer(await mint({ runId: RUN }), jobBody({ runId: RUN + 1 }))],
    ["a valid token replayed for another attempt", 403, /cannot report attempt 2/, async () => bearer(await mint({ runId: RUN, runAttempt: 1 }), jobBody({ runAttempt: 2 }))],
    ["a valid token with a body naming another repository", 403, /cannot report repository someone\/else/, async () => bearer(await mint({ runId: RUN }), jobBody({ repository: "someone/else" }))],
  ];
  it.each(cases)("answers %s with %i", async (_name, status, message, attempt) => {
    await expectRefused(served, await attempt(), status, message);
  });
});

describe("job-completed refuses malformed bodies from a valid caller", () => {
  const cases: [name: string, status: number, message: RegExp, body: string][] = [
    ["a body that is not JSON", 400, /not JSON/, "{oops"],
    ["an empty body", 400, /not JSON/, ""],
    ["a JSON array", 400, /schema/, "[1000]"],
    ["JSON null", 400, /schema/, "null"],
    ["a runId of the wrong type", 400, /schema/, jobBody({ runId: true })],
    ["a negative runId", 400, /schema/, jobBody({ runId: -1000 })],
    ["a fractional runId", 400, /schema/, jobBody({ runId: 1000.5 })],
    ["a runId in exponent notation", 400, /schema/, jobBody({ runId: "1e3" })],
    ["a repository of the wrong type", 400, /schema/, jobBody({ repository: 42 })],
    ["an extra field", 400, /schema/, jobBody({ force: true })],
    ["a pair id (not a field; vm-99-99 is not configured either)", 400, /schema/, jobBody({ pair: "vm-99-99" })],
    ["a repository with a Cyrillic lookalike letter", 400, /schema/, jobBody({ repository: "micr\u043esoft/netperf" })],
    ["a runnerName with a NUL character", 400, /schema/, jobBody({ runnerName: "VM-25-26\u0000" })],
    ["a runnerName with a newline (log injection)", 400, /schema/, jobBody({ runnerName: "VM-25-26\nreset all pairs" })],
    ["a runnerName longer than any runner's", 400, /schema/, jobBody({ runnerName: "V".repeat(300) })],
    ["a runnerName that is not configured", 400, /not the VM runner of a configured pair/, jobBody({ runnerName: "VM-99-99" })],
    ["a runnerName with a Cyrillic lookalike letter", 400, /not the VM runner of a configured pair/, jobBody({ runnerName: "V\u041c-25-26" })],
    ["a runnerName with a right-to-left override", 400, /not the VM runner of a configured pair/, jobBody({ runnerName: "VM-25-26\u202e" })],
    ["a path-like runnerName with backslashes", 400, /not the VM runner of a configured pair/, jobBody({ runnerName: "..\\..\\VM-25-26" })],
    ["a host runner's label as runnerName", 400, /not the VM runner of a configured pair/, jobBody({ runnerName: "child=rr1-netperf-25\\localadminuser" })],
    ["a host runner's name as runnerName", 400, /not the VM runner of a configured pair/, jobBody({ runnerName: "RR1-NETPERF-25" })],
    ["a body over 64 KiB", 413, /larger than 65536/, jobBody({ runnerName: "x".repeat(70_000) })],
  ];
  it.each(cases)("answers %s with %i", async (_name, status, message, body) => {
    await expectRefused(served, bearer(await served.issuer.mint({ runId: RUN }), body), status, message);
  });
});

describe("github-webhook refuses deliveries GitHub did not sign, and signed ones it cannot use", () => {
  const inProgress = () => workflowJobPayload("in_progress", { runnerName: "VM-25-26", runId: RUN });
  const attempt = async (body: unknown, change: (headers: Record<string, string>) => void = () => {}, options?: Parameters<typeof signedDelivery>[1]): Promise<Attempt> => {
    const delivery = await signedDelivery(body, options);
    const headers = deliveryHeaders(delivery);
    change(headers);
    return { path: HOOK, headers, body: delivery.body, secrets: [] };
  };
  const cases: Case[] = [
    ["no signature", 401, /no X-Hub-Signature-256/, () => attempt(inProgress(), (h) => delete h["x-hub-signature-256"])],
    ["a wrong signature", 401, /does not match/, () => attempt(inProgress(), (h) => (h["x-hub-signature-256"] = `sha256=${"0".repeat(64)}`))],
    ["a signature over a different body", 401, /does not match/, async () => {
      const signed = await signedDelivery(workflowJobPayload("in_progress", { runnerName: "VM-42-43", runId: RUN }));
      return attempt(inProgress(), (h) => (h["x-hub-signature-256"] = signed.signature!));
    }],
    ["a signature made with another secret", 401, /does not match/, () => attempt(inProgress(), undefined, { secret: "another-secret-of-enough-length" })],
    ["a SHA-1 signature in the SHA-256 header", 401, /does not match/, () => attempt(inProgress(), (h) => (h["x-hub-signature-256"] = `sha1=${"a".repeat(40)}`))],
    ["a signed body with a byte appended after signing", 401, /does not match/, async () => ({ ...(await attempt(inProgress())), body: `${JSON.stringify(inProgress())} ` })],
    ["no event header", 400, /only workflow_job/, () => attempt(inProgress(), (h) => delete h["x-github-event"])],
    ["an event other than workflow_job", 400, /only workflow_job.*"push"/, () => attempt({ ref: "refs/heads/main" }, undefined, { event: "push" })],
    ["no delivery id", 400, /X-GitHub-Delivery/, () => attempt(inProgress(), (h) => delete h["x-github-delivery"])],
    ["a path-like delivery id", 400, /X-GitHub-Delivery/, () => attempt(inProgress(), undefined, { deliveryId: "..\\..\\labresetPairs" })],
    ["a signed body that is not JSON", 400, /not JSON/, () => attempt("{oops")],
    ["a job id of the wrong type", 400, /not a workflow_job event/, () => attempt({ ...inProgress(), workflow_job: { ...inProgress().workflow_job, id: "2832853555" } })],
    ["a start time that is not a time", 400, /not a workflow_job event/, () => attempt({ ...inProgress(), workflow_job: { ...inProgress().workflow_job, started_at: "yesterday" } })],
    ["a runner name with control characters", 400, /not a workflow_job event/, () => attempt(workflowJobPayload("in_progress", { runnerName: "VM-25-26\u001b[2J", runId: RUN }))],
    ["a repository that is not configured", 403, /someone\/else do not concern this lab-reset/, () => attempt(workflowJobPayload("in_progress", { repository: "someone/else", runnerName: "VM-25-26", runId: RUN }))],
    ["a body over 256 KiB", 413, /larger than 262144/, () => attempt({ ...inProgress(), padding: "x".repeat(300 * 1024) })],
  ];
  it.each(cases)("answers %s with %i", async (_name, status, message, make) => {
    await expectRefused(served, await make(), status, message);
  });
});

describe("when lab-reset cannot check a caller", () => {
  let unreachable: Served | undefined;
  beforeAll(async () => {
    // An issuer whose key set cannot be fetched, and no webhook secret configured.
    unreachable = await serve({ jwksUnreachable: true }, {});
  });
  afterAll(() => close(unreachable));

  it("answers a token it cannot check, because the issuer's keys are unreachable, with 503 (the one 5xx case: retry later)", async () => {
    const token = await unreachable!.issuer.mint({ runId: RUN });
    await expectRefused(unreachable!, bearer(token), 503, /Could not read the token issuer's keys/);
  });

  it("answers every delivery with 401 while no webhook secret is configured", async () => {
    const delivery = await signedDelivery(workflowJobPayload("in_progress", { runnerName: "VM-25-26", runId: RUN }));
    await expectRefused(unreachable!, { path: HOOK, headers: deliveryHeaders(delivery), body: delivery.body, secrets: [] }, 401, /no webhook secret configured/);
  });
});
