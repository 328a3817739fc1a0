/**
 * Reads the lab's reset workflow (`auto-reset-parent-or-child-lab-machine.yml`), whose
 * `strategy.matrix.vec` lists every host as `{ parent-or-child, vm-name }`, and turns it into the
 * pairs of a lab config. The file lists each pair's two hosts next to each other, one `parent=`
 * and one `child=` in either order; the pair is named `vm-<lower host number>-<higher>`, as the
 * lab names its VM runners.
 */
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node } from "yaml";
import { HostSchema, LabConfigSchema, jsonPath, type Host, type Pair } from "../lab/config.js";

/** One host of the matrix, where the file lists it. */
interface MatrixHost {
  index: number;
  line: number;
  host: Host;
  role: "parent" | "child";
  /** The digits at the end of the host name, as written (`05`). */
  number: string;
}

/** A matrix entry that is not a usable host: it is reported, and it cannot pair. */
interface BadEntry {
  index: number;
  line: number;
  problem: string;
}

export interface ImportSettings {
  github: { owner: string; repo: string };
  resetWorkflow: { workflow: string; ref: string };
  routingLabels: string[];
  /** The workflow job whose matrix to read; needed only when several jobs have one. */
  job?: string;
}

export interface ImportedConfig {
  github: { owner: string; repo: string; runnerScope: "repo" };
  resetWorkflow: { workflow: string; ref: string };
  routingLabels?: string[];
  pairs: Pair[];
}

export type ImportResult = { ok: true; config: ImportedConfig } | { ok: false; problems: string[] };

/** The lab config the workflow's matrix describes, or every problem, one line each, naming file and line. */
export function importResetMatrix(text: string, file: string, settings: ImportSettings): ImportResult {
  const read = readMatrix(text, file, settings.job);
  if ("problems" in read) return { ok: false, problems: read.problems };
  const paired = pairHosts(read.entries);
  const problems = paired.problems.map((p) => `${file}:${p.line}: vec[${p.index}] ${p.problem}`);
  if (problems.length > 0) return { ok: false, problems };

  const config: ImportedConfig = {
    github: { ...settings.github, runnerScope: "repo" },
    resetWorkflow: settings.resetWorkflow,
    ...(settings.routingLabels.length > 0 ? { routingLabels: settings.routingLabels } : {}),
    pairs: paired.pairs.map(([first, second]) => pairOf(first, second)),
  };
  // The same schema as start-up: what is printed is a config the app and check-config accept.
  const checked = LabConfigSchema.safeParse(config);
  if (!checked.success) {
    return {
      ok: false,
      problems: checked.error.issues.map((issue) => {
        const where = sourceOf(issue.path, paired.pairs);
        const at = where ? `${file}:${where.line}: vec[${where.index}] ` : `${file}: the config made from it is invalid: `;
        return `${at}${jsonPath(issue.path)}: ${issue.message}`;
      }),
    };
  }
  return { ok: true, config };
}

function pairOf(first: MatrixHost, second: MatrixHost): Pair {
  const [low, high] = Number(first.number) <= Number(second.number) ? [first, second] : [second, first];
  const id = `vm-${low.number}-${high.number}`;
  return { id, vmRunnerLabel: id, hosts: [first.host, second.host] };
}

/** The matrix entry a schema issue is about (`$.pairs[i].hosts[h]…`, or the pair's first host). */
function sourceOf(path: readonly PropertyKey[], pairs: [MatrixHost, MatrixHost][]): MatrixHost | undefined {
  if (path[0] !== "pairs" || typeof path[1] !== "number") return undefined;
  const pair = pairs[path[1]];
  return path[2] === "hosts" && path[3] === 1 ? pair?.[1] : pair?.[0];
}

/** Consecutive entries pair up; an entry that cannot pair with the next one is reported and the next starts afresh. */
function pairHosts(entries: (MatrixHost | BadEntry)[]) {
  const pairs: [MatrixHost, MatrixHost][] = [];
  const problems: BadEntry[] = [];
  let waiting: MatrixHost | undefined;
  const unpaired = (host: MatrixHost, why: string) =>
    problems.push({ index: host.index, line: host.line, problem: `${host.host.runnerLabel} has no ${host.role === "parent" ? "child" : "parent"}: ${why}` });
  for (const entry of entries) {
    if (!("host" in entry)) {
      if (waiting) unpaired(waiting, `the next entry (vec[${entry.index}], line ${entry.line}) is not a usable host`);
      problems.push(entry);
      waiting = undefined;
    } else if (!waiting) {
      waiting = entry;
    } else if (waiting.role === entry.role) {
      unpaired(waiting, `the next entry (vec[${entry.index}], line ${entry.line}) is also a ${entry.role}; list each pair's parent and child next to each other`);
      waiting = entry;
    } else {
      pairs.push([waiting, entry]);
      waiting = undefined;
    }
  }
  if (waiting) unpaired(waiting, "it is the last entry; add its partner next to it, or remove it");
  return { pairs, problems };
}

