/**
 * `routing status` and `routing restore`: the configured pairs' VM runners and the routing labels
 * (e.g. `lab`) that let perf jobs reach them. They talk to GitHub, not to the app, so they work
 * while lab-reset is stopped, which is when VM runners it took out of routing stay out.
 */
import { GitHubError, type OctokitLabGitHub, type Runner } from "../../github/client.js";
import { ConfigurationError, loadLabConfigFile, type LabConfig, type Pair } from "../../lab/config.js";
import { routingLabelsOn, routingRunners, type RoutingRunner } from "../../lab/routing.js";
import { defaultConfigPath, type CliContext } from "../context.js";
import { CliError, EXIT_FAILED, EXIT_OK } from "../errors.js";
import { cliGitHub, githubAccess, type GitHubAccess } from "../github.js";
import { renderTable } from "../table.js";

export interface RoutingOptions {
  config?: string;
  json?: boolean;
  dryRun?: boolean;
}

/** A configured pair's VM runner (null: no runner carries its vmRunnerLabel) and the routing labels it lacks. */
interface PairRunner {
  pair: Pair;
  runner: RoutingRunner | null;
  lacks: string[];
}

/** `routing status`: one line per pair; exit 0 only when every VM runner carries the routing labels. */
export async function routingStatus(context: CliContext, options: RoutingOptions): Promise<number> {
  const lab = await readLab(context, options, "check");
  if (lab === null) return EXIT_OK;
  const { config, access, github } = lab;
  const runners = await vmRunners(config, access, github);
  if (options.json) {
    context.stdout(
      `${JSON.stringify(
        {
          ok: runners.every(inRouting),
          routingLabels: config.routingLabels,
          pairs: runners.map(({ pair, runner, lacks }) => ({ pair: pair.id, runner: runner?.name ?? null, runnerId: runner?.id ?? null, online: runner?.online ?? null, busy: runner?.busy ?? null, lacks })),
        },
        null,
        2,
      )}\n`,
    );
  } else {
    context.stdout(
      renderTable(
        ["pair", "VM runner", "routing", "runner"],
        runners.map(({ pair, runner, lacks }) =>
          runner === null ? [pair.id, "-", `no runner carries ${pair.vmRunnerLabel}`, "-"] : [pair.id, runner.name, lacks.length === 0 ? "in routing" : `lacks ${lacks.join(", ")}`, condition(runner)],
        ),
      ),
    );
  }
  const out = runners.filter((r) => !inRouting(r));
  if (out.length > 0) {
    const pairs = new Set(out.map((r) => r.pair.id)).size;
    context.stderr(
      `lab-reset: ${pairs} of ${config.pairs.length} pairs out of routing (${config.routingLabels.join(", ")}); lab-reset keeps a used VM out until its reset succeeds, and with lab-reset stopped, lab-reset routing restore puts them back\n`,
    );
  }
  return out.length === 0 ? EXIT_OK : EXIT_FAILED;
}

/** `routing restore [--dry-run]`: adds the missing routing labels to every configured pair's VM runner. */
export async function routingRestore(context: CliContext, options: RoutingOptions): Promise<number> {
  const lab = await readLab(context, options, "restore");
  if (lab === null) return EXIT_OK;
  const { config, access, github } = lab;
  // The app decides routing on every reconcile: a label put back on a pair it holds dirty is taken off again.
  context.stderr(
    "lab-reset: routing restore edits GitHub directly: if lab-reset is running, its next reconcile takes the labels off again from every pair that is not clean; restore is for when lab-reset is stopped (az functionapp stop)\n",
  );
  let ok = true;
  for (const { pair, runner, lacks } of await vmRunners(config, access, github)) {
    if (runner === null) {
      ok = false;
      context.stdout(`${pair.id}: no VM runner: no runner of ${scopeName(config)} carries the label ${pair.vmRunnerLabel}; check the VM's runner is registered and $.pairs[…].vmRunnerLabel\n`);
      continue;
    }
    const who = `${pair.id} ${runner.name}`;
    const note = runner.online ? (runner.busy ? " (busy: its next perf job may start on the VM before any reset)" : "") : " (offline)";
    if (lacks.length === 0) {
      context.stdout(`${who}: already in routing\n`);
      continue;
    }
    if (options.dryRun) {
      ok = false;
      context.stdout(`${who}: would add ${lacks.join(", ")}${note}\n`);
      continue;
    }
    const failure = await addLabels(github, runner, lacks, config, access);
    if (failure !== null) {
      ok = false;
      context.stdout(`${who}: failed: ${failure}\n`);
    } else {
      context.stdout(`${who}: added ${lacks.join(", ")}${note}\n`);
    }
  }
  return ok ? EXIT_OK : EXIT_FAILED;
}

