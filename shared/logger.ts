/** The logging surface the core needs; Azure's InvocationContext and the console both fit it. */
export interface Logger {
  info(message: string, ...rest: unknown[]): void;
  warn(message: string, ...rest: unknown[]): void;
  error(message: string, ...rest: unknown[]): void;
}

export const consoleLogger: Logger = {
  info: (m, ...r) => console.log(m, ...r),
  warn: (m, ...r) => console.warn(m, ...r),
  error: (m, ...r) => console.error(m, ...r),
};

export const silentLogger: Logger = { info: () => {}, warn: () => {}, error: () => {} };

/**
 * Events an admin is alerted on (infra/modules/alerts.bicep queries these names). Logged as
 * error traces that start with `lab-reset alert <name>:`; host.json keeps traces out of sampling,
 * so a burst cannot drop one.
 */
export const ALERTS = ["pair-gave-up", "reset-failed-twice", "reconcile-failed", "poison-message", "pair-out-of-routing"] as const;
export type AlertName = (typeof ALERTS)[number];
/** Alerted on when a trace stops: no `reconcile {…"ok":true…}` line for 7 hours (alerts.bicep). */
export const SILENCE_ALERTS = ["no-reconcile"] as const;

export function alert(logger: Logger, name: AlertName, message: string): void {
  logger.error(`lab-reset alert ${name}: ${message}`);
}
