/**
 * Octokit's throttling and retry plugins queue every request through Bottleneck, which yields
 * with `setTimeout(…, 0)` several times per request: Node clamps each to 1 ms, ~15 ms a request.
 * Against a loopback stand-in that is most of a simulated lab's wall time, so the tests that
 * drive Octokit against the stand-in at speed (the simulator's HTTP path, the property tests'
 * HTTP suite) turn zero-delay timeouts into `setImmediate` while they run. The benchmark reaches
 * GitHub in process (no Octokit); the deployed app and `npm start` keep Node's timers.
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
