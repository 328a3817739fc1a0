import { existsSync, readFileSync } from "node:fs";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";

/** A host runner: the physical machine whose runner restores its VM's checkpoint. */
export const HostSchema = z.strictObject({
  runnerLabel: z
    .string()
    .regex(/^(parent|child)=\S+$/, 'must look like "parent=<host>\\\\localadminuser" or "child=<host>\\\\localadminuser"'),
  // Get-VM -Name takes wildcards: a name with * ? [ ] could reach (and restore) other VMs.
  vmName: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9 ._()-]{0,99}$/, "must name one Hyper-V VM on this host: letters, digits, space, '.', '_', '-', '(', ')'; no wildcards"),
});
export type Host = z.infer<typeof HostSchema>;

/** A pair: two hosts, their two VMs and the one VM runner on which perf jobs run. */
export const PairSchema = z.strictObject({
  id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, "must be 1-63 letters, digits, '.', '_' or '-'"),
  vmRunnerLabel: z.string().min(1),
  hosts: z.array(HostSchema).length(2, "a pair has exactly two hosts"),
});
export type Pair = z.infer<typeof PairSchema>;

/** Labels GitHub sets on every self-hosted runner and nobody can add or remove: `self-hosted`, the OS, the architecture. */
export const READ_ONLY_LABELS: readonly string[] = ["self-hosted", "windows", "linux", "macos", "x64", "arm64", "arm"];
export const isReadOnlyLabel = (name: string) => READ_ONLY_LABELS.includes(name.toLowerCase());

export const LabConfigSchema = z
  .strictObject({
    github: z.strictObject({
      owner: z.string().min(1),
      repo: z.string().min(1),
      runnerScope: z.enum(["repo", "org"]).default("repo"),
    }),
    resetWorkflow: z.strictObject({
      workflow: z.string().min(1, "the reset workflow's file name (e.g. lab-reset.yml) or id"),
      ref: z.string().min(1),
    }),
    freshForMinutes: z.number().int().min(0).default(60),
    resetTimeoutMinutes: z.number().int().min(1).default(30),
    /** Failed resets in a row before the pair is left `failed` for an admin to look at. */
    maxResetAttempts: z.number().int().min(1).default(5),
    /** Wait after the first failed reset; doubled after each further failure, at most a day. */
    retryBackoffMinutes: z.number().int().min(0).default(15),
    /**
     * The custom labels by which perf jobs reach the lab's VM runners (e.g. ["lab"]). A VM runner
     * carries them only while its pair is clean, idle and not held, so no job starts on a dirty
     * VM. Empty (the default): labels are never touched.
     */
    routingLabels: z.array(z.string().min(1, "a routing label cannot be empty")).default([]),
    /**
     * Minutes a pair may stay out of routing while not busy before the `pair-out-of-routing`
     * alert: longer than a reset normally takes, so only a stalled pair alerts.
     */
    routingAlertMinutes: z.number().int().min(1).default(90),
    /** Days the job and reset history is kept, for the capacity report and the advice. */
    historyDays: z.number().int().min(1).max(365).default(30),
    pairs: z.array(PairSchema).min(1, "list at least one pair"),
  })
  .superRefine((config, ctx) => {
    // Labels decide which runner a pair owns, so a duplicate would let one pair's job hide another's.
    const seen = new Map<string, string>();
    const unique = (value: string, what: string, path: (string | number)[]) => {
      const key = `${what}:${value.toLowerCase()}`;
      const first = seen.get(key);
      if (first !== undefined) {
        ctx.addIssue({ code: "custom", path, message: `duplicate ${what} "${value}" (first used at ${first})` });
      } else {
        seen.set(key, jsonPath(path));
      }
    };
    config.pairs.forEach((pair, p) => {
      unique(pair.id, "pair id", ["pairs", p, "id"]);
      unique(pair.vmRunnerLabel, "runner label", ["pairs", p, "vmRunnerLabel"]);
      pair.hosts.forEach((host, h) => unique(host.runnerLabel, "runner label", ["pairs", p, "hosts", h, "runnerLabel"]));
    });
    routingLabelProblems(config).forEach((issue) => ctx.addIssue({ code: "custom", ...issue }));
  });
