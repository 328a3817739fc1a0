/**
 * Entry point that the Azure Functions host loads (package.json "main"). Settings and the lab
 * config are checked here, so a mistake stops the app at start-up with every problem listed.
 */
import azureFunctions from "@azure/functions";
import { getRuntime, loadStartup } from "../shared/runtime.js";
import { functionDefinitions, redeliverScheduleOf } from "./definitions.js";

// A CommonJS bundle: take `app` from the default export, as Node's ESM loader cannot always see it.
const { app } = azureFunctions;
const { settings } = loadStartup();

for (const definition of functionDefinitions(getRuntime, { ...settings, redeliverSchedule: redeliverScheduleOf(settings) })) {
  if (definition.kind === "http") {
    const { name, route, methods, authLevel, handler } = definition;
    app.http(name, { route, methods, authLevel, handler });
  } else if (definition.kind === "queue") {
    // The host decodes the Base64 message text and retries a failed run (host.json extensions.queues).
    app.storageQueue(definition.name, { queueName: definition.queueName, connection: "AzureWebJobsStorage", handler: definition.handler });
  } else {
    app.timer(definition.name, { schedule: definition.schedule, handler: definition.handler });
  }
}
