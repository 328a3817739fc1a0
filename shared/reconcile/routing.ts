/**
 * Keeping GitHub's routing labels equal to the routing rule (shared/lab/routing.ts), from this
 * reconcile's first look:
 * - `close`, before the second look and any dispatch: a pair the rule closes loses the labels on
 *   every runner carrying its vmRunnerLabel, so no job can be assigned between the check and the restore;
 * - `open`, after the dispatches: a pair the rule opens gets them back on the runner it saw online
 *   and idle, once GitHub lists no unfinished job on it (the busy flag lags), claim-protected: the record is written `routing: open` through its ETag first, then
 *   the POST, then the record and the job starts are read again and the DELETE is sent again if
 *   either says the pair is no longer clean and idle.
 * Label writes are sent once (never retried); a failure is recorded on the pair and logged, and
 * never blocks a reset nor fails the reconcile. After a 403 no more label calls are made in this
 * reconcile: the permission is missing for every runner.
 */
import type { Pair } from "../lab/config.js";
import type { DecideInput } from "../lab/decide.js";
import type { PairRecord, Trigger } from "../lab/pair-record.js";
import { labelPermission, routingField, routingLabelsOn, routingPlan, routingRunners, routingVerdict, type LabelEdit, type Routing, type RoutingRunner } from "../lab/routing.js";
import { GitHubError } from "../github/client.js";
import type { StoredPair } from "../storage/tables.js";
import type { ActDeps } from "./act.js";
import { updatePair } from "../storage/update-pair.js";
import type { FactWindow } from "./job-facts.js";
import { lower, pairByRunnerName, type CrossCheck, type LabLook, type LabView } from "./observe.js";
import type { Tally } from "./tally.js";


/** A pair as the first look showed it, and the input its decision was made from. */
export interface RoutingSubject {
  pair: Pair;
  input: DecideInput;
}

interface Applied {
  /** Edits GitHub made. */
  done: LabelEdit[];
  /** Removals GitHub answered 404 (the label was already gone) and additions to a runner that is gone. */
  moot: LabelEdit[];
  /** Edits that failed or were not attempted after a 403. */
  failed: LabelEdit[];
  error: string | null;
}

const NOTHING_APPLIED: Applied = { done: [], moot: [], failed: [], error: null };

const describeEdits = (edits: LabelEdit[]) => edits.map((e) => `${e.label} on ${e.runnerName}`).join(", ");
const removed = (a: Applied) => (a.done.length > 0 ? `: removed ${describeEdits(a.done)}` : "");

export class RoutingPass {
  /** The first 403's message: the permission is missing, so no further label call is made. */
  private denied: string | null = null;
  /** Each pair's record as this pass last read or wrote it: what the routing alert is judged on. */
  private readonly records = new Map<string, PairRecord>();

  constructor(
    private readonly deps: ActDeps,
    private readonly trigger: Trigger,
    private readonly look: LabLook,
    private readonly tally: Tally,
    private readonly crossCheck: CrossCheck,
  ) {}

  private get labels() {
    return this.deps.config.routingLabels;
  }

  private get view(): LabView | null {
    return this.labels.length === 0 || "error" in this.look ? null : this.look;
  }

  /** Before the second look: every pair the rule closes loses its routing labels. */
  async close(subjects: RoutingSubject[]): Promise<void> {
    const view = this.view;
    if (view === null) return;
    for (const { pair, input } of subjects) {
      const verdict = this.verdict(pair, input);
      if (verdict.open) continue;
      const runners = this.runnersOf(pair, view);
      const { remove } = routingPlan(false, runners, this.labels);
      const applied = await this.apply(remove, []);
      await this.note(pair, routingField(applied.failed.length > 0), applied, `routing closed (${verdict.why})${removed(applied)}`);
    }
  }

  /** The pair's record as this pass left it; undefined when the pass did not look (no routing labels, GitHub unread) or could not read it. */
  recordOf(pairId: string): PairRecord | undefined {
    return this.records.get(pairId);
  }

