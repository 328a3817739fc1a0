/**
 * `lab-reset`, the lab admin's command line. Each command's code is imported only when that
 * command runs, so `check-config` and `import-matrix` never load the app's GitHub or Azure clients.
 */
import { Command, CommanderError, InvalidArgumentError } from "commander";
import type { RemoteOptions } from "./client.js";
import type { AdviseOptions } from "./commands/advise.js";
import type { ImportOptions } from "./commands/import-matrix.js";
import type { ReportOptions } from "./commands/report.js";
import type { RoutingOptions } from "./commands/routing.js";
import { processContext, type CliContext } from "./context.js";
import { CliError, EXIT_FAILED, EXIT_OK, EXIT_USAGE } from "./errors.js";

/** Runs one command line (without `node` and the script) and returns its exit code. */
export async function main(argv: string[], context: CliContext = processContext()): Promise<number> {
  let exitCode = EXIT_OK;
  const program = buildProgram(context, (code) => (exitCode = code));
  try {
    await program.parseAsync(argv, { from: "user" });
    return exitCode;
  } catch (error) {
    return reportFailure(error, program, argv, context);
  }
}

function buildProgram(context: CliContext, exitWith: ExitWith): Command {
  const program = new Command("lab-reset")
    .description("Check the lab config, import the lab's reset matrix, look at or act on a running lab-reset app, and check or restore the VM runners' routing labels on GitHub.")
    // Set before adding commands: commander copies these settings into each command.
    .exitOverride()
    .configureOutput({ writeOut: (text) => context.stdout(text), writeErr: (text) => context.stderr(text), outputError: () => {} })
    .showSuggestionAfterError(false)
    .addHelpText("after", "\nExit codes: 0 ok, 1 failed (the message says why), 2 usage error.\nEvery command has --help, e.g. lab-reset import-matrix --help.");
  addFileCommands(program, context, exitWith);
  addRemoteCommands(program, context, exitWith);
  addRoutingCommands(program, context, exitWith);
  return program;
}

type ExitWith = (code: number) => void;

/** Commands that read local files only. */
function addFileCommands(program: Command, context: CliContext, exitWith: ExitWith): void {
  program
    .command("check-config")
    .description("Validate a lab config with the same rules and messages as the app's start-up.")
    .argument("[file]", "the lab config (default: $LAB_CONFIG_PATH, else lab.config.json)")
    .option("--json", "print { ok, file, pairs | problems } as JSON")
    .action(async (file: string | undefined, options: { json?: boolean }) => {
      const { checkConfig } = await import("./commands/check-config.js");
      exitWith(checkConfig(context, file, options));
    });

  program
    .command("import-matrix")
    .description("Print a lab config made from the lab's reset workflow (strategy.matrix.vec of auto-reset-parent-or-child-lab-machine.yml).")
    .argument("<workflow>", "the reset workflow file (.yml)")
    .option("--repo <owner/name>", "the lab's repository (default: that of the lab config at $LAB_CONFIG_PATH or lab.config.json, if valid)", repository)
    .option("--routing-label <label>", "a label that routes perf jobs to VM runners, e.g. lab (repeatable)", collect)
    .option("--workflow <file>", "the reset workflow lab-reset dispatches", "lab-reset.yml")
    .option("--ref <ref>", "the ref it runs on", "main")
    .option("--job <id>", "the workflow job whose matrix to read, when several have strategy.matrix.vec")
    .option("-o, --out <file>", "write the config to this file, only if every entry was paired (default: stdout)")
    .action(async (workflow: string, options: ImportOptions) => {
      const { importMatrixCommand } = await import("./commands/import-matrix.js");
      exitWith(importMatrixCommand(context, workflow, options));
    });
}

