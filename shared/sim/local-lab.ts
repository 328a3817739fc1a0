/**
 * The simulated lab behind `npm start` when no GitHub settings are given: the GitHub stand-in
 * with the lab config's runners, perf runs arriving as in the seed profile, and reset runs
 * behaving like the lab's, on a clock that runs `speed` times faster than the wall clock.
 * The app talks to it exactly as to GitHub; perf and reset runs call job-completed over HTTP.
 */
import type { LabConfig } from "../lab/config.js";
import { parseSchedule } from "../lab/schedule.js";
import { GitHubStandin } from "./github-standin.js";
import { SimLab, type VmActivity } from "./lab.js";
import { seedProfile } from "./workload.js";

export interface SimulatedLab {
  url: string;
  token: string;
  now: () => Date;
  /** Simulated minutes per real minute. */
  speed: number;
  /** Starts the clock; perf runs and timers then call the app at `appUrl`. */
  run(appUrl: string, resetSchedule: string): void;
  stop(): Promise<void>;
}

export async function startSimulatedLab(config: LabConfig, options: { speed: number; seed: number; onActivity?: (pairId: string, activity: VmActivity, at: Date) => void }): Promise<SimulatedLab> {
  // Five simulated minutes before a 6-hourly timer fires, so the first look comes quickly.
  const start = new Date("2026-11-23T05:55:00.000Z");
  let clock = () => start;
  const standin = await GitHubStandin.start({ owner: config.github.owner, repo: config.github.repo, clock: () => clock() });
  const profile = { ...seedProfile(config), config };
  const lab = new SimLab(standin, { config, osLabel: profile.osLabel, start, seed: options.seed });
  clock = lab.now;
  if (options.onActivity) lab.onActivity = options.onActivity;
  let stopped = false;
  let loop: Promise<void> | undefined;

  return {
    url: standin.url,
    token: standin.token,
    now: lab.now,
    speed: options.speed,
    run(appUrl, resetSchedule) {
      const post = async (path: string, body?: unknown) => {
        try {
          await fetch(`${appUrl}${path}`, { method: "POST", ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { "content-type": "application/json" } }) });
        } catch (error) {
          console.error(`simulated lab: POST ${path} failed: ${(error as Error).message}`);
        }
      };
      const report = (runId: number) => post("/api/job-completed", { repository: `${config.github.owner}/${config.github.repo}`, runId });
      standin.onDispatch = (_dispatch, run) => {
        lab.adoptResetRun(Number(run.id), (r) => report(r.id));
      };
      // A first perf run at once, so a new user sees a pair go busy → dirty → resetting → clean.
      const windows = ["self-hosted", "lab", profile.osLabel(config.pairs[0]!)];
      lab.after(60_000, () => {
        lab.addPerfRun([{ labels: windows, minutes: 12 }], (r) => report(r.id));
      });
      for (const arrival of profile.workload(options.seed, 30)) {
        lab.at(start.getTime() + 20 * 60_000 + arrival.atMinutes * 60_000, () => {
          lab.addPerfRun(arrival.jobs, (r) => report(r.id));
        });
      }
      const schedule = parseSchedule(resetSchedule);
      const arm = () =>
        lab.at(schedule.next(lab.now()).getTime(), async () => {
          await post("/admin/functions/scheduledReset");
          arm();
        });
      arm();
      loop = lab.runRealtime(options.speed, () => stopped);
    },
    async stop() {
      stopped = true;
      await loop;
      await standin.close();
    },
  };
}
