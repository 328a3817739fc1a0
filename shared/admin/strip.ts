/** A pair's last hours as segments of state, and the inline SVG strip the status page draws of them. */
import { PairStateSchema, type PairEvent, type PairState } from "../lab/pair-record.js";
import { clock, duration, escapeHtml } from "./html.js";

/** "unknown": before the pair's first record (an event with no `from`). */
export type StripState = PairState | "unknown";

export interface StripSegment {
  state: StripState;
  start: Date;
  end: Date;
  /** Why the pair moved to this state (the event's reason); null for the state the window opened in. */
  reason: string | null;
}

/** A state for a class name or attribute: anything the schema does not know is "unknown". */
export function knownState(value: string | null): StripState {
  const parsed = PairStateSchema.safeParse(value);
  return parsed.success ? parsed.data : "unknown";
}

export const STRIP_HOURS = 24;
const HOUR = 3_600_000;

/**
 * What state the pair was in over the `hours` before `drawnAt`. It opens in the `from` of the
 * oldest event inside the window (the record's state if there is none), and each event starts a
 * segment of the state it moved to; events that keep the state (a dispatch) extend the segment.
 */
export function stripSegments(events: PairEvent[], recordState: PairState, drawnAt: Date, hours = STRIP_HOURS): StripSegment[] {
  const end = drawnAt.getTime();
  const start = end - hours * HOUR;
  // Events arrive newest first: reversed, a stable sort keeps same-instant events in their order.
  const inWindow = [...events]
    .reverse()
    .map((event) => ({ event, at: Date.parse(event.at) }))
    .filter(({ at }) => at >= start && at <= end)
    .sort((a, b) => a.at - b.at);

  const segments: StripSegment[] = [];
  let current: { state: StripState; since: number; reason: string | null } = {
    state: knownState(inWindow.length > 0 ? inWindow[0]!.event.from : recordState),
    since: start,
    reason: null,
  };
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

const MINUTES = STRIP_HOURS * 60;
/** A brief state (a reset of a few minutes) is drawn at least this wide; the next segment draws over the excess. */
const MIN_WIDTH = 6;

/** The strip as inline SVG, one minute per unit, stretched to its cell; each segment names its state and times. */
export function stripSvg(segments: StripSegment[], drawnAt: Date, pairId: string): string {
  const start = drawnAt.getTime() - STRIP_HOURS * HOUR;
  const x = (t: Date) => (t.getTime() - start) / 60_000;
  const rects = segments.map((s) => {
    const width = Math.max(MIN_WIDTH, x(s.end) - x(s.start));
    const title = `${s.state} ${clock(s.start, drawnAt)}–${clock(s.end, drawnAt)} UTC (${duration(s.end.getTime() - s.start.getTime())})${s.reason ? `: ${s.reason}` : ""}`;
    return `<rect class="seg st-${s.state}" data-state="${s.state}" x="${x(s.start).toFixed(1)}" y="0" width="${width.toFixed(1)}" height="20"><title>${escapeHtml(title)}</title></rect>`;
  });
  const label = `${pairId}, last ${STRIP_HOURS} hours: ${summary(segments)}`;
  return (
    `<svg class="strip" viewBox="0 0 ${MINUTES} 20" preserveAspectRatio="none" role="img" aria-label="${escapeHtml(label)}">` +
    rects.join("") + `</svg>`
  );
}

/** "busy 3 h 10 min, clean 20 h 50 min": time in each state, longest first, for screen readers. */
function summary(segments: StripSegment[]): string {
  const totals = new Map<StripState, number>();
  for (const s of segments) totals.set(s.state, (totals.get(s.state) ?? 0) + s.end.getTime() - s.start.getTime());
  return [...totals].sort((a, b) => b[1] - a[1]).map(([state, ms]) => `${state} ${duration(ms)}`).join(", ");
}
