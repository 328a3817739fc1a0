import { defineConfig } from "vitest/config";
import SlowFirst from "./test/support/slow-first.js";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/support/global-setup.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Three files at a time on the lab's two-core machines (vitest's default there is one): most
    // files spend much of their time waiting on Azurite, the GitHub stand-in or a child process,
    // and three kept both cores busier than two (about a tenth less wall time, measured).
    maxWorkers: 3,
    // A worker keeps the modules it loaded (Octokit, the Azure SDKs: over a second of CPU per
    // file otherwise). No test mocks a module; each opens its own stores and stand-in.
    isolate: false,
    sequence: { sequencer: SlowFirst },
  },
});
