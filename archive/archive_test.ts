import { assertEquals, assertRejects } from "@std/assert";
import {
  CheckpointArchiveError,
  encodeCriuStats,
  packArchive,
  parseCriuStats,
  readArchive,
  readArchiveStats,
  tarEntries,
} from "./mod.ts";

async function stage(opts: { checkpoint?: boolean; stats?: boolean } = {}): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "lpm-archive-test-" });
  await Deno.writeTextFile(
    `${dir}/config.dump`,
    JSON.stringify({ id: "abc", name: "app", createdTime: "2026-01-01T00:00:00Z" }),
  );
  await Deno.writeTextFile(`${dir}/spec.dump`, JSON.stringify({ process: { args: ["sh"] } }));
  await Deno.writeTextFile(`${dir}/deleted.files`, JSON.stringify(["/etc/motd"]));
  if (opts.checkpoint !== false) {
    await Deno.mkdir(`${dir}/checkpoint`);
    await Deno.writeFile(`${dir}/checkpoint/inventory.img`, new Uint8Array(86));
    await Deno.writeFile(`${dir}/checkpoint/pages-1.img`, new Uint8Array(8192).fill(7));
    // A name longer than ustar's 100 bytes (GNU long-name / pax entry).
    await Deno.writeFile(`${dir}/checkpoint/${"x".repeat(150)}.img`, new Uint8Array(3));
  }
  if (opts.stats) {
    await Deno.writeFile(
      `${dir}/stats-dump`,
      encodeCriuStats({
        freezingTime: 1200,
        frozenTime: 34567,
        pagesWritten: 70000,
        pagesScanned: 2 ** 33,
      }),
    );
  }
  return dir;
}

Deno.test("archive: pack and read back metadata, sizes and stats", async () => {
  const dir = await stage({ stats: true });
  const out = `${dir}.tar`;
  try {
    await packArchive(dir, out);
    const info = await readArchive(out);
    assertEquals(info.config.name, "app");
    assertEquals(info.checkpointBytes, 86 + 8192 + 3);
    assertEquals(info.deletedFiles, ["/etc/motd"]);
    assertEquals(info.stats?.frozenTime, 34567);
    assertEquals(info.stats?.pagesScanned, 2 ** 33);
    assertEquals((await readArchiveStats(out))?.pagesWritten, 70000);
    const names: string[] = [];
    for await (const e of tarEntries((await Deno.open(out)).readable)) names.push(e.name);
    assertEquals(names[0], "config.dump");
    assertEquals(names.includes(`checkpoint/${"x".repeat(150)}.img`), true);
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(out).catch(() => {});
  }
});

Deno.test("archive: gzip-compressed archives are read too", async () => {
  const dir = await stage();
  const out = `${dir}.tar.gz`;
  try {
    const p = new Deno.Command("tar", { args: ["-C", dir, "-czf", out, "."] });
    assertEquals((await p.output()).success, true);
    const info = await readArchive(out);
    assertEquals(info.compressed, true);
    assertEquals(info.stats, undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(out).catch(() => {});
  }
});

Deno.test("archive: missing checkpoint/ is a clear error (reading and packing)", async () => {
  const dir = await stage({ checkpoint: false });
  const out = `${dir}.tar`;
  try {
    await assertRejects(
      () => packArchive(dir, out),
      CheckpointArchiveError,
      `"checkpoint" is missing`,
    );
    const p = new Deno.Command("tar", {
      args: ["-C", dir, "-cf", out, "config.dump", "spec.dump"],
    });
    assertEquals((await p.output()).success, true);
    await assertRejects(
      () => readArchive(out),
      CheckpointArchiveError,
      `no "checkpoint/" directory`,
    );
    assertEquals(await readArchiveStats(out), undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(out).catch(() => {});
  }
});

Deno.test("archive: a truncated archive is an error, not a silent short read", async () => {
  const dir = await stage();
  const out = `${dir}.tar`;
  try {
    await packArchive(dir, out);
    const bytes = await Deno.readFile(out);
    await Deno.writeFile(out, bytes.subarray(0, 3000));
    await assertRejects(() => readArchive(out), CheckpointArchiveError, "Truncated");
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(out).catch(() => {});
  }
});

Deno.test("stats: decoder rejects a non-stats image and keeps unknown fields", () => {
  const bytes = encodeCriuStats({ freezingTime: 1, pagesLazy: 5 });
  const s = parseCriuStats(bytes)!;
  assertEquals(s.freezingTime, 1);
  assertEquals(s.pagesLazy, 5);
  const bad = bytes.slice();
  bad[4] = 0;
  try {
    parseCriuStats(bad);
    throw new Error("expected a failure");
  } catch (err) {
    assertEquals((err as Error).message.startsWith("Not a CRIU stats image"), true);
  }
});
