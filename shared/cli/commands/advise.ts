/**
 * `advise`: the app's recorded workload (GET /api/workload) replayed here, in the simulator, with
 * the lab as it is and as proposed. The app only reads its history; the simulations run on this
 * machine, so a week of a busy lab takes a few minutes.
 */
import { advise, ChangeError, plural, type Advice, type LabChange, type LabFigures, type RecordedFigures } from "../../report/advise.js";
import { WorkloadSchema, type Workload } from "../../report/read.js";
import { answerAs, appFrom, callApp, type RemoteOptions } from "../client.js";
import type { CliContext } from "../context.js";
import { CliError, EXIT_FAILED, EXIT_OK, usageError } from "../errors.js";
import { renderTable, utc } from "../table.js";

export interface AdviseOptions extends RemoteOptions {
  addPairs?: number;
  os?: string;
  remove?: string[];
  days: number;
  seed: number;
}

export async function adviseCommand(context: CliContext, options: AdviseOptions): Promise<number> {
  const app = appFrom(options, context);
  const call = { method: "GET", path: `/api/workload?days=${options.days}` } as const;
  context.stderr(`reading ${plural(options.days, "day")} of recorded jobs and resets from ${app.url}…\n`);
  const workload = answerAs(WorkloadSchema, await callApp(app, call), app, call);
  return adviseOn(context, workload, options);
}

/** The advice on a workload, printed as a table or as JSON. */
export async function adviseOn(context: CliContext, workload: Workload, options: Omit<AdviseOptions, keyof RemoteOptions | "days"> & { json?: boolean }): Promise<number> {
  // --os alone asks for one more pair of that OS: what else would it mean?
  const change: LabChange = { addPairs: options.addPairs ?? (options.os !== undefined ? 1 : 0), ...(options.os !== undefined ? { os: options.os } : {}), remove: options.remove ?? [] };
  let advice: Advice;
  try {
    advice = await advise(workload, change, { seed: options.seed, progress: (line) => context.stderr(`${line}\n`) });
  } catch (error) {
    if (error instanceof ChangeError) throw usageError(error.message);
    throw error;
  }
  if (options.json) context.stdout(`${JSON.stringify(advice, null, 2)}\n`);
  if (advice.tooFewJobs) {
    if (!options.json) throw new CliError(advice.message);
    return EXIT_FAILED;
  }
  if (!options.json) context.stdout(render(advice));
  return EXIT_OK;
}

type Told = Extract<Advice, { tooFewJobs: false }>;

function render(advice: Told): string {
  const { workload, current, proposed, recorded } = advice;
  const lines = [
    `replayed: ${workload.jobs} perf jobs over ${plural(workload.days, "day")} (${utc(workload.from)} to ${utc(workload.to)}) in the simulator, under the recommended set-up (routing on lab, the webhook); a reset's restore takes ${advice.resetMinutesPerHost} min per host (${advice.resetMinutesFrom === "measured" ? "as measured" : "the simulator's default: none measured"}).`,
    `"as it is" and "proposed" replay the same jobs on each lab; "recorded" is what the lab measured: a difference smaller than that between "recorded" and "as it is" is within the replay's noise.`,
    ...(proposed ? [`proposed: ${proposed.change}`] : []),
    "",
  ];
  const labs: { name: string; figures: RecordedFigures & Partial<LabFigures> }[] = [
    { name: "recorded", figures: recorded },
    { name: `as it is (${current.pairs} pairs)`, figures: current },
    ...(proposed ? [{ name: `proposed (${proposed.pairs} pairs)`, figures: proposed }] : []),
  ];
  const row = (what: string, cell: (f: RecordedFigures & Partial<LabFigures>) => string) => [what, ...labs.map((l) => cell(l.figures))];
  const rows = [
    row("queue wait p50", (f) => duration(f.queueWaitP50Seconds)),
    row("queue wait p95", (f) => duration(f.queueWaitP95Seconds)),
    row("utilization", (f) => `${(100 * f.utilization).toFixed(1)} %`),
    row("resets per day", (f) => f.resetsPerDay.toFixed(1)),
  ];
  if (current.jobsNotStarted > 0 || (proposed?.jobsNotStarted ?? 0) > 0) rows.push(row("jobs not started by the end", (f) => (f.jobsNotStarted === undefined ? "-" : String(f.jobsNotStarted))));
  const byLabels = renderTable(
    ["queue wait p50 / p95 by runs-on labels", "jobs", ...labs.map((l) => l.name.replace(/ \(.*/, ""))],
    current.byLabels.map(({ labels, jobs }) => [labels, String(jobs), ...labs.map((l) => waits(l.figures.byLabels.find((b) => b.labels === labels)))]),
  );
  const notes = advice.notes.map((note) => `note: ${note}\n`).join("");
  return `${lines.join("\n")}\n${renderTable(["", ...labs.map((l) => l.name)], rows)}\n${byLabels}${notes}`;
}

const waits = (b: { p50Seconds: number; p95Seconds: number } | undefined) => (b === undefined ? "-" : `${duration(b.p50Seconds)} / ${duration(b.p95Seconds)}`);

/** "0 s", "45 s", "12.5 min", "2 h 42 min": a wait as a person reads it, to the minute or finer. */
export function duration(seconds: number): string {
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${(seconds / 60).toFixed(1)} min`;
  const minutes = Math.round(seconds / 60);
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, "0")} min`;
}