/** Commands that call a running app (client.ts). */
function addRemoteCommands(program: Command, context: CliContext, exitWith: ExitWith): void {
  remote(program, "status", "Every pair's state, why, last job, last reset, routing, hold and last error (GET /api/pairs).").action(async (options: RemoteOptions) => {
    const { status } = await import("./commands/status.js");
    exitWith(await status(context, options));
  });

  remote(program, "history", "A pair's recorded state changes and dispatches, newest first (GET /api/pairs/{pair}/events).")
    .argument("<pair>", "the pair id, e.g. vm-42-43")
    .option("--limit <n>", `at most this many events, 1 to ${MAX_HISTORY_EVENTS} (default: the app's, 50)`, historyLimit)
    .action(async (pair: string, options: RemoteOptions & { limit?: number }) => {
      const { history } = await import("./commands/history.js");
      exitWith(await history(context, pair, options));
    });

  remote(program, "plan", "What the next timer reconcile would decide for each pair now, without acting (GET /api/plan); exits 1 when the app could not read everything.").action(async (options: RemoteOptions) => {
    const { plan } = await import("./commands/plan.js");
    exitWith(await plan(context, options));
  });

  remote(program, "report", "The capacity report: jobs, queue waits per label set, resets, and where each pair's time went, over the last days (GET /api/report).")
    .option("--days <n>", "the last n days, a whole number from 1 to the app's historyDays (default: the app's, 7)", reportDays)
    .action(async (options: ReportOptions) => {
      const { report } = await import("./commands/report.js");
      exitWith(await report(context, options));
    });

  remote(program, "reset", "Ask for a reset of one pair now (POST /api/pairs/{pair}/reset); refused while the pair is held or being reset.")
    .argument("<pair>", "the pair id")
    .action(async (pair: string, options: RemoteOptions) => {
      const { reset } = await import("./commands/pair-actions.js");
      exitWith(await reset(context, pair, options));
    });

  remote(program, "hold", "Hold a pair: no resets and routing closed until released (POST /api/pairs/{pair}/hold).")
    .argument("<pair>", "the pair id")
    .requiredOption("--reason <text>", "why, for the other admins (shown by status)", nonEmpty)
    .action(async (pair: string, options: RemoteOptions & { reason: string }) => {
      const { hold } = await import("./commands/pair-actions.js");
      exitWith(await hold(context, pair, options));
    });

  remote(program, "release", "Release a pair's hold (DELETE /api/pairs/{pair}/hold).")
    .argument("<pair>", "the pair id")
    .action(async (pair: string, options: RemoteOptions) => {
      const { release } = await import("./commands/pair-actions.js");
      exitWith(await release(context, pair, options));
    });

  const whole = (min: number, max: number) => (value: string) => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < min || n > max) throw new InvalidArgumentError(`Give a whole number from ${min} to ${max}`);
    return n;
  };
  const advise = remote(program, "advise", "Replay the lab's recorded perf jobs (GET /api/workload) in the simulator, here, with the lab as it is and with pairs added or removed: queue waits, utilization, resets per day.")
    .option("--add-pairs <n>", "add this many pairs, each like the first pair whose VM runs --os (default: 1 with --os, else 0: the lab as it is only)", whole(0, 100))
    .option("--os <label>", "the OS label of the added pairs' VM, e.g. os-windows-2022 (needed when the lab runs several)")
    .option("--remove <pair>", "take this pair out (repeatable)", collect)
    .option("--days <n>", "the recorded days to replay, up to the lab config's historyDays", whole(1, 365), 7)
    .option("--seed <n>", "the simulator's seed (runner choice, late webhooks): both labs use the same", whole(0, 2 ** 31), 1)
    .addHelpText("after", "\nThe simulations run on this machine: under a minute for a week of a 4-pair lab, a few minutes for a busy 16-pair one; progress goes to stderr.\nUtilization is the share of the VM runners' time spent running perf jobs. Exits 1, saying so, when the window holds too few perf jobs to tell anything.");
  advise.options.find((o) => o.long === "--json")!.description = "print { workload, recorded, current, proposed, notes } as JSON";
  advise.action(async (options: AdviseOptions) => {
    const { adviseCommand } = await import("./commands/advise.js");
    exitWith(await adviseCommand(context, options));
  });
}