/** The hosts of the one job's `strategy.matrix.vec`, in file order. */
function readMatrix(text: string, file: string, jobName: string | undefined): { entries: (MatrixHost | BadEntry)[] } | { problems: string[] } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  const lineOf = (node: Node | null | undefined) => (node?.range ? lines.linePos(node.range[0]).line : 1);
  if (doc.errors.length > 0) {
    // Without prettyErrors an error has no linePos (with it, its message spans lines): the line counter places it.
    // The first error is the one to fix: the parser's later ones mostly follow from it (one missing "]" makes dozens).
    const [first, ...later] = doc.errors;
    const { line, col } = lines.linePos(first!.pos[0]);
    const more = later.length > 0 ? ` (${later.length} later YAML ${later.length === 1 ? "error" : "errors"} may follow from it)` : "";
    return { problems: [`${file}:${line}:${col}: not valid YAML: ${first!.message.split("\n")[0]}; fix the file${more}`] };
  }
  const jobs = doc.get("jobs");
  const withMatrix = isMap(jobs)
    ? jobs.items.flatMap((item) => {
        const vec = isMap(item.value) ? item.value.getIn(["strategy", "matrix", "vec"], true) : undefined;
        return vec === undefined ? [] : [{ name: isScalar(item.key) ? String(item.key.value) : "?", vec: vec as Node }];
      })
    : [];
  const chosen = jobName === undefined ? withMatrix : withMatrix.filter((job) => job.name === jobName);
  if (chosen.length === 0) {
    const which = jobName === undefined ? "no job" : `no job "${jobName}"`;
    return { problems: [`${file}: ${which} has strategy.matrix.vec; is this the lab's reset workflow (auto-reset-parent-or-child-lab-machine.yml)?`] };
  }
  if (chosen.length > 1) {
    return { problems: [`${file}: jobs ${chosen.map((job) => job.name).join(", ")} all have strategy.matrix.vec; pick one with --job`] };
  }
  const { name, vec } = chosen[0]!;
  if (!isSeq(vec) || vec.items.length === 0) {
    return { problems: [`${file}:${lineOf(vec)}: jobs.${name}.strategy.matrix.vec is not a list of { parent-or-child, vm-name } entries`] };
  }
  return { entries: vec.items.map((item, index) => matrixHost(item as Node, index, lineOf(item as Node))) };
}

function matrixHost(item: Node, index: number, line: number): MatrixHost | BadEntry {
  if (!isMap(item)) return { index, line, problem: "is not a { parent-or-child, vm-name } entry" };
  const label = item.get("parent-or-child");
  const vmName = item.get("vm-name");
  if (typeof label !== "string") return { index, line, problem: "has no parent-or-child label; give the host runner's label, e.g. parent=rr1-netperf-26\\localadminuser" };
  if (typeof vmName !== "string") return { index, line, problem: `${label} has no vm-name; give the Hyper-V VM's name on that host` };
  const host = HostSchema.safeParse({ runnerLabel: label, vmName });
  if (!host.success) {
    const field = (path: readonly PropertyKey[]) => (path[0] === "vmName" ? `vm-name "${vmName}"` : `parent-or-child "${label}"`);
    return { index, line, problem: host.error.issues.map((issue) => `${field(issue.path)} ${issue.message}`).join("; ") };
  }
  const [role, rest] = label.split("=", 2) as ["parent" | "child", string];
  const hostName = rest.split("\\")[0]!;
  const number = /(\d+)$/.exec(hostName)?.[1];
  if (number === undefined) {
    return { index, line, problem: `${label}: host name "${hostName}" does not end in its number; the pair id vm-XX-YY is made of the two host numbers` };
  }
  return { index, line, host: host.data, role, number };
}

/** The config as the shipped lab.config.json is laid out: one host per line, so a diff shows which host changed. */
export function formatLabConfig(config: ImportedConfig): string {
  const inline = (value: object) => `{ ${Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}: ${JSON.stringify(v)}`).join(", ")} }`;
  const pairs = config.pairs.map((pair, p) => {
    const hosts = pair.hosts.map((host) => `        ${inline(host)}`).join(",\n");
    const comma = p < config.pairs.length - 1 ? "," : "";
    return `    { "id": ${JSON.stringify(pair.id)}, "vmRunnerLabel": ${JSON.stringify(pair.vmRunnerLabel)},\n      "hosts": [\n${hosts} ] }${comma}`;
  });
  const top = [
    `  "github": ${inline(config.github)}`,
    `  "resetWorkflow": ${inline(config.resetWorkflow)}`,
    ...(config.routingLabels ? [`  "routingLabels": ${JSON.stringify(config.routingLabels)}`] : []),
    `  "pairs": [\n${pairs.join("\n")}\n  ]`,
  ];
  return `{\n${top.join(",\n")}\n}\n`;
}
