/**
 * A sentinel directory next to a test's work directory: its listing and
 * contents are recorded before a hostile input is fed, and compared after,
 * so a test proves that nothing outside the work directory changed.
 * @module
 */
import { assertEquals } from "@std/assert";
import { sha256Hex } from "../../base/sha256.ts";

/** Path -> kind and content digest (links by target), recursively, never following links. */
export async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (rel: string) => {
    for await (const e of Deno.readDir(rel ? `${dir}/${rel}` : dir)) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      const p = `${dir}/${r}`;
      const st = await Deno.lstat(p);
      if (st.isSymlink) out[r] = `link:${await Deno.readLink(p)}`;
      else if (st.isDirectory) {
        out[r] = `dir:${(st.mode ?? 0) & 0o7777}`;
        await walk(r);
      } else if (st.isFile) {
        const h = sha256Hex(await Deno.readFile(p));
        out[r] = `file:${(st.mode ?? 0) & 0o7777}:${h}`;
      } else out[r] = `other:${st.mode}`;
    }
  };
  await walk("");
  return out;
}

/** A temp test dir holding `work/` (where the code under test may write) and `sentinel/`. */
export interface Sandbox {
  /** The test's directory. */
  dir: string;
  /** Where the code under test may write. */
  work: string;
  /** Must not change. */
  sentinel: string;
  /** Asserts the sentinel is unchanged. */
  assertSentinelUnchanged(): Promise<void>;
  /** Removes everything. */
  remove(): Promise<void>;
}

/** Makes a sandbox with a few sentinel files (a file, a nested file, a victim to overwrite). */
export async function sandbox(): Promise<Sandbox> {
  const dir = await Deno.makeTempDir({ prefix: "lpm-hostile-" });
  const work = `${dir}/work`;
  const sentinel = `${dir}/sentinel`;
  await Deno.mkdir(work);
  await Deno.mkdir(`${sentinel}/etc`, { recursive: true });
  await Deno.writeTextFile(`${sentinel}/victim`, "do not touch\n");
  await Deno.writeTextFile(`${sentinel}/etc/shadow`, "root:*:1:0:99999:7:::\n");
  const before = await snapshot(sentinel);
  return {
    dir,
    work,
    sentinel,
    async assertSentinelUnchanged() {
      assertEquals(await snapshot(sentinel), before, "the sentinel next to the work dir changed");
      const top: string[] = [];
      for await (const e of Deno.readDir(dir)) top.push(e.name);
      assertEquals(top.sort(), ["sentinel", "work"], "something was created next to the work dir");
    },
    remove: () => Deno.remove(dir, { recursive: true }),
  };
}
