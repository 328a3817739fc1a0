/**
 * The routing rule (I6) against the GitHub stand-in's label endpoints and Azurite: a pair's VM
 * runner carries the routing label `lab` only while the pair is clean, idle, online and not held.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import type { LabConfig } from "../shared/lab/config.js";
import type { PairObservation } from "../shared/lab/decide.js";
import { labelPermission, routingPlan, routingVerdict, routingWarnings, type RoutingRunner } from "../shared/lab/routing.js";
import type { Logger } from "../shared/logger.js";
import type { JobFact } from "../shared/storage/facts.js";
import { githubWebhook } from "../shared/triggers/webhook.js";
import { beforeRequest, finishReset, perfRun, seedConfig, startTestLab, vmRunnerName, type TestLab } from "./support/lab.js";
import { signedDelivery, WEBHOOK_SECRET } from "./support/webhook-deliveries.js";

let lab: TestLab | undefined;
afterEach(async () => {
  await lab?.close();
  lab = undefined;
});

const routed: LabConfig = { ...seedConfig, routingLabels: ["lab"] };

function logged() {
  const lines: string[] = [];
  const push = (m: string) => void lines.push(m);
  const logger: Logger = { info: push, warn: push, error: push };
  return { logger, lines };
}

const start = (options: { config?: LabConfig; logger?: Logger } = {}) =>
  startTestLab({ config: options.config ?? routed, settings: { GITHUB_WEBHOOK_SECRET: WEBHOOK_SECRET }, ...(options.logger ? { logger: options.logger } : {}) });

const labelsOf = (l: TestLab, runnerName: string) => l.github.getRunner(runnerName)!.labels.map((x) => x.name);
const runnerId = (l: TestLab, runnerName: string) => Number(l.github.getRunner(runnerName)!.id);
const stored = async (l: TestLab, id: string) => (await l.runtime.store.getPair(id))?.record;
const routingEvents = async (l: TestLab, id: string) => (await l.runtime.store.listEvents(id)).filter((e) => e.kind === "routing").map((e) => e.reason);
const labelCalls = (l: TestLab) => l.github.labelCalls.map((c) => `${c.operation} ${c.labels.join(",")} ${c.runnerName ?? c.runnerId} ${c.status}`);

/** Every pair reset once and clean, `lab` back on every VM runner; the label log cleared. */
async function cleanLab(l: TestLab) {
  await l.timer();
  for (const d of l.github.dispatches) if (d.runId !== null) finishReset(l, d.runId);
  l.advance(10);
  const after = await l.timer();
  expect(after.pairs.every((p) => p.state === "clean")).toBe(true);
  for (const pair of l.config.pairs) expect(labelsOf(l, vmRunnerName(pair.id))).toContain("lab");
  l.github.labelCalls.length = 0;
  l.github.dispatches.length = 0;
  l.github.clearRequests();
  l.advance(1);
}

/** A job start as the webhook records it. */
const startFact = (l: TestLab, runnerName: string, runId: number, jobId: number): JobFact => ({
  phase: "started",
  jobId,
  runId,
  runnerName,
  runnerId: null,
  at: l.now.value.toISOString(),
  source: "webhook",
  recordedAt: l.now.value.toISOString(),
});