/** Adds the labels one by one (the app's client sends each label write once); null when all were added, else why not. */
async function addLabels(github: OctokitLabGitHub, runner: RoutingRunner, labels: string[], config: LabConfig, access: GitHubAccess): Promise<string | null> {
  const added: string[] = [];
  for (const label of labels) {
    try {
      const result = await github.addRunnerLabel(runner.id, label);
      if (result === "not-found") return `${done(added)}runner ${runner.id} no longer exists (404); run lab-reset routing status again`;
      added.push(label);
    } catch (error) {
      if (!(error instanceof GitHubError)) throw error;
      return `${done(added)}${error.message}; ${refusedTodo(error, config, access, "write")}`;
    }
  }
  return null;
}

const done = (added: string[]) => (added.length > 0 ? `added ${added.join(", ")}, then ` : "");

const inRouting = (r: PairRunner) => r.runner !== null && r.lacks.length === 0;
const condition = (runner: RoutingRunner) => (runner.online ? (runner.busy ? "online, busy" : "online, idle") : "offline");
const scopeName = (config: LabConfig) => (config.github.runnerScope === "org" ? `the organization ${config.github.owner}` : `${config.github.owner}/${config.github.repo}`);

/**
 * The lab config (as check-config finds it), and GitHub; null when there are no routing labels,
 * after saying so: nothing to check or restore.
 */
async function readLab(context: CliContext, options: RoutingOptions, verb: "check" | "restore"): Promise<{ config: LabConfig; access: GitHubAccess; github: OctokitLabGitHub } | null> {
  const path = options.config ?? defaultConfigPath(context);
  let config: LabConfig;
  try {
    config = loadLabConfigFile(path, process.cwd(), "fix these in the file");
  } catch (error) {
    if (!(error instanceof ConfigurationError)) throw error;
    // The heading and every problem on its own line, as check-config and start-up print them.
    throw new CliError(error.message);
  }
  if (config.routingLabels.length === 0) {
    context.stdout(`routing labels are not configured in ${path} (routingLabels is empty): lab-reset never takes a VM runner out of routing, so there is nothing to ${verb}\n`);
    return null;
  }
  const access = await githubAccess(context);
  return { config, access, github: cliGitHub(context, access, config) };
}

/** Each configured pair's VM runners (one line each; normally one per pair) and the routing labels each lacks. */
async function vmRunners(config: LabConfig, access: GitHubAccess, github: OctokitLabGitHub): Promise<PairRunner[]> {
  let runners: Runner[];
  try {
    runners = await github.listRunners();
  } catch (error) {
    if (!(error instanceof GitHubError)) throw error;
    throw new CliError(`cannot list the runners of ${scopeName(config)}: ${error.message}; ${refusedTodo(error, config, access, "read")}`);
  }
  return config.pairs.flatMap((pair): PairRunner[] => {
    const found = routingRunners(pair, runners, () => false);
    if (found.length === 0) return [{ pair, runner: null, lacks: [] }];
    return found.map((runner) => {
      const carried = new Set(routingLabelsOn(runner, config.routingLabels).map((l) => l.toLowerCase()));
      return { pair, runner, lacks: config.routingLabels.filter((l) => !carried.has(l.toLowerCase())) };
    });
  });
}

/** What to do when GitHub refused the person's token, in the words of GitHub's token settings. */
function refusedTodo(error: GitHubError, config: LabConfig, access: GitHubAccess, need: "read" | "write"): string {
  const token = access.tokenFrom === "GITHUB_TOKEN" ? "GITHUB_TOKEN" : "the token of gh auth token";
  if (error.status === 401) return `${token} was refused: set GITHUB_TOKEN to a valid token, or run gh auth login`;
  if (error.status === 403 || error.status === 404) {
    const permission =
      config.github.runnerScope === "org"
        ? `the organization permission "Self-hosted runners: ${need}" on ${config.github.owner} (a classic token: admin:org)`
        : `the repository permission "Administration: ${need}" on ${config.github.owner}/${config.github.repo} (a classic token: repo, as a repository admin)`;
    return `${token} needs ${permission}`;
  }
  if (error.status === null) return "check GITHUB_API_URL and the network, then try again";
  return "try again later";
}
