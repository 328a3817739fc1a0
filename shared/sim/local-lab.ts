/**
 * The simulated lab behind `npm start` when no GitHub settings are given: the GitHub stand-in
 * with the lab config's runners, perf runs arriving as in the seed profile, and reset runs
 * behaving like the lab's, on a clock that runs `speed` times faster than the wall clock.
 * The app talks to it exactly as to GitHub, in the recommended set-up: it signs in as a GitHub
 * App, perf jobs route on the `lab` label, and GitHub's signed `workflow_job` deliveries reach
 * its webhook over HTTP (so perf runs call nothing); reset runs still call job-completed.
 */
import { generateKeyPairSync } from "node:crypto";
import type { GitHubAuth } from "../github/client.js";
import type { LabConfig } from "../lab/config.js";
import { parseSchedule } from "../lab/schedule.js";
import { isRecordedAction } from "../triggers/webhook.js";
import { INSTALLATION_ID } from "./github-model.js";
import { GitHubStandin } from "./github-standin.js";
import { SimLab, type VmActivity, type WorkflowJobDelivery } from "./lab.js";
import { seedProfile } from "./workload.js";

/** The label the simulated perf jobs route on (workload.ts) and the VM runners carry (lab.ts). */
export const SIMULATED_ROUTING_LABELS = ["lab"];

export interface SimulatedLab {
  url: string;
  /** The simulated GitHub App's credentials: with them the app reads the App's delivery log and redelivers from it. */
  auth: Extract<GitHubAuth, { kind: "app" }>;
  now: () => Date;
  /** Simulated minutes per real minute. */
  speed: number;
  /** Starts the clock; perf runs, webhook deliveries and timers then reach the app at `appUrl`. */
  run(appUrl: string, schedules: { resetSchedule: string; redeliverSchedule: string }): void;
  /** Stops the clock: nothing more reaches the app. */
  stop(): Promise<void>;
  /** Closes the simulated GitHub, once the app has stopped using it. */
  close(): Promise<void>;
}

export interface SimulatedLabOptions {
  speed: number;
  seed: number;
  /** Signs every delivery: the app's GITHUB_WEBHOOK_SECRET (its first, while rotating). */
  webhookSecret: string;
  onActivity?: (pairId: string, activity: VmActivity, at: Date) => void;
  /** A delivery the app did not take (not answered 2xx, or lost on its way): its words and GitHub's status. */
  onDeliveryFailed?: (delivery: string, status: string, at: Date) => void;
}

export async function startSimulatedLab(config: LabConfig, options: SimulatedLabOptions): Promise<SimulatedLab> {
  // Five simulated minutes before a 6-hourly timer fires, so the first look comes quickly.
  const start = new Date("2026-11-23T05:55:00.000Z");
  let clock = () => start;
  const standin = await GitHubStandin.start({ owner: config.github.owner, repo: config.github.repo, clock: () => clock() });
  const app = simulatedApp(standin);
  const profile = { ...seedProfile(config), config };
  const lab = new SimLab(standin, { config, osLabel: profile.osLabel, start, seed: options.seed, webhooks: { secret: options.webhookSecret } });
  clock = lab.now;
  if (options.onActivity) lab.onActivity = options.onActivity;
  let stopped = false;
  let loop: Promise<void> | undefined;

  return {
    url: standin.url,
    auth: app,
    now: lab.now,
    speed: options.speed,
    run(appUrl, schedules) {
      const post = async (path: string, body?: unknown) => {
        try {
          await fetch(`${appUrl}${path}`, { method: "POST", ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { "content-type": "application/json" } }) });
        } catch (error) {
          console.error(`simulated lab: POST ${path} failed: ${(error as Error).message}`);
        }
      };
      const report = (runId: number) => post("/api/job-completed", { repository: `${config.github.owner}/${config.github.repo}`, runId });
      sendDeliveries(lab, standin, `${appUrl}/api/github-webhook`, { ...options, onDeliveryFailed: (...failure) => (stopped ? undefined : options.onDeliveryFailed?.(...failure)) });
      // lab-reset.yml's report job calls job-completed; perf workflows are left unedited: the webhook tells.
      standin.onDispatch = (_dispatch, run) => {
        lab.adoptResetRun(Number(run.id), (r) => report(r.id));
      };
      // A first perf run at once, so a new user sees a pair go busy → dirty → resetting → clean.
      const windows = ["self-hosted", ...SIMULATED_ROUTING_LABELS, profile.osLabel(config.pairs[0]!)];
      lab.after(60_000, () => {
        lab.addPerfRun([{ labels: windows, minutes: 12 }]);
      });
      for (const arrival of profile.workload(options.seed, 30)) {
        lab.at(start.getTime() + 20 * 60_000 + arrival.atMinutes * 60_000, () => {
          lab.addPerfRun(arrival.jobs);
        });
      }
      everySimulated(lab, schedules.resetSchedule, () => post("/admin/functions/scheduledReset"));
      everySimulated(lab, schedules.redeliverSchedule, () => post("/admin/functions/redeliverWebhooks"));
      loop = lab.runRealtime(options.speed, () => stopped);
    },
    async stop() {
      stopped = true;
      await loop;
    },
    close: () => standin.close(),
  };
}

