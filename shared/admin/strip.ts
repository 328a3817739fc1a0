/** A pair's last hours as segments of state and spans of hold, and the inline SVG strip the status page draws of them. */
import { PairStateSchema, type PairEvent, type PairRecord, type PairState } from "../lab/pair-record.js";
import { dayClock, duration, escapeHtml } from "./html.js";

/** "unknown": before the pair's first record. */
export type StripState = PairState | "unknown";

export interface StripSegment {
  state: StripState;
  start: Date;
  end: Date;
  /** Why the pair moved to this state (the event's reason); null for the state the window opened in. */
  reason: string | null;
}

/** A time the pair was held by an admin, and the hold's words ("held by mara: firmware update"). */
export interface HoldSpan {
  start: Date;
  end: Date;
  reason: string | null;
}

/** A state for a class name or attribute: anything the schema does not know is "unknown". */
export function knownState(value: string | null): StripState {
  const parsed = PairStateSchema.safeParse(value);
  return parsed.success ? parsed.data : "unknown";
}

export const STRIP_HOURS = 24;
const HOUR = 3_600_000;

export interface StripOptions {
  /**
   * The events reach back to the pair's first record (the store had no older one): before the
   * oldest there was no record. A record first written without an event (its first reconcile left
   * it dirty) shows as no record until its first event; both mean nothing says it was reset.
   */
  fromFirstRecord?: boolean;
  hours?: number;
}

/** Events oldest first; a stable sort keeps same-instant events in their order (they arrive newest first). */
function oldestFirst(events: PairEvent[]): { event: PairEvent; at: number }[] {
  return [...events]
    .reverse()
    .map((event) => ({ event, at: Date.parse(event.at) }))
    .sort((a, b) => a.at - b.at);
}

/**
 * What state the pair was in over the `hours` before `drawnAt`. Before its first record (an event
 * with no `from`, or the oldest event when they reach back that far) it is "unknown"; otherwise
 * the window opens in the `from` of the oldest event inside it (the record's state if there is
 * none), and each event starts a segment of the state it moved to; events that keep the state (a
 * dispatch) extend the segment.
 */
export function stripSegments(events: PairEvent[], recordState: PairState, drawnAt: Date, options: StripOptions = {}): StripSegment[] {
  const end = drawnAt.getTime();
  const start = end - (options.hours ?? STRIP_HOURS) * HOUR;
  const sorted = oldestFirst(events);
  const first = sorted.find(({ event }) => event.from === null) ?? (options.fromFirstRecord ? sorted[0] : undefined);
  // No event at all, though they reach back to the first: the pair has no record yet.
  const firstAt = first?.at ?? (options.fromFirstRecord ? Infinity : -Infinity);
  const inWindow = sorted.filter(({ at }) => at >= start && at <= end && at >= firstAt);

  const segments: StripSegment[] = [];
  const opening = firstAt > start ? "unknown" : knownState(inWindow.length > 0 ? inWindow[0]!.event.from : recordState);
  let current: { state: StripState; since: number; reason: string | null } = { state: opening, since: start, reason: null };
  const close = (until: number) => {
    if (until > current.since) segments.push({ state: current.state, start: new Date(current.since), end: new Date(until), reason: current.reason });
  };
  for (const { event, at } of inWindow) {
    const state = knownState(event.to);
    if (state === current.state) continue;
    close(at);
    current = { state, since: at, reason: event.reason };
  }
  close(end);
  return segments;
}

/** Whether the pair was held after this event: its `held` stamp, or for a hold event written before the stamp, its words (shared/admin/holds.ts). */
function heldAfter(event: PairEvent): boolean | undefined {
  if (event.held !== undefined && event.held !== null) return event.held;
  if (event.kind === "hold") return !event.reason.startsWith("released");
  return undefined;
}

/**
 * When the pair was held over the `hours` before `drawnAt`: from the events (a hold event starts a
 * span with its words; an event that leaves the pair unheld ends it), and the record's own hold,
 * which stands for the present whatever older events said.
 */