  /** After the dispatches: pairs the rule opens get their labels back, claim-protected. */
  async open(subjects: RoutingSubject[], window: FactWindow): Promise<void> {
    const view = this.view;
    if (view === null) return;
    for (const { pair, input } of subjects) {
      if (!this.verdict(pair, input).open) continue;
      const runners = this.runnersOf(pair, view);
      const plan = routingPlan(true, runners, this.labels);
      // Stale duplicates (offline runners with the pair's vmRunnerLabel) never carry the labels.
      const stale = await this.apply(plan.remove, []);
      if (plan.add.length === 0) {
        const carried = runners.filter((r) => r.online && !r.busy).flatMap((r) => routingLabelsOn(r, this.labels).map((label) => `${label} on ${r.name}`));
        await this.note(pair, "open", stale, `routing open: ${carried.join(", ")} already there${stale.done.length > 0 ? `; removed ${describeEdits(stale.done)} from a stale runner` : ""}`);
        continue;
      }
      const busy = await this.jobOnVm(runners);
      if (busy !== null) {
        await this.note(pair, "closed", NOTHING_APPLIED, `routing not opened: ${busy}`);
        continue;
      }
      await this.reopen(pair, plan.add, window);
    }
  }

  /** The busy flag's cross-check before labels go back: a job GitHub lists on the VM runner, or why the list is unknown. */
  private async jobOnVm(runners: RoutingRunner[]): Promise<string | null> {
    const check = await this.crossCheck.look();
    if ("error" in check) return `GitHub's unfinished jobs could not be read (${check.error})`;
    const job = runners.map((r) => check.jobByRunner.get(lower(r.name))).find((j) => j !== undefined);
    return job ? `run ${job.run_id} has a job on VM runner ${job.runner_name}` : null;
  }

  /** The claim, the POSTs, then the re-check that sends the DELETE again if the pair is no longer clean and idle. */
  private async reopen(pair: Pair, add: LabelEdit[], window: FactWindow): Promise<void> {
    // After a 403 the call is not made: nothing to claim.
    if (this.denied !== null) return this.note(pair, "closed", await this.apply([], add), "routing not opened");
    const claim = await this.claimOpen(pair);
    if (claim === null) return;
    const added = await this.apply([], add);
    if (added.done.length === 0) {
      await this.note(pair, "closed", added, `routing not opened: ${added.error ?? `VM runner ${add[0]!.runnerName} is gone`}`, claim.record);
      return;
    }
    const why = await this.closedSince(pair, claim, window);
    if (why === null) {
      await this.note(pair, "open", added, `routing opened: added ${describeEdits(added.done)}`);
      return;
    }
    // The claim orders Table writes, not GitHub's side effects: take back what was just added.
    const undone = await this.apply(added.done, []);
    await this.note(pair, routingField(undone.failed.length > 0), { ...undone, error: added.error ?? undone.error }, `routing closed again right after it was opened (${why})${removed(undone)}`, claim.record);
  }

  /** Writes `routing: open` through the record's ETag while it still says clean and not held; null when it does not. */
  private async claimOpen(pair: Pair): Promise<StoredPair | null> {
    try {
      const update = await updatePair(this.deps, pair.id, (current) => {
        if (current === null || current.record.state !== "clean" || current.record.holdBy !== null) return null;
        const now = this.deps.clock().toISOString();
        return { record: { ...current.record, routing: "open", routingSince: current.record.routing === "open" ? (current.record.routingSince ?? now) : now, updatedAt: now } };
      });
      if (!update.written) {
        if (update.current) this.records.set(pair.id, update.current.record);
        return null;
      }
      this.records.set(pair.id, update.record);
      return { record: update.before!.record, etag: update.etag };
    } catch (error) {
      return this.storeFailed(pair, error);
    }
  }

  /** Why the pair may no longer carry the labels after the POST, or null: the record and the job starts, read again. */
  private async closedSince(pair: Pair, claimed: StoredPair, window: FactWindow): Promise<string | null> {
    const current = await this.read(pair);
    if (current === null) return "the record could not be read back";
    const r = current.record;
    if (r.holdBy !== null) return `held by ${r.holdBy}`;
    if (r.state !== "clean" || r.lastJobAt !== claimed.record.lastJobAt) return `the pair is ${r.state}`;
    const facts = await window.again();
    if (!Array.isArray(facts)) return `the job facts could not be read (${facts.error})`;
    const started = window.newStartsOn(pair, facts, pairByRunnerName(this.deps.config.pairs, this.view!));
    return started.length > 0 ? `run ${started[0]!.fact.runId} started a job on the VM` : null;
  }