describe("routing labels follow the pair (I6)", () => {
  it("removes them the moment a job starts: the webhook's in_progress sends the DELETE itself, before any reconcile", async () => {
    lab = await start();
    await cleanLab(lab);
    const vm = vmRunnerName("vm-25-26");
    const run = perfRun(lab, [vm]);
    const job = lab.github.jobsOf(run.id)[0]!;
    const response = await githubWebhook(lab.runtime, await signedDelivery(lab.github.workflowJobEvent(Number(job.id), "in_progress")), logged().logger);
    expect(response.status).toBe(202);
    // Before the queued reconcile ran: only the label DELETE was sent, on the runner the job named.
    expect(lab.queue.length).toBe(1);
    expect(lab.github.requests.map((r) => `${r.method} ${r.path}`)).toEqual([`DELETE /repos/microsoft/netperf/actions/runners/${runnerId(lab, vm)}/labels/lab`]);
    expect(labelsOf(lab, vm)).not.toContain("lab");

    lab.advance(1);
    await lab.settle();
    expect(await stored(lab, "vm-25-26")).toMatchObject({ state: "busy", routing: "closed", routingError: null });
    expect(await routingEvents(lab, "vm-25-26")).toEqual(expect.arrayContaining([expect.stringMatching(/^routing closed \(the pair is busy: (run \d+ has a job on the VM|run \d+ started a job on the VM)/)]));
  });

  it("the webhook leaves labels alone for a job that did not route on them, and a failing DELETE never fails the delivery", async () => {
    const { logger, lines } = logged();
    lab = await start();
    await cleanLab(lab);
    const vm = vmRunnerName("vm-42-43");
    const other = lab.github.addRun({ name: "build", jobs: [{ runnerName: vm, labels: ["self-hosted", "vm-42-43"] }] });
    const job = lab.github.jobsOf(Number(other.id))[0]!;
    expect((await githubWebhook(lab.runtime, await signedDelivery(lab.github.workflowJobEvent(Number(job.id), "in_progress")), logger)).status).toBe(202);
    expect(lab.github.labelCalls).toEqual([]);

    lab.github.fail({ method: "DELETE", path: /\/labels\/lab$/ }, { status: 500 });
    const perf = perfRun(lab, [vm]);
    const perfJob = lab.github.jobsOf(perf.id)[0]!;
    const response = await githubWebhook(lab.runtime, await signedDelivery(lab.github.workflowJobEvent(Number(perfJob.id), "in_progress")), logger);
    expect(response).toMatchObject({ status: 202, body: { recorded: "started", reconcile: "queued" } });
    // One attempt: the 500 is not retried by the client.
    expect(lab.github.requests.filter((r) => r.method === "DELETE")).toHaveLength(1);
    // The answer waits for the DELETE at most 250 ms: on a loaded machine its failure is logged just after.
    await vi.waitFor(() => expect(lines.join("\n")).toMatch(/removing routing label lab from runner VM-42-43 .* failed; the reconcile tries again/), { timeout: 5_000 });
    // The reconcile catches up: the pair is busy, and its label goes.
    lab.advance(1);
    await lab.settle();
    expect(labelsOf(lab, vm)).not.toContain("lab");
    expect(await stored(lab, "vm-42-43")).toMatchObject({ state: "busy", routing: "closed" });
  });

  it("a job queued on the routing labels brings a look once the busy flag would show it: a start whose delivery is late still closes routing", async () => {
    lab = await start();
    await cleanLab(lab);
    const vm = vmRunnerName("vm-05-10");
    const run = perfRun(lab, [vm]);
    const job = lab.github.jobsOf(run.id)[0]!;
    const queued = await githubWebhook(lab.runtime, await signedDelivery(lab.github.workflowJobEvent(Number(job.id), "queued")), logged().logger);
    expect(queued).toMatchObject({ status: 202, body: { reconcile: expect.stringMatching(/^a look at /) } });
    expect(lab.queue.length).toBe(0);
    // The job took the VM; its in_progress delivery has not come. GitHub's busy flag has turned.
    lab.github.setRunner(vm, { busy: true });
    lab.advance(1);
    expect(await lab.settle()).toBeNull();
    lab.advance(0.5);
    const look = await lab.settle();
    expect(look?.pairs.find((p) => p.id === "vm-05-10")).toMatchObject({ state: "busy" });
    expect(labelsOf(lab, vm)).not.toContain("lab");
  });

  it("a reconcile that sees a job on a VM still carrying the label removes it (a lost in_progress delivery)", async () => {
    lab = await start();
    await cleanLab(lab);
    const vm = vmRunnerName("vm-05-10");
    perfRun(lab, [vm]);
    const result = await lab.timer();
    expect(result.pairs.find((p) => p.id === "vm-05-10")).toMatchObject({ state: "busy", decision: "deferred-busy" });
    expect(labelsOf(lab, vm)).not.toContain("lab");
    expect(labelCalls(lab)).toEqual(["remove lab VM-05-10 200"]);
  });

  it("removes the labels before the second look and before the dispatch", async () => {
    lab = await start();
    await cleanLab(lab);
    const vm = vmRunnerName("vm-42-43");
    const perf = perfRun(lab, [vm], "completed");
    const { result } = await lab.jobCompleted(JSON.stringify({ repository: "microsoft/netperf", runId: perf.id }));
    expect(result?.pairs.find((p) => p.id === "vm-42-43")).toMatchObject({ decision: "reset-dispatched" });
    const log = lab.github.requests.map((r) => `${r.method} ${r.path}`);
    const removal = log.indexOf(`DELETE /repos/microsoft/netperf/actions/runners/${runnerId(lab, vm)}/labels/lab`);
    // The job-completed call's own lookup comes first; then the reconcile's first and second looks.
    const looks = log.flatMap((line, i) => (line === "GET /repos/microsoft/netperf/actions/runners" ? [i] : [])).slice(-2);
    const dispatch = log.findIndex((line) => line.endsWith("/dispatches"));
    expect(removal).toBeGreaterThan(looks[0]!);
    expect(removal).toBeLessThan(looks[1]!);
    expect(dispatch).toBeGreaterThan(looks[1]!);
    expect(await stored(lab, "vm-42-43")).toMatchObject({ state: "resetting", routing: "closed" });
  });

  it("adds the labels back only once the reset succeeded and the VM runner is online and idle", async () => {
    lab = await start();
    await cleanLab(lab);
    const vm = vmRunnerName("vm-11-12");
    const perf = perfRun(lab, [vm], "completed");
    await lab.jobCompleted(JSON.stringify({ repository: "microsoft/netperf", runId: perf.id }));
    const reset = lab.github.dispatches.find((d) => d.inputs.pair === "vm-11-12")!;
    lab.github.setRunner(vm, { status: "offline" });
    lab.advance(2);
    // Resetting: nothing added.
    await lab.timer();
    expect(lab.github.labelCalls.filter((c) => c.operation === "add")).toEqual([]);
    // Reset done, but the VM runner is not back yet: the pair is offline, still closed.
    finishReset(lab, reset.runId!);
    lab.advance(2);
    expect((await lab.timer()).pairs.find((p) => p.id === "vm-11-12")).toMatchObject({ state: "offline" });
    expect(lab.github.labelCalls.filter((c) => c.operation === "add")).toEqual([]);
    expect(labelsOf(lab, vm)).not.toContain("lab");
    // Back online and idle: the label is added, one POST naming only it.
    lab.github.setRunner(vm, { status: "online" });
    lab.advance(2);
    expect((await lab.timer()).pairs.find((p) => p.id === "vm-11-12")).toMatchObject({ state: "clean" });
    const adds = lab.github.labelCalls.filter((c) => c.operation === "add");
    expect(adds.map((c) => [c.runnerName, c.labels])).toEqual([[vm, ["lab"]]]);
    expect(lab.github.requests.filter((r) => r.method === "POST" && r.path.endsWith("/labels")).map((r) => r.body)).toEqual([{ labels: ["lab"] }]);
    expect(labelsOf(lab, vm)).toContain("lab");
    const record = await stored(lab, "vm-11-12");
    expect(record).toMatchObject({ state: "clean", routing: "open", routingSince: lab.now.value.toISOString(), routingError: null });
    expect((await routingEvents(lab, "vm-11-12"))[0]).toBe(`routing opened: added lab on ${vm}`);
    // Nothing changes the second time.
    lab.advance(1);
    await lab.timer();
    expect(lab.github.labelCalls.filter((c) => c.operation === "add")).toHaveLength(1);
  });

  it("does not add the labels back after a failed reset", async () => {
    lab = await start();
    await lab.timer();
    for (const d of lab.github.dispatches) finishReset(lab, d.runId!, d.inputs.pair === "vm-25-26" ? "failure" : "success");
    lab.advance(10);
    const result = await lab.timer();
    expect(result.pairs.find((p) => p.id === "vm-25-26")).toMatchObject({ state: "failed" });
    expect(labelsOf(lab, vmRunnerName("vm-25-26"))).not.toContain("lab");
    expect(labelsOf(lab, vmRunnerName("vm-05-10"))).toContain("lab");
    expect(lab.github.labelCalls.filter((c) => c.operation === "add").map((c) => c.runnerName)).not.toContain(vmRunnerName("vm-25-26"));
    expect(await stored(lab, "vm-25-26")).toMatchObject({ routing: "closed" });
  });

  it("sends the DELETE again when a job start is recorded right after the POST (the claim orders writes, not GitHub's effects)", async () => {
    lab = await start();
    await lab.timer();
    for (const d of lab.github.dispatches) finishReset(lab, d.runId!);
    lab.advance(10);
    const vm = vmRunnerName("vm-42-43");
    const id = runnerId(lab, vm);
    // GitHub hands the VM a queued job the moment it carries the label: its start is recorded before the POST's answer arrives.
    const posts = beforeRequest(lab, { method: "POST", path: new RegExp(`/runners/${id}/labels$`) }, 1, () => lab!.runtime.facts.record([startFact(lab!, vm, 4242, 90_001)]));
    await lab.timer();
    expect(posts()).toBeGreaterThanOrEqual(1);
    expect(labelCalls(lab).filter((c) => c.includes(vm))).toEqual([`remove lab ${vm} 200`, `add lab ${vm} 200`, `remove lab ${vm} 200`]);
    expect(labelsOf(lab, vm)).not.toContain("lab");
    expect(await stored(lab, "vm-42-43")).toMatchObject({ routing: "closed" });
    expect((await routingEvents(lab, "vm-42-43"))[0]).toMatch(/^routing closed again right after it was opened \(run 4242 started a job on the VM\): removed lab on VM-42-43/);
    // The other pairs opened as usual.
    expect(labelsOf(lab, vmRunnerName("vm-25-26"))).toContain("lab");
  });

  it("removes the label from a stale duplicate runner carrying the same vmRunnerLabel too, and adds it back only on the runner it checked", async () => {
    lab = await start();
    lab.github.addRunner({ name: "VM-25-26-OLD", labels: ["lab", "vm-25-26"], status: "offline" });
    await lab.timer();
    expect(labelCalls(lab).filter((c) => c.includes("VM-25-26"))).toEqual(["remove lab VM-25-26 200", "remove lab VM-25-26-OLD 200"]);
    expect(labelsOf(lab, "VM-25-26-OLD")).not.toContain("lab");
    for (const d of lab.github.dispatches) finishReset(lab, d.runId!);
    lab.advance(10);
    lab.github.labelCalls.length = 0;
    await lab.timer();
    expect(labelCalls(lab).filter((c) => c.includes("VM-25-26"))).toEqual(["add lab VM-25-26 200"]);
    expect(labelsOf(lab, "VM-25-26-OLD")).not.toContain("lab");
  });

  it("touches only the configured labels, one at a time: never a read-only label, never PUT nor the remove-all DELETE", async () => {
    lab = await start();
    await cleanLab(lab);
    const vm = vmRunnerName("vm-25-26");
    const perf = perfRun(lab, [vm]);
    await githubWebhook(lab.runtime, await signedDelivery(lab.github.workflowJobEvent(Number(lab.github.jobsOf(perf.id)[0]!.id), "in_progress")), logged().logger);
    lab.advance(1);
    await lab.settle();
    lab.github.setRun(perf.id, { status: "completed", conclusion: "success" });
    lab.advance(16);
    await lab.timer();
    for (const d of lab.github.dispatches) if (d.runId !== null) finishReset(lab, d.runId);
    lab.advance(10);
    await lab.timer();
    expect(labelsOf(lab, vm)).toEqual(["self-hosted", "Windows", "X64", "os-windows-2022", "vm-25-26", "lab"]);
    expect(lab.github.labelCalls.length).toBeGreaterThanOrEqual(2);
    for (const call of lab.github.labelCalls) {
      expect(["add", "remove"]).toContain(call.operation);
      expect(call.labels).toEqual(["lab"]);
    }
    expect(lab.github.requests.filter((r) => r.path.includes("/labels") && (r.method === "PUT" || (r.method === "DELETE" && r.path.endsWith("/labels"))))).toEqual([]);
  });

  it("uses the /orgs/{org}/actions/runners/{id}/labels endpoints when runnerScope is org", async () => {
    lab = await start({ config: { ...routed, github: { ...routed.github, runnerScope: "org" } } });
    await lab.timer();
    const removals = lab.github.requests.filter((r) => r.method === "DELETE");
    expect(removals).toHaveLength(4);
    for (const r of removals) expect(r.path).toMatch(/^\/orgs\/microsoft\/actions\/runners\/\d+\/labels\/lab$/);
    expect(lab.github.labelCalls.every((c) => c.scope === "org" && c.status === 200)).toBe(true);
    for (const d of lab.github.dispatches) finishReset(lab, d.runId!);
    lab.advance(10);
    await lab.timer();
    const adds = lab.github.requests.filter((r) => r.method === "POST" && r.path.endsWith("/labels"));
    expect(adds).toHaveLength(4);
    for (const r of adds) expect(r.path).toMatch(/^\/orgs\/microsoft\/actions\/runners\/\d+\/labels$/);
  });

  it("a 403 on labels still resets every pair, records routingError naming the permission, logs it once, and tries once per reconcile", async () => {
    const { logger, lines } = logged();
    lab = await start({ logger });
    lab.github.denyLabelCall = () => true;
    const result = await lab.timer();
    expect(result.ok).toBe(true);
    expect(result.pairs.map((p) => p.decision)).toEqual(Array(4).fill("reset-dispatched"));
    expect(lab.github.dispatches.filter((d) => d.runId !== null)).toHaveLength(4);
    // One label call was made: after a 403 the permission is known to be missing.
    expect(lab.github.labelCalls.map((c) => c.status)).toEqual([403]);
    for (const pair of lab.config.pairs) {
      const record = await stored(lab, pair.id);
      expect(record?.routingError).toMatch(/Administration: write/);
      expect(record?.routing).toBe("open"); // the VM runner still carries the label: GitHub refused
    }
    const permissionLines = lines.filter((l) => /Administration: write/.test(l) && /cannot change runner labels/.test(l));
    expect(permissionLines).toHaveLength(1);
    expect(permissionLines[0]).toContain("which also allows changing the repository's settings");
  });

  it("a label call that fails otherwise (500) is not retried, is recorded, and the pair is still reset", async () => {
    lab = await start();
    lab.github.fail({ method: "DELETE", path: /\/labels\/lab$/ }, { status: 500 });
    const result = await lab.timer();
    expect(result.pairs.map((p) => p.decision)).toEqual(Array(4).fill("reset-dispatched"));
    expect(lab.github.labelCalls.map((c) => c.status).filter((s) => s !== 200)).toEqual([]);
    expect(lab.github.requests.filter((r) => r.method === "DELETE")).toHaveLength(4);
    const failed = (await Promise.all(lab.config.pairs.map((p) => stored(lab!, p.id)))).filter((r) => r?.routingError);
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ routing: "open", routingError: expect.stringMatching(/500/) });
  });

  it("a rate-limited label call is not retried after its retry-after (one attempt per reconcile), and is no permission problem", async () => {
    const { logger, lines } = logged();
    lab = await start({ logger });
    lab.github.fail({ method: "DELETE", path: /\/labels\/lab$/ }, { status: 403, body: { message: "You have exceeded a secondary rate limit. Please wait a few minutes before you try again." }, headers: { "retry-after": "1" } });
    const result = await lab.timer();
    expect(result.pairs.map((p) => p.decision)).toEqual(Array(4).fill("reset-dispatched"));
    // Four runners, four DELETEs: the limited one was not sent again, and the others were still tried.
    expect(lab.github.requests.filter((r) => r.method === "DELETE")).toHaveLength(4);
    expect(lines.some((l) => /cannot change runner labels/.test(l))).toBe(false);
    const limited = (await Promise.all(lab.config.pairs.map((p) => stored(lab!, p.id)))).filter((r) => r?.routingError);
    expect(limited).toHaveLength(1);
    expect(limited[0]?.routingError).toMatch(/secondary rate limit/);
  });

  it("with routingLabels [] touches no label at all", async () => {
    lab = await start({ config: seedConfig.routingLabels.length === 0 ? seedConfig : { ...seedConfig, routingLabels: [] } });
    await lab.timer();
    for (const d of lab.github.dispatches) finishReset(lab, d.runId!);
    lab.advance(10);
    await lab.timer();
    const perf = perfRun(lab, [vmRunnerName("vm-25-26")]);
    await githubWebhook(lab.runtime, await signedDelivery(lab.github.workflowJobEvent(Number(lab.github.jobsOf(perf.id)[0]!.id), "in_progress")), logged().logger);
    expect(lab.github.labelCalls).toEqual([]);
    expect((await stored(lab, "vm-25-26"))?.routing).toBeNull();
  });
});