/** Commands that talk to GitHub with the caller's token, not to the app: they work while it is stopped. */
function addRoutingCommands(program: Command, context: CliContext, exitWith: ExitWith): void {
  const routing = program
    .command("routing")
    .description("Check or restore the routing labels (lab config routingLabels, e.g. lab) on the configured pairs' VM runners, on GitHub directly: works while lab-reset is stopped.")
    .addHelpText("after", "\nGitHub: token from $GITHUB_TOKEN, else `gh auth token`; API from $GITHUB_API_URL (default https://api.github.com; GitHub Enterprise Server: https://HOST/api/v3).");
  const withConfig = (command: Command) => command.option("--config <file>", "the lab config (default: $LAB_CONFIG_PATH, else lab.config.json)");

  withConfig(routing.command("status"))
    .description("One line per pair: its VM runner, the routing labels it lacks (or in routing), online/offline, busy; exits 1 unless every VM runner carries them.")
    .option("--json", "print { ok, routingLabels, pairs: [{ pair, runner, runnerId, online, busy, lacks }] }")
    .action(async (options: RoutingOptions) => {
      const { routingStatus } = await import("./commands/routing.js");
      exitWith(await routingStatus(context, options));
    });

  withConfig(routing.command("restore"))
    .description("Add the missing routing labels to every configured pair's VM runner (POST …/runners/{id}/labels), for when lab-reset is stopped: a running lab-reset takes them off again from pairs that are not clean. Exits 0 once every VM runner carries them.")
    .option("--dry-run", "say what it would add, change nothing")
    .action(async (options: RoutingOptions) => {
      const { routingRestore } = await import("./commands/routing.js");
      exitWith(await routingRestore(context, options));
    });
}

/** A command that talks to a running app: the same --url, --key, --entra and --json everywhere. */
function remote(program: Command, name: string, description: string): Command {
  return program
    .command(name)
    .description(description)
    .option("--url <url>", "the lab-reset app (default: $LAB_RESET_URL, else http://127.0.0.1:7071)")
    .option("--key <key>", "its function key, sent as x-functions-key (default: $LAB_RESET_KEY)")
    .option("--entra <client-id>", "with Entra sign-in on the app: its app registration's client id; sends a bearer token for api://<client-id>/.default from your az login (default: $LAB_RESET_ENTRA_CLIENT_ID)")
    .option("--json", "print the app's answer as JSON");
}

function repository(value: string): { owner: string; repo: string } {
  const [owner, repo, ...rest] = value.split("/");
  if (!owner || !repo || rest.length > 0) throw new InvalidArgumentError("Give it as owner/name, e.g. microsoft/netperf");
  return { owner, repo };
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** The most events GET /api/pairs/{id}/events answers (MAX_EVENTS in shared/admin/routes.ts, not imported: it would load the app). */
export const MAX_HISTORY_EVENTS = 500;

function historyLimit(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > MAX_HISTORY_EVENTS) throw new InvalidArgumentError(`Give a whole number from 1 to ${MAX_HISTORY_EVENTS}`);
  return n;
}

/** The upper bound is the app's (its historyDays): a --days over it is refused by the app, with the bound. */
function reportDays(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1) throw new InvalidArgumentError("Give a whole number of days, 1 or more");
  return n;
}

function nonEmpty(value: string): string {
  if (value.trim() === "") throw new InvalidArgumentError("Say why the pair is held");
  return value;
}

function reportFailure(error: unknown, program: Command, argv: string[], context: CliContext): number {
  if (error instanceof CommanderError) {
    // Help asked for (exit 0) or shown because a command is missing (exit 1, a usage error).
    if (error.code === "commander.helpDisplayed" || error.code === "commander.help" || error.code === "commander.version") {
      return error.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    }
    const command = program.commands.find((c) => c.name() === argv[0]);
    const sub = command?.commands.find((c) => c.name() === argv[1]);
    const help = command ? `lab-reset ${command.name()}${sub ? ` ${sub.name()}` : ""} --help` : "lab-reset --help";
    context.stderr(`lab-reset: ${error.message.replace(/^error: /, "").trim().replace(/\.$/, "")}; see ${help}\n`);
    return EXIT_USAGE;
  }
  if (error instanceof CliError) {
    context.stderr(`lab-reset: ${error.message}\n`);
    return error.exitCode;
  }
  // Anything else is a bug in lab-reset, not a mistake of the caller: keep the stack for the report.
  context.stderr(`lab-reset: internal error, please report it: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  return EXIT_FAILED;
}