  /** Sends each edit once, removals first; after a 403, none. */
  private async apply(remove: LabelEdit[], add: LabelEdit[]): Promise<Applied> {
    const applied: Applied = { done: [], moot: [], failed: [], error: null };
    const edits = [...remove.map((e) => ["remove", e] as const), ...add.map((e) => ["add", e] as const)];
    for (const [kind, edit] of edits) {
      if (this.denied !== null) {
        applied.failed.push(edit);
        applied.error ??= `label calls not attempted: ${this.denied}`;
        continue;
      }
      try {
        const result = kind === "remove" ? await this.deps.github.removeRunnerLabel(edit.runnerId, edit.label) : await this.deps.github.addRunnerLabel(edit.runnerId, edit.label);
        // A label already absent is as good as removed; a runner gone cannot take one.
        (result === "done" ? applied.done : applied.moot).push(edit);
      } catch (error) {
        applied.failed.push(edit);
        applied.error ??= this.failure(edit, kind, error);
      }
    }
    return applied;
  }

  private failure(edit: LabelEdit, kind: "remove" | "add", error: unknown): string {
    const message = error instanceof Error ? error.message : String(error);
    const what = `${kind === "remove" ? "removing" : "adding"} routing label ${edit.label} ${kind === "remove" ? "from" : "to"} VM runner ${edit.runnerName}`;
    if (error instanceof GitHubError && error.status === 403 && !/secondary rate limit|rate limit exceeded/i.test(message)) {
      this.denied = `${message}; ${labelPermission(this.deps.config)}`;
      this.deps.logger.error(`lab-reset cannot change runner labels: ${what} was refused (${message}); ${labelPermission(this.deps.config)}. Pairs are still reset, but perf jobs may start on a dirty VM until it is granted.`);
      return `${what}: ${this.denied}`;
    }
    this.deps.logger.warn(`${what} failed (the next reconcile tries again; the pair is still reset): ${message}`);
    return `${what}: ${message}`;
  }

  /**
   * Records routing, its error and (when labels or routing changed) an event, through the record's
   * ETag. `baseline` is what "changed" is measured against: by default the record as it is now;
   * after our own claim, the record before it (a claim undone is no change).
   */
  private async note(pair: Pair, routing: Routing, applied: Applied, reason: string, baseline?: PairRecord): Promise<void> {
    const attempted = applied.done.length + applied.moot.length + applied.failed.length > 0;
    const said = applied.error ? `${reason}; ${applied.error}` : reason;
    try {
      const update = await updatePair(this.deps, pair.id, (current) => {
        if (current === null) return null;
        const r = current.record;
        const base = baseline ?? r;
        const now = this.deps.clock().toISOString();
        const routingError = attempted ? applied.error : r.routingError;
        const changed = base.routing !== routing || applied.done.length > 0;
        if (r.routing === routing && !changed && routingError === r.routingError) return null;
        const next: PairRecord = { ...r, routing, routingSince: base.routing === routing && base.routingSince !== null ? base.routingSince : now, routingError, updatedAt: now };
        const events = changed ? [{ pairId: pair.id, at: now, kind: "routing" as const, trigger: this.trigger, from: r.state, to: r.state, reason: said, resetRequestId: r.resetRequestId, resetRunId: r.resetRunId }] : [];
        return { record: next, events };
      });
      if (!update.written) {
        if (update.current) this.records.set(pair.id, update.current.record);
        return;
      }
      this.records.set(pair.id, update.record);
      if ((baseline ?? update.before?.record)?.routing !== routing || applied.done.length > 0) this.deps.logger.info(`pair ${pair.id}: ${said}`);
    } catch (error) {
      this.storeFailed(pair, error);
    }
  }

  /** The routing rule on the pair's record as this reconcile decided or wrote it (after any dispatch or release). */
  private verdict(pair: Pair, input: DecideInput) {
    const record = this.tally.records.get(pair.id) ?? input.record;
    return routingVerdict({ state: record?.state ?? "dirty", holdBy: record?.holdBy ?? null, observation: input.observation, ...(input.jobStart ? { jobStart: input.jobStart } : {}), now: this.deps.clock() });
  }

  private runnersOf(pair: Pair, view: LabView): RoutingRunner[] {
    const runners = view.byLabel.get(lower(pair.vmRunnerLabel)) ?? [];
    return routingRunners(pair, runners, (name) => view.jobByRunner.has(lower(name)));
  }

  private async read(pair: Pair): Promise<StoredPair | null> {
    try {
      const current = await this.deps.store.getPair(pair.id);
      if (current !== null) this.records.set(pair.id, current.record);
      return current;
    } catch (error) {
      return this.storeFailed(pair, error);
    }
  }

  private storeFailed(pair: Pair, error: unknown): null {
    this.deps.logger.error(`pair ${pair.id}: routing not recorded (Table Storage): ${(error as Error).message}`);
    return null;
  }
}
