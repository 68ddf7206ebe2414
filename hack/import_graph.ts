/**
 * The import rules of docs/architecture.md, checked by `deno task check`:
 * - no file-level import cycle;
 * - no folder-level cycle (two top-level folders never import each other,
 *   directly or through a third);
 * - every import points down or sideways within the layer order below;
 * - no product file imports test code (`testing/`, `tests/`, `*_test.ts`).
 *
 * Imports are read with a regular expression over `import ... from "x"`,
 * `export ... from "x"` and `import("x")` with a literal specifier: this
 * repository writes nothing else, and a resolver (`deno info`) would take
 * seconds per entry point where this takes milliseconds.
 *
 *   deno run --allow-read hack/import_graph.ts          check, print violations
 *   deno run --allow-read hack/import_graph.ts --dot    the folder graph (Graphviz)
 * @module
 */
import { parseArgs } from "../base/args.ts";

/**
 * Top-level folders from the lowest layer up. A folder may import folders
 * of a lower rank or its own; folders that share a rank never import each
 * other. Folders not listed (and top-level files) are entry points that may
 * import anything but test code.
 */
export const LAYERS: readonly (readonly string[])[] = [
  ["std", "base", "confine"],
  ["api"],
  ["kube", "archive"],
  ["storage"],
  ["contract"],
  ["oci"],
  ["agent", "controllers"],
  // images/ builds lpm's container images with oci/; localenv/ deploys them.
  ["cli", "images"],
  ["localenv"],
  ["testing"],
  ["bench", "tests"],
];

/** Folders whose files are test code: product code never imports them. */
export const TEST_FOLDERS: readonly string[] = ["testing", "tests", "bench"];

/** One import edge between two repository-relative files. */
export interface Edge {
  /** Importing file. */
  from: string;
  /** Imported file. */
  to: string;
}

const SPECIFIER =
  /(?:^|[\s;])(?:import|export)\s[^"';]*?from\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)|^import\s+["']([^"']+)["']/gm;

/** Relative imports of one file's source text, resolved against its path. */
export function importsOf(file: string, source: string): string[] {
  const out = new Set<string>();
  for (const m of source.matchAll(SPECIFIER)) {
    const spec = m[1] ?? m[2] ?? m[3];
    if (!spec || !spec.startsWith(".")) continue;
    out.add(resolve(file, spec));
  }
  return [...out];
}

function resolve(file: string, spec: string): string {
  const parts = file.split("/").slice(0, -1);
  for (const seg of spec.split("/")) {
    if (seg === "." || seg === "") continue;
    if (seg === "..") parts.pop();
    else parts.push(seg);
  }
  return parts.join("/");
}

/** The top-level folder of a repository-relative path ("" for a top-level file). */
export function folderOf(path: string): string {
  const i = path.indexOf("/");
  return i < 0 ? "" : path.slice(0, i);
}

/** True when the path is test code. */
export function isTestCode(path: string): boolean {
  return TEST_FOLDERS.includes(folderOf(path)) || /_test\.ts$/.test(path);
}

function rankOf(folder: string): number | undefined {
  const i = LAYERS.findIndex((layer) => layer.includes(folder));
  return i < 0 ? undefined : i;
}

/** Every rule broken by the given edges, one readable line each. */
export function violations(edges: readonly Edge[]): string[] {
  const out: string[] = [];
  for (const { from, to } of edges) {
    if (!isTestCode(from) && isTestCode(to)) {
      out.push(`Product file "${from}" imports test code "${to}"`);
    }
    const a = folderOf(from), b = folderOf(to);
    const privateDir = to.slice(0, to.lastIndexOf("/") + 1);
    if (
      !isTestCode(from) && /\/_[^/]*$/.test(to) && !from.startsWith(privateDir)
    ) {
      out.push(`"${from}" imports "${to}", which is private to its folder`);
    }
    if (a === b || a === "" || isTestCode(from)) continue;
    const ra = rankOf(a), rb = rankOf(b);
    if (ra === undefined || rb === undefined) continue;
    if (rb > ra || (rb === ra && a !== b)) {
      out.push(`"${from}" (layer ${a}) imports "${to}" (layer ${b}), which is not below it`);
    }
  }
  for (const cycle of cycles(edges.map((e) => [e.from, e.to]))) {
    out.push(`File import cycle: ${cycle.join(" -> ")}`);
  }
  // Test files are leaves (nothing imports them): their edges say nothing of
  // how the product's folders depend on each other.
  const folderEdges = edges
    .filter((e) => !isTestCode(e.from))
    .map((e) => [folderOf(e.from), folderOf(e.to)] as [string, string])
    .filter(([a, b]) => a !== b && a !== "" && b !== "");
  for (const cycle of cycles(folderEdges)) {
    out.push(`Folder import cycle: ${cycle.join(" -> ")}`);
  }
  return out;
}

/** Strongly connected components with more than one member (Tarjan), as readable loops. */
export function cycles(pairs: readonly [string, string][]): string[][] {
  const next = new Map<string, Set<string>>();
  for (const [a, b] of pairs) {
    if (!next.has(a)) next.set(a, new Set());
    next.get(a)!.add(b);
    if (a === b) continue;
  }
  let index = 0;
  const idx = new Map<string, number>(), low = new Map<string, number>();
  const stack: string[] = [], onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    for (const w of next.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1) found.push(scc.reverse().concat(scc[0]));
    }
  };
  for (const v of [...next.keys()].sort()) if (!idx.has(v)) visit(v);
  return found;
}

/** Every `.ts` file under root (repository-relative), skipping dot folders. */
export async function sourceFiles(root: string, dir = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(`${root}/${dir}` || root)) {
    if (e.name.startsWith(".") || e.name === "node_modules") continue;
    const rel = dir ? `${dir}/${e.name}` : e.name;
    if (e.isDirectory) out.push(...await sourceFiles(root, rel));
    else if (e.isFile && e.name.endsWith(".ts")) out.push(rel);
  }
  return out.sort();
}

/** The import edges of the repository at root. */
export async function repositoryEdges(root: string): Promise<Edge[]> {
  const edges: Edge[] = [];
  for (const file of await sourceFiles(root)) {
    const text = await Deno.readTextFile(`${root}/${file}`);
    for (const to of importsOf(file, text)) edges.push({ from: file, to });
  }
  return edges;
}

if (import.meta.main) {
  const root = new URL("../", import.meta.url).pathname.replace(/\/$/, "");
  const { flags } = parseArgs(Deno.args, { known: ["dot"], booleans: ["dot"] });
  const edges = await repositoryEdges(root);
  if (flags.dot === "true") {
    const seen = new Set<string>();
    console.log("digraph lpm {");
    for (const e of edges) {
      const a = folderOf(e.from), b = folderOf(e.to);
      const key = `${a}->${b}`;
      if (a && b && a !== b && !isTestCode(e.from) && !seen.has(key)) {
        seen.add(key);
        console.log(`  "${a}" -> "${b}";`);
      }
    }
    console.log("}");
  } else {
    const bad = violations(edges);
    for (const line of bad) console.error(line);
    if (bad.length) {
      console.error(`${bad.length} import rule(s) broken: see docs/architecture.md`);
      Deno.exit(1);
    }
    console.error(`Imports follow the layers (${edges.length} edges checked)`);
  }
}
