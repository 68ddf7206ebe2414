import { assertEquals, assertRejects, assertThrows } from "@std/assert";
import {
  dedupAgainstParent,
  encodePagemap,
  type Pagemap,
  pageOffsets,
  parsePagemap,
  PE_LAZY,
  PE_PARENT,
  PE_PRESENT,
} from "./pagemap.ts";

const MAGIC = new Uint8Array([0x19, 0x43, 0x56, 0x54, 0x25, 0x40, 0x08, 0x56]);
const PAGE = 4096;

/** A dump directory: one pagemap (id 1, pages 1) and its pages, page i filled with fill(i). */
async function dump(
  dir: string,
  entries: { vaddr: number; nrPages: number; flags?: number }[],
  fill: (vaddr: number) => number,
): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  const pm: Pagemap = {
    magic: MAGIC,
    pagesId: 1,
    entries: entries.map((e) => ({ ...e, flags: e.flags ?? PE_PRESENT })),
  };
  await Deno.writeFile(`${dir}/pagemap-1.img`, encodePagemap(pm));
  const pages = new Uint8Array(entries.reduce((n, e) => n + e.nrPages, 0) * PAGE);
  let i = 0;
  for (const e of entries) {
    for (let k = 0; k < e.nrPages; k++) pages.fill(fill(e.vaddr + k * PAGE), PAGE * i, PAGE * ++i);
  }
  await Deno.writeFile(`${dir}/pages-1.img`, pages);
}

Deno.test("pagemap: a CRIU 4 image decodes and encodes to the same bytes", () => {
  // pagemap-1.img of a busybox shell dumped by CRIU 4.2.1 (first three entries).
  const hex = "19435654254008560200000008010b000000088" +
    "0a08002100020042801" + "0b0000000880" + "80f80210002004" + "2805" +
    "0b0000000880a0f902100020062801";
  const bytes = new Uint8Array(hex.match(/../g)!.map((h) => parseInt(h, 16)));
  const pm = parsePagemap(bytes);
  assertEquals(pm.pagesId, 1);
  assertEquals(pm.entries, [
    { vaddr: 0x401000, nrPages: 1, flags: PE_PRESENT },
    { vaddr: 0x5e0000, nrPages: 5, flags: PE_PRESENT },
    { vaddr: 0x5e5000, nrPages: 1, flags: PE_PRESENT | PE_LAZY },
  ]);
  assertEquals(encodePagemap(pm), bytes);
  assertEquals(pageOffsets(pm).get(0x5e1000), 2 * PAGE);
});

Deno.test("pagemap: hostile images are refused", () => {
  assertThrows(() => parsePagemap(new Uint8Array(4)), Error, "too short");
  const one = encodePagemap({
    magic: MAGIC,
    pagesId: 1,
    entries: [{ vaddr: 0, nrPages: 1, flags: PE_PRESENT }],
  });
  assertThrows(() => parsePagemap(one.slice(0, one.length - 2)), Error, "Truncated");
  const odd = encodePagemap({
    magic: MAGIC,
    pagesId: 1,
    entries: [{ vaddr: 4097, nrPages: 1, flags: 4 }],
  });
  assertThrows(() => parsePagemap(odd), Error, "page-aligned");
  const flags = encodePagemap({
    magic: MAGIC,
    pagesId: 1,
    entries: [{ vaddr: 0, nrPages: 1, flags: 64 }],
  });
  assertThrows(() => parsePagemap(flags), Error, "unknown flags");
});

Deno.test("pagemap: dedupAgainstParent keeps only the changed pages and marks the rest PE_PARENT", async () => {
  const root = await Deno.makeTempDir({ prefix: "lpm-pagemap-test-" });
  try {
    const runs = [{ vaddr: 0x10000, nrPages: 4 }, {
      vaddr: 0x20000,
      nrPages: 2,
      flags: PE_PRESENT | PE_LAZY,
    }];
    await dump(`${root}/parent`, [{ vaddr: 0x10000, nrPages: 4 }], (va) => va / PAGE);
    // Page 0x12000 changed; 0x20000.. is new (not in the parent).
    await dump(`${root}/final`, runs, (va) => (va === 0x12000 ? 99 : va / PAGE));
    // Counting first (pre-copy's dirty set per round): the same figures, nothing written.
    const before = await Deno.readFile(`${root}/final/pages-1.img`);
    const counted = await dedupAgainstParent(`${root}/final`, `${root}/parent`, {
      countOnly: true,
    });
    assertEquals(counted, { pages: 6, fromParent: 3, bytes: 3 * PAGE });
    assertEquals(await Deno.readFile(`${root}/final/pages-1.img`), before);
    const r = await dedupAgainstParent(`${root}/final`, `${root}/parent`);
    assertEquals(r, { pages: 6, fromParent: 3, bytes: 3 * PAGE });
    const pm = parsePagemap(await Deno.readFile(`${root}/final/pagemap-1.img`));
    assertEquals(pm.entries, [
      { vaddr: 0x10000, nrPages: 2, flags: PE_PARENT },
      { vaddr: 0x12000, nrPages: 1, flags: PE_PRESENT },
      { vaddr: 0x13000, nrPages: 1, flags: PE_PARENT },
      { vaddr: 0x20000, nrPages: 2, flags: PE_PRESENT | PE_LAZY },
    ]);
    const pages = await Deno.readFile(`${root}/final/pages-1.img`);
    assertEquals([pages[0], pages[PAGE], pages[2 * PAGE]], [99, 0x20, 0x21]);
    // A second pass would chain parents: refused.
    await assertRejects(
      () => dedupAgainstParent(`${root}/final`, `${root}/parent`),
      Error,
      "already incremental",
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