export type LabConfig = z.infer<typeof LabConfigSchema>;

/**
 * Routing labels are removed from VM runners: one that is also how the app finds a pair's runner
 * (or a host's) would lose the runner, and a read-only label cannot be removed at all.
 */
function routingLabelProblems(config: Pick<LabConfig, "routingLabels" | "pairs">): { path: (string | number)[]; message: string }[] {
  const problems: { path: (string | number)[]; message: string }[] = [];
  const first = new Map<string, number>();
  config.routingLabels.forEach((label, i) => {
    const path = ["routingLabels", i];
    const key = label.toLowerCase();
    if (first.has(key)) problems.push({ path, message: `duplicate routing label "${label}" (first at $.routingLabels[${first.get(key)}])` });
    else first.set(key, i);
    if (isReadOnlyLabel(label)) {
      problems.push({ path, message: `"${label}" is a read-only label (GitHub sets self-hosted, the OS and the architecture itself): it cannot be removed, so it cannot take a VM out of routing; use the custom label your perf workflows route on, e.g. "lab"` });
    }
    config.pairs.forEach((pair, p) => {
      if (pair.vmRunnerLabel.toLowerCase() === key) {
        problems.push({ path, message: `"${label}" is the vmRunnerLabel of pair ${pair.id} ($.pairs[${p}].vmRunnerLabel): lab-reset finds the pair's VM runner by it, so it must never be removed` });
      }
      pair.hosts.forEach((host, h) => {
        if (host.runnerLabel.toLowerCase() === key) problems.push({ path, message: `"${label}" is a host runner label ($.pairs[${p}].hosts[${h}].runnerLabel): reset jobs route on it` });
      });
    });
  });
  return problems;
}

