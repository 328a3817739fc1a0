/**
 * Six-field NCRONTAB (`{second} {minute} {hour} {day} {month} {day-of-week}`, UTC), the format of
 * Azure Functions timer schedules. Parsed here so a bad RESET_SCHEDULE stops start-up with a clear
 * message (the host would only log it), and so the local host and the simulator fire the timer at
 * the same instants as Azure does.
 */
const FIELDS = [
  { name: "second", min: 0, max: 59 },
  { name: "minute", min: 0, max: 59 },
  { name: "hour", min: 0, max: 23 },
  { name: "day", min: 1, max: 31 },
  { name: "month", min: 1, max: 12 },
  { name: "day-of-week", min: 0, max: 6 },
] as const;

const NAMES: Record<string, number> = {
  jan: 1, feb: 2, mar: 3, apr: 4, may: 5, jun: 6, jul: 7, aug: 8, sep: 9, oct: 10, nov: 11, dec: 12,
  sun: 0, mon: 1, tue: 2, wed: 3, thu: 4, fri: 5, sat: 6,
};

export interface Schedule {
  readonly expression: string;
  /** The first instant strictly after `after` that matches, in UTC. */
  next(after: Date): Date;
}

function parseField(text: string, index: number): Set<number> {
  const { name, min, max } = FIELDS[index]!;
  const values = new Set<number>();
  const value = (token: string): number => {
    const named = NAMES[token.toLowerCase()];
    const n = named ?? (/^\d+$/.test(token) ? Number(token) : NaN);
    // Day-of-week 7 is Sunday in most crontabs.
    const v = index === 5 && n === 7 ? 0 : n;
    if (!Number.isInteger(v) || v < min || v > max) {
      throw new Error(`${name} field "${text}": "${token}" is not a number from ${min} to ${max}`);
    }
    return v;
  };
  for (const part of text.split(",")) {
    const [range, stepText] = part.split("/");
    const step = stepText === undefined ? 1 : Number(stepText);
    if (!Number.isInteger(step) || step < 1) throw new Error(`${name} field "${text}": bad step "${stepText}"`);
    let from: number;
    let to: number;
    if (range === "*") {
      [from, to] = [min, max];
    } else if (range?.includes("-")) {
      const [a, b] = range.split("-");
      [from, to] = [value(a ?? ""), value(b ?? "")];
      if (from > to) throw new Error(`${name} field "${text}": range ${range} runs backwards`);
    } else {
      from = value(range ?? "");
      to = stepText === undefined ? from : max;
    }
    for (let v = from; v <= to; v += step) values.add(v);
  }
  return values;
}

export function parseSchedule(expression: string): Schedule {
  const parts = expression.trim().split(/\s+/);
  if (parts.length !== 6) {
    throw new Error(
      `"${expression}" has ${parts.length} fields; Azure Functions timers need six: {second} {minute} {hour} {day} {month} {day-of-week}, e.g. "0 0 */6 * * *"`,
    );
  }
  const [sec, min, hour, day, month, dow] = parts.map(parseField);
  const matches = (d: Date) =>
    sec!.has(d.getUTCSeconds()) &&
    min!.has(d.getUTCMinutes()) &&
    hour!.has(d.getUTCHours()) &&
    day!.has(d.getUTCDate()) &&
    month!.has(d.getUTCMonth() + 1) &&
    dow!.has(d.getUTCDay());
  return {
    expression,
    next(after: Date): Date {
      // Walk forward skipping whole days, hours and minutes that cannot match: at most a few
      // thousand steps even for yearly schedules.
      const t = new Date(Math.floor(after.getTime() / 1000) * 1000 + 1000);
      for (let guard = 0; guard < 2_000_000; guard++) {
        if (!month!.has(t.getUTCMonth() + 1) || !day!.has(t.getUTCDate()) || !dow!.has(t.getUTCDay())) {
          t.setUTCHours(24, 0, 0, 0);
        } else if (!hour!.has(t.getUTCHours())) {
          t.setUTCHours(t.getUTCHours() + 1, 0, 0, 0);
        } else if (!min!.has(t.getUTCMinutes())) {
          t.setUTCMinutes(t.getUTCMinutes() + 1, 0, 0);
        } else if (!matches(t)) {
          t.setUTCSeconds(t.getUTCSeconds() + 1, 0);
        } else {
          return t;
        }
      }
      throw new Error(`schedule "${expression}" never fires`);
    },
  };
}
