import { ConfigurationError, loadLabConfigFile } from "../../lab/config.js";
import { defaultConfigPath, type CliContext } from "../context.js";
import { EXIT_FAILED, EXIT_OK } from "../errors.js";

/** `check-config [file]`: the start-up validation, without starting the app. */
export function checkConfig(context: CliContext, file: string | undefined, options: { json?: boolean }): number {
  const path = file ?? defaultConfigPath(context);
  try {
    // A file named on the command line is the caller's, relative to where they stand; what to do
    // is to fix the file (restarting is for the app, which reads it only at start-up).
    const config = loadLabConfigFile(path, process.cwd(), "fix these in the file");
    const ids = config.pairs.map((pair) => pair.id);
    if (options.json) {
      context.stdout(`${JSON.stringify({ ok: true, file: path, repository: `${config.github.owner}/${config.github.repo}`, pairs: ids }, null, 2)}\n`);
    } else {
      context.stdout(`ok: ${ids.length} ${ids.length === 1 ? "pair" : "pairs"} (${ids.join(", ")}) for ${config.github.owner}/${config.github.repo} in ${path}\n`);
    }
    return EXIT_OK;
  } catch (error) {
    if (!(error instanceof ConfigurationError)) throw error;
    if (options.json) context.stdout(`${JSON.stringify({ ok: false, file: path, problems: error.problems }, null, 2)}\n`);
    // The message start-up stops with: a heading, then every problem on its own line.
    context.stderr(`lab-reset: ${error.message}\n`);
    return EXIT_FAILED;
  }
}
