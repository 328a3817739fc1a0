/**
 * The two lab profiles the benchmark runs, and their perf workloads: the same seeded list of
 * perf runs is replayed against every policy.
 */
import { parseLabConfig, type LabConfig, type Pair } from "../lab/config.js";
import { Random } from "./random.js";
import type { PerfJobSpec } from "./lab.js";

export interface PerfRunArrival {
  atMinutes: number;
  jobs: PerfJobSpec[];
}

export interface Profile {
  name: string;
  description: string;
  config: LabConfig;
  osLabel: (pair: Pair) => string;
  /** Each VM runner's labels, read-only and custom (SimLabOptions.vmLabels); default: lab, its OS label, its runner label. */
  vmLabels?: (pair: Pair) => string[];
  workload: (seed: number, days: number) => PerfRunArrival[];
}

const WINDOWS = ["self-hosted", "lab", "os-windows-2022"];
const LINUX = ["self-hosted", "lab", "os-linux"];

/** A perf job's length: a short setup plus a long tail, as perf suites have. */
const minutes = (rng: Random, base: number, mean: number, cap: number) => Math.min(cap, Math.round(base + rng.exponential(mean)));

export function seedProfile(config: LabConfig): Profile {
  const linuxPairs = new Set(["vm-11-12"]);
  return {
    name: "seed-4-pairs",
    description: "the seed lab's 4 pairs (3 Windows, 1 Linux); a perf run every ~80 min on average with 1-3 jobs",
    config,
    osLabel: (pair) => (linuxPairs.has(pair.id) ? "os-linux" : "os-windows-2022"),
    workload: (seed, days) => {
      const rng = new Random(seed);
      const runs: PerfRunArrival[] = [];
      for (let t = rng.exponential(80); t < days * 1440; t += rng.exponential(80)) {
        const jobs = Array.from({ length: rng.int(1, 3) }, (): PerfJobSpec => {
          const roll = rng.next();
          // A job for one pair still routes on `lab`: a VM taken out of routing gets none.
          const labels = roll < 0.6 ? WINDOWS : roll < 0.85 ? LINUX : ["self-hosted", "lab", rng.pick(config.pairs).vmRunnerLabel];
          return { labels, minutes: minutes(rng, 10, 20, 90) };
        });
        runs.push({ atMinutes: t, jobs });
      }
      return runs;
    },
  };
}

/** A lab of `count` pairs named like the real one (vm-NN-MM on hosts rr1-netperf-NN and -MM). */
export function generatedLab(count: number, base: LabConfig): LabConfig {
  const pairs = Array.from({ length: count }, (_, i) => {
    const [a, b] = [String(2 * i + 101).padStart(2, "0"), String(2 * i + 102).padStart(2, "0")];
    return {
      id: `vm-${a}-${b}`,
      vmRunnerLabel: `vm-${a}-${b}`,
      hosts: [
        { runnerLabel: `parent=rr1-netperf-${a}\\localadminuser`, vmName: "netperf-client" },
        { runnerLabel: `child=rr1-netperf-${b}\\localadminuser`, vmName: "netperf-server" },
      ],
    };
  });
  return parseLabConfig({ ...base, pairs });
}

export function burstyProfile(base: LabConfig): Profile {
  const config = generatedLab(16, base);
  return {
    name: "bursty-16-pairs",
    description: "16 pairs (12 Windows, 4 Linux); matrix runs of 20-32 jobs every ~3 h on average, more jobs than VMs, plus single runs every ~45 min",
    config,
    osLabel: (pair) => (config.pairs.indexOf(pair) % 4 === 3 ? "os-linux" : "os-windows-2022"),
    workload: (seed, days) => {
      const rng = new Random(seed);
      const runs: PerfRunArrival[] = [];
      for (let t = rng.exponential(180); t < days * 1440; t += rng.exponential(180)) {
        runs.push({ atMinutes: t, jobs: Array.from({ length: rng.int(20, 32) }, () => ({ labels: rng.chance(0.75) ? WINDOWS : LINUX, minutes: minutes(rng, 10, 25, 120) })) });
      }
      for (let t = rng.exponential(45); t < days * 1440; t += rng.exponential(45)) {
        runs.push({ atMinutes: t, jobs: Array.from({ length: rng.int(1, 2) }, () => ({ labels: rng.chance(0.75) ? WINDOWS : LINUX, minutes: minutes(rng, 10, 25, 120) })) });
      }
      return runs.sort((a, b) => a.atMinutes - b.atMinutes);
    },
  };
}
