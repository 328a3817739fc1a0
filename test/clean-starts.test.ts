/**
 * The seed's own case (lab_management.md): "5 concurrent performance jobs enqueued but only 3 lab
 * VM runners". With routing labels and the webhook, every one of them starts on a freshly reset
 * VM and none is killed: the app, unchanged, against the GitHub stand-in, whose assignment follows
 * GitHub's rule (a job goes only to an online, idle runner carrying all its labels, as the
 * stand-in holds them), with signed workflow_job deliveries arriving late.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { LabConfig } from "../shared/lab/config.js";
import { GitHubStandin } from "../shared/sim/github-standin.js";
import { SimLab } from "../shared/sim/lab.js";
import { appDriver, SIM_WEBHOOK_SECRET } from "../shared/sim/simulate.js";
import { useImmediateZeroTimeouts } from "../shared/sim/timers.js";
import { shippedConfig } from "./support/lab.js";

const NO_FAULTS = { serverErrorRate: 0, rateLimitRate: 0, lostCallRate: 0 };
const windowsJob = { labels: ["self-hosted", "lab", "os-windows-2022"], minutes: 10 };

let close: (() => Promise<void>) | undefined;
afterEach(async () => close?.());

async function fiveJobsForThreeVms(config: LabConfig, webhooks: boolean) {
  const restore = useImmediateZeroTimeouts();
  const start = new Date("2026-11-23T00:10:00.000Z");
  let clock = () => start;
  const standin = await GitHubStandin.start({ owner: config.github.owner, repo: config.github.repo, clock: () => clock() });
  const lab = new SimLab(standin, { config, osLabel: () => "os-windows-2022", start, seed: 7, ...(webhooks ? { webhooks: { secret: SIM_WEBHOOK_SECRET, lossRate: 0 } } : {}) });
  clock = lab.now;
  const driver = await appDriver(lab, standin, config, { seed: 7, faults: NO_FAULTS, webhooks });
  close = async () => {
    restore();
    await driver.close();
  };
  // The app first resets the lab it has never seen; then five jobs are queued at once.
  await driver.runtime.queue.send({ trigger: "timer" });
  lab.at(start.getTime() + 20 * 60_000, () => {
    for (let i = 0; i < 5; i++) lab.addPerfRun([windowsJob], (run) => driver.onPerfRunComplete(run));
  });
  await lab.runUntil(new Date(start.getTime() + 3 * 3_600_000));
  return { metrics: lab.metrics, labelCalls: standin.labelCalls };
}

describe("clean starts", () => {
  it("5 perf jobs queued for 3 VMs: 5 clean starts and no job killed, with routing labels and the webhook", async () => {
    const config: LabConfig = { ...shippedConfig, pairs: shippedConfig.pairs.slice(0, 3) };
    expect(config.routingLabels).toEqual(["lab"]);
    const { metrics, labelCalls } = await fiveJobsForThreeVms(config, true);
    expect(metrics.perfJobsStarted).toBe(5);
    expect(metrics.dirtyStarts).toBe(0);
    expect(metrics.killed).toBe(0);
    // The VMs were taken out of routing and put back, through the label endpoints only one label at a time.
    expect(labelCalls.some((c) => c.operation === "remove")).toBe(true);
    expect(labelCalls.some((c) => c.operation === "add")).toBe(true);
    expect(labelCalls.filter((c) => c.operation === "set" || c.operation === "remove-all")).toEqual([]);
  }, 120_000);

  it("without routing labels the same five jobs include dirty starts: GitHub hands a queued job to a VM the instant its job ends", async () => {
    const config: LabConfig = { ...shippedConfig, routingLabels: [], pairs: shippedConfig.pairs.slice(0, 3) };
    const { metrics } = await fiveJobsForThreeVms(config, false);
    expect(metrics.perfJobsStarted).toBe(5);
    expect(metrics.dirtyStarts).toBeGreaterThan(0);
  }, 120_000);
});
