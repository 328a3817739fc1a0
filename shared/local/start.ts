/**
 * `npm start`: the app on this machine, with the same function definitions Azure runs.
 * Starts Azurite itself when AzureWebJobsStorage is not set.
 */
import { functionDefinitions } from "../../functions/definitions.js";
import { ConfigurationError } from "../config.js";
import { consoleLogger } from "../logger.js";
import { createRuntime, loadStartup } from "../runtime.js";
import { GITHUB_SETTINGS_HINT } from "../settings.js";
import { startAzurite, type RunningAzurite } from "./azurite.js";
import { startLocalHost } from "./host.js";

async function main(): Promise<number> {
  const { settings, config } = loadStartup();
  if (settings.githubAuth === null) {
    console.error(`lab-reset needs GitHub to look at: ${GITHUB_SETTINGS_HINT}; then run npm start again.`);
    return 2;
  }
  let azurite: RunningAzurite | undefined;
  if (settings.storage.kind === "none") {
    azurite = await startAzurite();
    settings.storage = { kind: "connectionString", connectionString: azurite.connectionString };
    console.log(`Table Storage: Azurite (in memory) on 127.0.0.1:${azurite.port}; set AzureWebJobsStorage to use another store.`);
  }
  const runtime = await createRuntime(settings, config);
  const port = Number(process.env.PORT ?? 7071);
  const host = await startLocalHost({ definitions: functionDefinitions(() => Promise.resolve(runtime), settings.resetSchedule), port, logger: consoleLogger, runTimers: true });
  console.log(`lab-reset for ${config.github.owner}/${config.github.repo} (${config.pairs.length} pairs) against ${settings.githubApiUrl}`);
  console.log(`  GET  ${host.url}/api/pairs`);
  console.log(`  POST ${host.url}/api/job-completed`);
  console.log(`  POST ${host.url}/admin/functions/scheduledReset   (timer schedule "${settings.resetSchedule}", UTC)`);

  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  await host.close();
  await azurite?.stop();
  return 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error instanceof ConfigurationError ? error.message : error);
    process.exit(1);
  },
);
