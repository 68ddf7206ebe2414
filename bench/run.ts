/**
 * `deno task bench <name> [args...]`: runs the benchmark script `bench/<name>.ts`.
 * Each script measures its subject side by side with a baseline in the same
 * run and prints ratios (this machine is shared and noisy: absolute numbers
 * from separate runs are not comparable).
 * @module
 */

const [name, ...rest] = Deno.args;
const known: string[] = [];
for await (const e of Deno.readDir(new URL(".", import.meta.url))) {
  if (
    e.isFile && e.name.endsWith(".ts") && e.name !== "run.ts" && !e.name.startsWith("_") &&
    !e.name.endsWith("_test.ts")
  ) {
    known.push(e.name.replace(/\.ts$/, ""));
  }
}
if (!name || !known.includes(name)) {
  console.error(`usage: deno task bench <${known.sort().join("|")}> [args...]`);
  Deno.exit(2);
}
const mod = await import(`./${name}.ts`) as { main(args: string[]): Promise<void> };
try {
  await mod.main(rest);
} catch (err) {
  console.error(`[bench] ERROR: ${(err as Error).message}`);
  Deno.exit(1);
}
