/**
 * The routing rule (I6): a pair's VM runner carries the routing labels (the custom labels perf
 * jobs route on, e.g. `lab`) only while the pair is clean, idle, online and not held. GitHub hands
 * a queued job to a runner the instant its previous job ends, before any reset can start: only a
 * runner without the label receives no perf job. Pure: no I/O, no clock.
 */
import type { LabConfig, Pair } from "./config.js";
import { isReadOnlyLabel } from "./config.js";
import { vmBusy, type JobStart, type PairObservation } from "./observation.js";
import type { PairRecord, PairState } from "./pair-record.js";

export type Routing = NonNullable<PairRecord["routing"]>;

export interface RoutingFacts {
  /** The pair's state as this reconcile decided it. */
  state: PairState;
  /** Who holds the pair, if anyone. */
  holdBy: string | null;
  observation: PairObservation;
  /** The latest recorded job start on the VM (its `heldUntil` still running means busy). */
  jobStart?: JobStart | undefined;
  now: Date;
}

export type RoutingVerdict = { open: true } | { open: false; why: string };

/** Whether the pair's VM runner may carry the routing labels now, and if not, why. */
export function routingVerdict(facts: RoutingFacts): RoutingVerdict {
  const { observation } = facts;
  if (facts.holdBy !== null) return { open: false, why: `held by ${facts.holdBy}` };
  if (!observation.ok) return { open: false, why: "GitHub could not be read" };
  const busy = vmBusy(observation, facts.jobStart, facts.now);
  if (busy !== null) return { open: false, why: `the pair is busy: ${busy}` };
  if (!observation.vmRunners.some((v) => v.online)) return { open: false, why: "the VM runner is offline" };
  if (facts.state !== "clean") return { open: false, why: `the pair is ${facts.state}` };
  return { open: true };
}

/** A runner as the routing rule needs it: GitHub's id, its labels with their type, and whether it may take a job. */
export interface RoutingRunner {
  id: number;
  name: string;
  labels: { name: string; type?: string }[];
  online: boolean;
  busy: boolean;
}

export interface LabelEdit {
  runnerId: number;
  runnerName: string;
  label: string;
}

export interface RoutingPlan {
  remove: LabelEdit[];
  add: LabelEdit[];
}

/** The custom labels of `runner` that are routing labels, as the runner spells them (GitHub's labels are case-insensitive). */
export function routingLabelsOn(runner: Pick<RoutingRunner, "labels">, routingLabels: readonly string[]): string[] {
  const wanted = new Set(routingLabels.map((l) => l.toLowerCase()));
  // Read-only labels (self-hosted, OS, architecture) cannot be removed: never touched.
  return runner.labels.filter((l) => l.type !== "read-only" && !isReadOnlyLabel(l.name) && wanted.has(l.name.toLowerCase())).map((l) => l.name);
}

/**
 * The label edits that make the pair's VM runners agree with the verdict, one label at a time.
 * Closed: every runner carrying the pair's vmRunnerLabel (stale duplicates included) loses them.
 * Open: the runners the reconcile saw online and idle get them; any other runner loses them.
 */
export function routingPlan(open: boolean, runners: readonly RoutingRunner[], routingLabels: readonly string[]): RoutingPlan {
  const plan: RoutingPlan = { remove: [], add: [] };
  for (const runner of runners) {
    const carried = routingLabelsOn(runner, routingLabels);
    const target = open && runner.online && !runner.busy;
    if (!target) {
      for (const label of carried) plan.remove.push({ runnerId: runner.id, runnerName: runner.name, label });
      continue;
    }
    const have = new Set(carried.map((l) => l.toLowerCase()));
    for (const label of routingLabels) if (!have.has(label.toLowerCase()) && !isReadOnlyLabel(label)) plan.add.push({ runnerId: runner.id, runnerName: runner.name, label });
  }
  return plan;
}

/** What the record says of routing once the runners carry `carrying` (any routing label on any VM runner). */
export function routingField(carrying: boolean): Routing {
  return carrying ? "open" : "closed";
}

/** The permission a label write needs, in the words of GitHub's App settings. */
export function labelPermission(config: Pick<LabConfig, "github">): string {
  return config.github.runnerScope === "org"
    ? `the GitHub App needs the organization permission "Self-hosted runners: write" on ${config.github.owner}`
    : `the GitHub App needs the repository permission "Administration: write" on ${config.github.owner}/${config.github.repo} (which also allows changing the repository's settings; organization runners need only "Self-hosted runners: write")`;
}

/** Warnings to log at start-up about routing. */
export function routingWarnings(settings: { webhookSecrets: string[] }, config: Pick<LabConfig, "routingLabels">): string[] {
  const warnings: string[] = [];
  if (config.routingLabels.length > 0 && settings.webhookSecrets.length === 0) {
    warnings.push(
      `routingLabels is set (${config.routingLabels.join(", ")}) but GITHUB_WEBHOOK_SECRET is not: without the workflow_job webhook lab-reset cannot take a VM out of routing when a job starts on it, only when a later reconcile sees the job, and the next queued job may then start on the dirty VM. Subscribe the GitHub App to "Workflow jobs" and set GITHUB_WEBHOOK_SECRET.`,
    );
  }
  return warnings;
}

/** A pair's VM runners as the routing rule needs them, from the runner list. */
export function routingRunners(pair: Pair, runners: readonly { id: number; name: string; status: string; busy: boolean; labels: { name: string; type?: string }[] }[], busyByJob: (runnerName: string) => boolean): RoutingRunner[] {
  const label = pair.vmRunnerLabel.toLowerCase();
  return runners
    .filter((r) => r.labels.some((l) => l.name.toLowerCase() === label))
    .map((r) => ({ id: r.id, name: r.name, labels: r.labels, online: r.status === "online", busy: r.busy || busyByJob(r.name) }));
}
