/**
 * The layers of shared/: arrows point down only. The composition root builds the handlers'
 * collaborators and must not reach back into the handlers; product code never leans on test/;
 * and no module of shared/ depends on itself through others. Type-only imports count: a
 * handler that imports the `Runtime` type while the runtime imports the handler is still a loop.
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, normalize, relative } from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";

type Graph = Map<string, string[]>;

/** Every relative import (static, dynamic, re-export) of each .ts file under `root`, as repository paths. */
function importGraph(root: string): Graph {
  const graph: Graph = new Map();
  const files = readdirSync(root, { recursive: true, withFileTypes: true }).filter((f) => f.isFile() && f.name.endsWith(".ts"));
  for (const file of files) {
    const path = normalize(join(file.parentPath, file.name));
    const { importedFiles } = ts.preProcessFile(readFileSync(path, "utf8"), true, true);
    const targets = importedFiles.map((i) => i.fileName).filter((name) => name.startsWith("."));
    graph.set(
      path,
      targets.map((name) => normalize(join(dirname(path), name)).replace(/\.js$/, ".ts")),
    );
  }
  return graph;
}

/** One loop through each strongly connected group of modules (Tarjan), as `a → b → … → a`. */
function cycles(graph: Graph): string[] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const found: string[] = [];
  const visit = (node: string) => {
    index.set(node, index.size);
    low.set(node, index.get(node)!);
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      if (!graph.has(next)) continue;
      if (!index.has(next)) {
        visit(next);
        low.set(node, Math.min(low.get(node)!, low.get(next)!));
      } else if (stack.includes(next)) low.set(node, Math.min(low.get(node)!, index.get(next)!));
    }
    if (low.get(node) !== index.get(node)) return;
    const group = new Set<string>();
    let member: string;
    do group.add((member = stack.pop()!));
    while (member !== node);
    const loop = loopThrough(graph, group, node);
    if (loop) found.push(loop.join(" → "));
  };
  for (const node of [...graph.keys()].sort()) if (!index.has(node)) visit(node);
  return found;
}

/** The shortest path from `start` back to itself inside `group` (breadth first), or null. */
function loopThrough(graph: Graph, group: Set<string>, start: string): string[] | null {
  const from = new Map<string, string>();
  const queue = [start];
  while (queue.length > 0) {
    const node = queue.shift()!;
    for (const next of graph.get(node) ?? []) {
      if (!group.has(next)) continue;
      if (next === start) {
        const path = [start];
        for (let at = node; at !== start; at = from.get(at)!) path.splice(1, 0, at);
        return [...path, start];
      }
      if (!from.has(next)) {
        from.set(next, node);
        queue.push(next);
      }
    }
  }
  return null;
}

const shared = importGraph("shared");
const importsOf = (path: string) => shared.get(path) ?? [];

describe("the module layers of shared/", () => {
  it("reads the import lines it checks", () => {
    // Without this, a parser that saw no imports would pass every check below.
    expect(shared.size).toBeGreaterThan(50);
    expect(importsOf("shared/runtime.ts")).toContain("shared/settings.ts");
    // A type-only import is read too.
    expect(importsOf("shared/runtime.ts")).toContain("shared/storage/connection.ts");
    expect(importsOf("shared/local/start.ts")).toContain("shared/runtime.ts");
  });

  it("finds a loop, and names it module by module", () => {
    const graph: Graph = new Map([
      ["a.ts", ["b.ts"]],
      ["b.ts", ["c.ts", "d.ts"]],
      ["c.ts", ["a.ts"]],
      ["d.ts", []],
      ["e.ts", ["e.ts"]],
    ]);
    expect(cycles(graph)).toEqual(["a.ts → b.ts → c.ts → a.ts", "e.ts → e.ts"]);
  });

  it("has no import cycle", () => {
    expect(cycles(shared)).toEqual([]);
  });

  it("never imports from test/", () => {
    const intoTests = [...shared].flatMap(([path, targets]) => targets.filter((t) => !relative("test", t).startsWith("..")).map((t) => `${path} → ${t}`));
    expect(intoTests).toEqual([]);
  });

  it("builds the runtime without importing the handlers it serves", () => {
    expect(importsOf("shared/runtime.ts").filter((t) => t.startsWith("shared/triggers/") || t.startsWith("shared/admin/"))).toEqual([]);
  });

  it("gives each handler what it uses, not the runtime", () => {
    const handlers = [...shared.keys()].filter((path) => path.startsWith("shared/triggers/") || path.startsWith("shared/admin/"));
    expect(handlers).toContain("shared/admin/holds.ts");
    expect(handlers.filter((path) => importsOf(path).includes("shared/runtime.ts"))).toEqual([]);
  });
});
