import { resolve } from "node:path";
import { readFileSync, writeFileSync } from "node:fs";
import { ConfigurationError, loadLabConfigFile } from "../../lab/config.js";
import { defaultConfigPath, type CliContext } from "../context.js";
import { CliError, EXIT_FAILED, EXIT_OK, usageError } from "../errors.js";
import { formatLabConfig, importResetMatrix } from "../import-matrix.js";

export interface ImportOptions {
  repo?: { owner: string; repo: string };
  routingLabel?: string[];
  workflow: string;
  ref: string;
  job?: string;
  out?: string;
}

/**
 * `import-matrix <workflow>`: prints the lab config, or names every entry it could not pair and
 * prints nothing. Half a config would look valid and leave the missing hosts never reset.
 */
export function importMatrixCommand(context: CliContext, workflow: string, options: ImportOptions): number {
  const github = options.repo ?? repositoryOfCurrentConfig(context);
  let text: string;
  try {
    text = readFileSync(workflow, "utf8");
  } catch (error) {
    throw new CliError(`cannot read ${workflow}: ${(error as Error).message}; give the path of the lab's reset workflow`);
  }
  const result = importResetMatrix(text, workflow, {
    github,
    resetWorkflow: { workflow: options.workflow, ref: options.ref },
    routingLabels: options.routingLabel ?? [],
    ...(options.job !== undefined ? { job: options.job } : {}),
  });
  if (!result.ok) {
    for (const problem of result.problems) context.stderr(`lab-reset: ${problem}\n`);
    context.stderr(`lab-reset: no lab config ${options.out ? `written to ${options.out}` : "printed"}: fix the ${result.problems.length === 1 ? "problem" : `${result.problems.length} problems`} above and import again\n`);
    return EXIT_FAILED;
  }
  const json = formatLabConfig(result.config);
  if (options.out) {
    writeFileSync(options.out, json);
    context.stderr(`lab-reset: wrote ${result.config.pairs.length} pairs to ${options.out}\n`);
  } else {
    context.stdout(json);
  }
  return EXIT_OK;
}

/** The repository of the lab config the app would load, if that file is there and valid. */
function repositoryOfCurrentConfig(context: CliContext): { owner: string; repo: string } {
  const path = defaultConfigPath(context);
  try {
    const { owner, repo } = loadLabConfigFile(resolve(path)).github;
    return { owner, repo };
  } catch (error) {
    if (!(error instanceof ConfigurationError)) throw error;
    throw usageError(`import-matrix needs --repo owner/name: there is no valid lab config at ${path} to take the repository from`);
  }
}