/** Thrown when something an admin wrote (config or settings) is wrong; the message lists every problem. */
export class ConfigurationError extends Error {
  constructor(
    message: string,
    readonly problems: string[],
  ) {
    super(`${message}\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigurationError";
  }
}

/** JSON path of a zod issue, e.g. `$.pairs[1].hosts[0].runnerLabel`. */
export function jsonPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((acc, key) => (typeof key === "number" ? `${acc}[${key}]` : `${acc}.${String(key)}`), "$");
}

export function zodProblems(error: z.ZodError): string[] {
  return error.issues.map((issue) => `${jsonPath(issue.path)}: ${issue.message}`);
}

/** What a config error asks of the admin at start-up; a check of a file asks for the file to be fixed. */
export const FIX_AND_RESTART = "fix these and restart the app";

/** Validates a parsed lab config, collecting every error before throwing once. */
export function parseLabConfig(value: unknown, source = "lab config", fix = FIX_AND_RESTART): LabConfig {
  const result = LabConfigSchema.safeParse(value);
  if (!result.success) {
    throw new ConfigurationError(`${source} is invalid; ${fix}:`, zodProblems(result.error));
  }
  return result.data;
}

/**
 * The app's folder, whatever the working directory: the nearest folder above this module with
 * host.json or package.json (the checkout, or the deployed package's root, /home/site/wwwroot).
 */
export function appFolder(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    if (existsSync(join(dir, "host.json")) || existsSync(join(dir, "package.json"))) return dir;
    if (dirname(dir) === dir) return process.cwd();
  }
}

/**
 * Reads and validates the lab config file; throws a ConfigurationError listing every problem.
 * A relative path (LAB_CONFIG_PATH, or its default lab.config.json) is the app folder's, as in Azure.
 */
export function loadLabConfigFile(given: string, relativeTo: string = appFolder(), fix = FIX_AND_RESTART): LabConfig {
  const path = isAbsolute(given) ? given : resolve(relativeTo, given);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === "ENOENT" ? "ENOENT: no such file" : (error as Error).message;
    throw new ConfigurationError("Cannot read the lab config:", [`${path}: ${reason}. Set LAB_CONFIG_PATH to the lab config file (absolute, or relative to ${relativeTo}).`]);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ConfigurationError("The lab config is not valid JSON:", [`${path}:${jsonErrorAt(text, error as Error)}`]);
  }
  return parseLabConfig(value, path, fix);
}

/**
 * `line:column: what`, one line, for a JSON.parse error: V8 says "at position N" for some errors,
 * and for others quotes the text around the error (over several lines) without a position.
 */
function jsonErrorAt(text: string, error: Error): string {
  const given = /at position (\d+)/.exec(error.message)?.[1];
  const offset = given !== undefined ? Number(given) : jsonSyntaxErrorOffset(text);
  const before = text.slice(0, offset).split("\n");
  const token = /^Unexpected token '([\s\S]*?)', /.exec(error.message)?.[1];
  const what = token !== undefined ? `Unexpected ${shownCharacter(token)}` : error.message.replace(/( in JSON)? at position \d+[\s\S]*$/, "");
  return `${before.length}:${before.at(-1)!.length + 1}: ${what}`;
}

/** A character as one line shows it: printable as itself, others by code point (a BOM by name). */
function shownCharacter(c: string): string {
  if (/^[!-~]$/.test(c)) return `token '${c}'`;
  const code = `U+${(c.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, "0")}`;
  return c === "\ufeff" ? `${code} (a byte order mark: save the file as UTF-8 without one)` : `character ${code}`;
}

/** Where JSON text first breaks JSON's grammar (its length if it ends too soon). */
function jsonSyntaxErrorOffset(text: string): number {
  class Broken extends Error {}
  let i = 0;
  const fail = (): never => {
    throw new Broken();
  };
  const space = () => {
    while (" \t\n\r".includes(text[i] ?? "x")) i++;
  };
  const word = (w: string) => {
    for (const c of w) {
      if (text[i] !== c) fail();
      i++;
    }
  };
  const string = () => {
    for (i++; text[i] !== '"'; i++) {
      if (i >= text.length || text.charCodeAt(i) < 0x20) fail();
      if (text[i] === "\\") {
        i++;
        if (text[i] === "u" && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) i += 4;
        else if (!'"\\/bfnrt'.includes(text[i] ?? "x")) fail();
      }
    }
    i++;
  };
  const list = (close: string, item: () => void) => {
    i++;
    space();
    if (text[i] === close) return void i++;
    for (;;) {
      item();
      space();
      if (text[i] === close) return void i++;
      if (text[i] !== ",") fail();
      i++;
    }
  };
  const value = (): void => {
    space();
    const c = text[i];
    if (c === "{") {
      list("}", () => {
        space();
        if (text[i] !== '"') fail();
        string();
        space();
        if (text[i] !== ":") fail();
        i++;
        value();
      });
    } else if (c === "[") list("]", value);
    else if (c === '"') string();
    else if (c === "t") word("true");
    else if (c === "f") word("false");
    else if (c === "n") word("null");
    else {
      const number = /-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;
      number.lastIndex = i;
      if (!number.test(text)) fail();
      i = number.lastIndex;
    }
  };
  try {
    value();
    space();
    if (i < text.length) fail();
  } catch (error) {
    if (error instanceof Broken) return i;
    throw error;
  }
  return text.length;
}

/** Table Storage keys may not contain / \ # ? or control characters. */
export function labKey(config: LabConfig): string {
  // eslint-disable-next-line no-control-regex -- control characters are exactly what Table keys forbid
  return `${config.github.owner}.${config.github.repo}`.replace(/[/\\#?\u0000-\u001f\u007f-\u009f]/g, "_");
}
