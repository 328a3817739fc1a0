/**
 * I1–I5 (README "Invariants") over random interleavings of jobs starting and ending, GitHub's
 * lagging busy flag, timer ticks, concurrent job-completed calls, reset runs that succeed, fail or
 * hang, GitHub answering 5xx/429/403/timeouts/malformed bodies, Table Storage answering 412/503,
 * and processes dying between claim and dispatch. The scenario language, the driver and the
 * checks are in support/lab-properties.ts.
 *
 * PROPERTY_RUNS sets the interleavings of the in-memory suite (default 1,000; the HTTP suite runs a
 * tenth as many). A failure prints fast-check's seed and path: rerun with PROPERTY_SEED and
 * PROPERTY_PATH set to them to replay exactly that interleaving.
 */
import fc from "fast-check";
import { describe, it } from "vitest";
import { PropertyLab, scenarioArbitrary } from "./support/lab-properties.js";

const runs = Number(process.env.PROPERTY_RUNS ?? 1000);
const replay = {
  ...(process.env.PROPERTY_SEED ? { seed: Number(process.env.PROPERTY_SEED) } : {}),
  ...(process.env.PROPERTY_PATH ? { path: process.env.PROPERTY_PATH } : {}),
};

describe("reliability invariants I1–I5 under concurrency, faults and crashes", () => {
  it(`hold over ${runs} interleavings of the real handlers against an in-memory GitHub and store`, async () => {
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), scenarioArbitrary, (scheduler, scenario) => PropertyLab.run(scenario, { kind: "memory", scheduler })),
      { numRuns: runs, ...replay },
    );
  }, 300_000);

  it(`hold over ${Math.ceil(runs / 10)} scenarios through the Octokit client and the GitHub stand-in, faults sent as HTTP answers`, async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArbitrary, (scenario) => PropertyLab.run(scenario, { kind: "http" })),
      { numRuns: Math.ceil(runs / 10), ...replay },
    );
  }, 300_000);
});