/** A GitHub App on the stand-in: its key made here, so no secret is kept anywhere. */
function simulatedApp(standin: GitHubStandin): SimulatedLab["auth"] {
  const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048, publicKeyEncoding: { type: "spki", format: "pem" }, privateKeyEncoding: { type: "pkcs1", format: "pem" } });
  const appId = "1000001";
  standin.enableAppAuth({ appId, installationId: INSTALLATION_ID, publicKeyPem: publicKey });
  return { kind: "app", appId, installationId: INSTALLATION_ID, privateKey };
}

/**
 * GitHub's side of the App's webhook: each of the lab's deliveries is POSTed to `webhookUrl` with
 * GitHub's headers and logged; one the lab loses is logged as timed out, unsent, as GitHub logs a
 * delivery it could not make. Either stays failed in the log until the app's redeliverWebhooks
 * timer asks for it again.
 */
function sendDeliveries(lab: SimLab, standin: GitHubStandin, webhookUrl: string, options: SimulatedLabOptions) {
  standin.enableWebhook({ url: webhookUrl, secret: options.webhookSecret });
  // Said only for a job's start or end: the app ignores the rest, and the timer asks for no other.
  const failed = (delivery: WorkflowJobDelivery, status: string) => {
    const { action, workflow_job: job } = JSON.parse(delivery.body) as { action: string; workflow_job: { id: number; runner_name: string | null } };
    if (isRecordedAction(action)) options.onDeliveryFailed?.(`workflow_job ${action} of job ${job.id}${job.runner_name ? ` on ${job.runner_name}` : ""}`, status, lab.now());
  };
  // Not awaited: GitHub does not hold its other deliveries back while the app answers one.
  lab.onWorkflowJobDelivery = (delivery) =>
    void standin.forwardDelivery(delivery).then((attempt) => {
      if (attempt.status_code < 200 || attempt.status_code > 299) failed(delivery, attempt.status);
    });
  lab.onFailedDelivery = (_send, delivery) => failed(delivery, `${standin.logUnreachableDelivery(delivery).status}: lost on its way, as ~1 % are`);
}

/**
 * A timer at its schedule on the simulated clock, through the admin route. Like the Functions
 * host's timers, a run does not overlap the last; nor does the lab's clock wait for it.
 */
function everySimulated(lab: SimLab, expression: string, fire: () => Promise<void>) {
  const schedule = parseSchedule(expression);
  let running = false;
  const arm = () =>
    lab.at(schedule.next(lab.now()).getTime(), () => {
      if (!running) {
        running = true;
        void fire().finally(() => (running = false));
      }
      arm();
    });
  arm();
}
