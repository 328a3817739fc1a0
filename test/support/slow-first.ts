/**
 * Starts the files that take longest first, so that none of them starts last and leaves the other
 * worker idle at the end (vitest orders files by past durations only when it has a cache, which
 * a fresh clone in CI lacks). The rest keep vitest's order.
 */
import { BaseSequencer, type TestSpecification } from "vitest/node";

/** Longest first, as measured on a 2-core machine; a file not named here comes after these. */
const SLOW_FIRST = ["properties", "advise", "sim", "burst", "infra", "local-host", "errors", "local-start", "cli", "reconcile", "outage", "webhook", "status-page", "report-page", "report", "admin", "routing"];

const rank = (spec: TestSpecification) => {
  const found = SLOW_FIRST.findIndex((name) => spec.moduleId.endsWith(`/test/${name}.test.ts`));
  return found === -1 ? SLOW_FIRST.length : found;
};

export default class SlowFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    return (await super.sort(files)).sort((a, b) => rank(a) - rank(b));
  }
}
