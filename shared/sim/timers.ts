/**
 * Octokit's throttling and retry plugins queue every request through Bottleneck, which yields
 * with `setTimeout(…, 0)` several times per request: Node clamps each to 1 ms, ~15 ms a request.
 * Against a loopback stand-in that is most of a simulated week's wall time, so whatever drives
 * Octokit against the stand-in at speed (the benchmark, the simulator's HTTP path in tests, the
 * property tests' HTTP suite) turns zero-delay timeouts into `setImmediate` while it runs. The
 * deployed app and `npm start` keep Node's timers.
 */
export function useImmediateZeroTimeouts(): () => void {
  const original = globalThis.setTimeout;
  const patched = ((handler: (...args: unknown[]) => void, delay?: number, ...args: unknown[]) =>
    delay === undefined || delay <= 0 ? setImmediate(handler, ...args) : original(handler, delay, ...args)) as unknown as typeof setTimeout;
  globalThis.setTimeout = patched;
  return () => {
    globalThis.setTimeout = original;
  };
}
