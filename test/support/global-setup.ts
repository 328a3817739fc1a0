/** Starts one Azurite (table service, loopback, in memory, no telemetry) for the whole test run. */
import type { TestProject } from "vitest/node";
import { startAzurite } from "../../shared/local/azurite.js";

declare module "vitest" {
  export interface ProvidedContext {
    azuriteConnectionString: string;
  }
}

export default async function setup(project: TestProject) {
  const azurite = await startAzurite();
  project.provide("azuriteConnectionString", azurite.connectionString);
  return () => azurite.stop();
}