describe("the routing rule, pure", () => {
  const observation = (patch: Partial<Extract<PairObservation, { ok: true }>> = {}): PairObservation => ({
    ok: true,
    vmRunners: [{ name: "VM-25-26", online: true, busy: false }],
    hostRunners: [[{ name: "RR1-NETPERF-26", online: true, busy: false }], [{ name: "RR1-NETPERF-25", online: true, busy: false }]],
    jobRunId: null,
    ...patch,
  });
  const now = new Date("2026-11-27T12:00:00.000Z");

  it.each([
    ["clean, idle, online and not held", { state: "clean" as const }, true],
    ["dirty", { state: "dirty" as const }, false],
    ["busy", { state: "busy" as const }, false],
    ["resetting", { state: "resetting" as const }, false],
    ["failed", { state: "failed" as const }, false],
    ["offline", { state: "offline" as const }, false],
    ["held", { state: "clean" as const, holdBy: "alice" }, false],
    ["clean but a job shows on GitHub", { state: "clean" as const, observation: observation({ jobRunId: 7 }) }, false],
    ["clean but the runner reads busy", { state: "clean" as const, observation: observation({ vmRunners: [{ name: "VM-25-26", online: true, busy: true }] }) }, false],
    ["clean but a recorded start still holds", { state: "clean" as const, jobStart: { runId: 9, at: "2026-11-27T11:59:00.000Z", heldUntil: "2026-11-27T12:14:00.000Z" } }, false],
    ["clean, a start whose end is recorded", { state: "clean" as const, jobStart: { runId: 9, at: "2026-11-27T11:59:00.000Z", heldUntil: null } }, true],
    ["clean but the VM runner is offline", { state: "clean" as const, observation: observation({ vmRunners: [{ name: "VM-25-26", online: false, busy: false }] }) }, false],
    ["GitHub unread", { state: "clean" as const, observation: { ok: false as const, error: "500" } }, false],
  ])("%s → open %s", (_, facts, open) => {
    expect(routingVerdict({ holdBy: null, observation: observation(), now, ...facts }).open).toBe(open);
  });

  const runner = (patch: Partial<RoutingRunner>): RoutingRunner => ({
    id: 1,
    name: "VM-25-26",
    labels: [
      { name: "self-hosted", type: "read-only" },
      { name: "Windows", type: "read-only" },
      { name: "vm-25-26", type: "custom" },
      { name: "LAB", type: "custom" },
    ],
    online: true,
    busy: false,
    ...patch,
  });

  it("plans removals on every runner carrying a label (as it spells it), additions only on online idle runners, and never a read-only label", () => {
    const stale = runner({ id: 2, name: "VM-25-26-OLD", online: false });
    expect(routingPlan(false, [runner({}), stale], ["lab"]).remove.map((e) => [e.runnerId, e.label])).toEqual([[1, "LAB"], [2, "LAB"]]);
    expect(routingPlan(true, [runner({}), stale], ["lab"])).toEqual({ remove: [{ runnerId: 2, runnerName: "VM-25-26-OLD", label: "LAB" }], add: [] });
    const bare = runner({ labels: [{ name: "self-hosted", type: "read-only" }, { name: "vm-25-26", type: "custom" }] });
    expect(routingPlan(true, [bare], ["lab"]).add).toEqual([{ runnerId: 1, runnerName: "VM-25-26", label: "lab" }]);
    expect(routingPlan(true, [{ ...bare, busy: true }], ["lab"]).add).toEqual([]);
    // A label GitHub marks read-only is never removed, whatever its name.
    const odd = runner({ labels: [{ name: "lab", type: "read-only" }] });
    expect(routingPlan(false, [odd], ["lab"]).remove).toEqual([]);
  });

  it("names the permission a label write needs, by runner scope", () => {
    expect(labelPermission(routed)).toMatch(/"Administration: write" on microsoft\/netperf \(which also allows changing the repository's settings/);
    expect(labelPermission({ github: { ...routed.github, runnerScope: "org" } })).toMatch(/organization permission "Self-hosted runners: write" on microsoft/);
  });

  it("warns at start-up when routingLabels is set but GITHUB_WEBHOOK_SECRET is not", () => {
    expect(routingWarnings({ webhookSecrets: [] }, routed)).toEqual([expect.stringMatching(/routingLabels is set \(lab\) but GITHUB_WEBHOOK_SECRET is not: without the workflow_job webhook/)]);
    expect(routingWarnings({ webhookSecrets: ["s"] }, routed)).toEqual([]);
    expect(routingWarnings({ webhookSecrets: [] }, { routingLabels: [] })).toEqual([]);
  });
});