export function holdSpans(events: PairEvent[], record: Pick<PairRecord, "holdBy" | "holdReason" | "holdSince">, drawnAt: Date, hours = STRIP_HOURS): HoldSpan[] {
  const end = drawnAt.getTime();
  const start = end - hours * HOUR;
  const spans: { start: number; end: number; reason: string | null }[] = [];
  let open: { since: number; reason: string | null } | null = null;
  const closeAt = (at: number) => {
    if (open) spans.push({ start: open.since, end: at, reason: open.reason });
    open = null;
  };
  for (const { event, at } of oldestFirst(events)) {
    if (at > end) break;
    const held = heldAfter(event);
    if (held === false) closeAt(at);
    // A new hold event while held is a new reason: a span of its own.
    else if (held === true && (open === null || event.kind === "hold")) {
      closeAt(at);
      open = { since: at, reason: event.kind === "hold" ? event.reason : null };
    }
  }
  if (record.holdBy !== null) {
    const since = Date.parse(record.holdSince ?? "");
    open ??= { since: Number.isNaN(since) ? end : since, reason: null };
    open.reason ??= `held by ${record.holdBy}: ${record.holdReason ?? "no reason given"}`;
  }
  closeAt(end);
  return spans
    .filter((s) => s.end > start && s.end > s.start)
    .map((s) => ({ start: new Date(Math.max(s.start, start)), end: new Date(s.end), reason: s.reason }));
}

const MINUTES = STRIP_HOURS * 60;
/** A brief state (a reset of a few minutes) is drawn at least this wide; the next segment draws over the excess. */
const MIN_WIDTH = 6;
/** The hold band's height, of the strip's 20: the state stays visible (and hoverable) below it. */
const HOLD_HEIGHT = 7;

/** The hatch the hold band is filled with: defined once on the page (`.held` refers to it by id). */
export const STRIP_DEFS =
  `<svg class="defs" aria-hidden="true" width="0" height="0"><defs>` +
  `<pattern id="held-hatch" patternUnits="userSpaceOnUse" width="24" height="20"><rect width="11" height="20" fill="#1f2328"></rect></pattern>` +
  `</defs></svg>`;

const stateName = (state: StripState) => (state === "unknown" ? "no record" : state);
const range = (start: Date, end: Date) => `${dayClock(start)} – ${dayClock(end)} UTC (${duration(end.getTime() - start.getTime())})`;

/** The strip as inline SVG, one minute per unit, stretched to its cell; each segment and hold names itself and its dated range. */
export function stripSvg(segments: StripSegment[], holds: HoldSpan[], drawnAt: Date, pairId: string): string {
  const start = drawnAt.getTime() - STRIP_HOURS * HOUR;
  const x = (t: Date) => (t.getTime() - start) / 60_000;
  const rects = segments.map((s) => {
    const width = Math.max(MIN_WIDTH, x(s.end) - x(s.start));
    const title = `${stateName(s.state)} ${range(s.start, s.end)}${s.reason ? `: ${s.reason}` : ""}`;
    return `<rect class="seg st-${s.state}" data-state="${s.state}" x="${x(s.start).toFixed(1)}" y="0" width="${width.toFixed(1)}" height="20"><title>${escapeHtml(title)}</title></rect>`;
  });
  const bands = holds.map((h) => {
    const width = Math.max(MIN_WIDTH, x(h.end) - x(h.start));
    const title = `on hold ${range(h.start, h.end)}: ${h.reason ?? "no reason recorded"}`;
    return `<rect class="held" data-held="" x="${x(h.start).toFixed(1)}" y="0" width="${width.toFixed(1)}" height="${HOLD_HEIGHT}"><title>${escapeHtml(title)}</title></rect>`;
  });
  const label = `${pairId}, last ${STRIP_HOURS} hours: ${summary(segments, holds)}`;
  return (
    `<svg class="strip" viewBox="0 0 ${MINUTES} 20" preserveAspectRatio="none" role="img" aria-label="${escapeHtml(label)}">` +
    rects.join("") + bands.join("") + `</svg>`
  );
}

/** "busy 3 h 10 min, clean 20 h 50 min; on hold 2 h": time in each state, longest first, for screen readers. */
function summary(segments: StripSegment[], holds: HoldSpan[]): string {
  const totals = new Map<StripState, number>();
  for (const s of segments) totals.set(s.state, (totals.get(s.state) ?? 0) + s.end.getTime() - s.start.getTime());
  const held = holds.reduce((sum, h) => sum + h.end.getTime() - h.start.getTime(), 0);
  const states = [...totals].sort((a, b) => b[1] - a[1]).map(([state, ms]) => `${stateName(state)} ${duration(ms)}`).join(", ");
  return held > 0 ? `${states}; on hold ${duration(held)}` : states;
}
