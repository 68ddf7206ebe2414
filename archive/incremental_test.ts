import { assert, assertEquals, assertRejects, assertThrows } from "@std/assert";
import { makeIncremental, packParentLayer, parentPath, writePassThrough } from "./incremental.ts";
import {
  dedupAgainstParent,
  encodePagemap,
  parsePagemap,
  PE_PARENT,
  PE_PRESENT,
} from "./pagemap.ts";
import { packArchive, unpackArchive } from "./write.ts";
import { tarFileEntries } from "./_tar.ts";

const MAGIC = new Uint8Array([0x19, 0x43, 0x56, 0x54, 0x25, 0x40, 0x08, 0x56]);
const PAGE = 4096;

/** CRIU images of one process with `n` pages at 0x10000, page i filled with fill(i). */
async function images(dir: string, n: number, fill: (i: number) => number): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  const pm = {
    magic: MAGIC,
    pagesId: 1,
    entries: [{ vaddr: 0x10000, nrPages: n, flags: PE_PRESENT }],
  };
  await Deno.writeFile(`${dir}/pagemap-1.img`, encodePagemap(pm));
  const pages = new Uint8Array(n * PAGE);
  for (let i = 0; i < n; i++) pages.fill(fill(i), i * PAGE, (i + 1) * PAGE);
  await Deno.writeFile(`${dir}/pages-1.img`, pages);
  await Deno.writeFile(`${dir}/inventory.img`, new Uint8Array(16));
}

Deno.test("incremental: makeIncremental keeps the archive's files and only the changed pages", async () => {
  const root = await Deno.makeTempDir({ prefix: "lpm-incremental-test-" });
  try {
    await images(`${root}/round`, 8, (i) => i + 1);
    await images(`${root}/stage/checkpoint`, 8, (i) => (i === 5 ? 77 : i + 1));
    await Deno.writeTextFile(`${root}/stage/config.dump`, JSON.stringify({ id: "c", name: "app" }));
    await Deno.writeTextFile(`${root}/stage/spec.dump`, JSON.stringify({ process: {} }));
    await Deno.writeTextFile(`${root}/stage/status.dump`, "{}");
    await packArchive(`${root}/stage`, `${root}/full.tar`);
    const r = await makeIncremental(`${root}/full.tar`, `${root}/round`, {
      outPath: `${root}/incremental.tar`,
      workDir: `${root}/work`,
    });
    assertEquals(r, { pages: 8, fromParent: 7, bytes: PAGE });
    await unpackArchive(`${root}/incremental.tar`, `${root}/out`);
    assertEquals(await Deno.readTextFile(`${root}/out/status.dump`), "{}");
    const pm = parsePagemap(await Deno.readFile(`${root}/out/checkpoint/pagemap-1.img`));
    assertEquals(pm.entries.map((e) => [e.nrPages, e.flags]), [[5, PE_PARENT], [1, PE_PRESENT], [
      2,
      PE_PARENT,
    ]]);
    assertEquals((await Deno.readFile(`${root}/out/checkpoint/pages-1.img`))[0], 77);
    assertEquals([...Deno.readDirSync(`${root}/work`)], [], "the scratch stage is removed");

    // The same archive with the pages image before its pagemap: compared after unpacking.
    const order = ["config.dump", "spec.dump", "status.dump", "checkpoint/inventory.img"];
    const tar = await new Deno.Command("tar", {
      args: ["-C", `${root}/stage`, "-cf", `${root}/reversed.tar`, ...order]
        .concat(["checkpoint/pages-1.img", "checkpoint/pagemap-1.img"]),
    }).output();
    assert(tar.success);
    const again = await makeIncremental(`${root}/reversed.tar`, `${root}/round`, {
      outPath: `${root}/incremental2.tar`,
      workDir: `${root}/work`,
    });
    assertEquals(again, r);
    await unpackArchive(`${root}/incremental2.tar`, `${root}/out2`);
    assertEquals(
      await Deno.readFile(`${root}/out2/checkpoint/pagemap-1.img`),
      await Deno.readFile(`${root}/out/checkpoint/pagemap-1.img`),
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("incremental: packParentLayer puts the round under checkpoint/parent/, and refuses a non-dump", async () => {
  const root = await Deno.makeTempDir({ prefix: "lpm-incremental-test-" });
  try {
    await images(`${root}/round`, 2, (i) => i);
    await packParentLayer(`${root}/round`, { outPath: `${root}/parent.tar`, workDir: `${root}/w` });
    const names: string[] = [];
    for await (const e of await tarFileEntries(`${root}/parent.tar`)) names.push(e.name);
    assertEquals(names, [
      "checkpoint",
      "checkpoint/parent",
      "checkpoint/parent/inventory.img",
      "checkpoint/parent/pagemap-1.img",
      "checkpoint/parent/pages-1.img",
    ]);
    await Deno.mkdir(`${root}/empty`);
    await Deno.writeTextFile(`${root}/empty/notes.txt`, "x");
    await assertRejects(
      () => packParentLayer(`${root}/empty`, { outPath: `${root}/bad.tar`, workDir: `${root}/w` }),
      Error,
      "no CRIU pagemap image",
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("incremental: a round chain; an incremental round written beside its full dump, a layer 2 parents deep, pass-through levels down to it", async () => {
  const root = await Deno.makeTempDir({ prefix: "lpm-incremental-test-" });
  try {
    await images(`${root}/r1`, 4, (i) => i + 1);
    await images(`${root}/r2`, 4, (i) => (i === 2 ? 50 : i + 1));
    // A pages image no pagemap of a process names (a shared memory's): copied as it is.
    await Deno.writeFile(`${root}/r2/pages-9.img`, new Uint8Array(PAGE).fill(9));
    const before = await Deno.readFile(`${root}/r2/pages-1.img`);
    await Deno.mkdir(`${root}/inc`);
    const r = await dedupAgainstParent(`${root}/r2`, `${root}/r1`, { outDir: `${root}/inc` });
    assertEquals(r, { pages: 4, fromParent: 3, bytes: PAGE });
    assertEquals(await Deno.readFile(`${root}/r2/pages-1.img`), before, "the full dump stays");
    assertEquals((await Deno.readFile(`${root}/inc/pages-1.img`)).length, PAGE);
    assertEquals((await Deno.readFile(`${root}/inc/pages-9.img`))[0], 9);
    assertEquals((await Deno.readFile(`${root}/inc/inventory.img`)).length, 16);

    // Round 2 of at most 3: two parents deep.
    await packParentLayer(`${root}/inc`, {
      outPath: `${root}/layer.tar`,
      workDir: `${root}/w`,
      depth: 2,
    });
    const names: string[] = [];
    for await (const e of await tarFileEntries(`${root}/layer.tar`)) names.push(e.name);
    assert(names.includes("checkpoint/parent/parent/pages-1.img"), names.join(", "));

    // The rounds stopped at 2 of 3: one pass-through level, every page in its parent, no pages.
    await writePassThrough(`${root}/r2`, `${root}/final`, 1);
    const pm = parsePagemap(await Deno.readFile(`${root}/final/parent/pagemap-1.img`));
    assertEquals(pm.entries, [{ vaddr: 0x10000, nrPages: 4, flags: PE_PARENT }]);
    assertEquals((await Deno.readFile(`${root}/final/parent/pages-1.img`)).length, 0);
    assertEquals((await Deno.readFile(`${root}/final/parent/inventory.img`)).length, 16);
    assertThrows(() => parentPath(17), Error, "Bad parent depth 17");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
