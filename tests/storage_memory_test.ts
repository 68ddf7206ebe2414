/**
 * Memory stays flat whatever the object size: a 2 GiB generated stream goes
 * through the `local`, `s3` and `minio` providers (put, then get with digest check) in
 * a child process whose peak RSS (VmHWM) must stay under 256 MiB.
 */
import { assert, assertEquals } from "@std/assert";
import { envTest, requirePart } from "../testing/env.ts";
import { bucketClassSpec, openBucketFixture } from "../testing/storage_fixtures.ts";

const CHILD = new URL("../testing/put_child.ts", import.meta.url).pathname;
const SIZE = 2 * 1024 ** 3;
const LIMIT_KIB = 256 * 1024;

async function runChild(
  config: unknown,
  key: string,
): Promise<{ sha256: string; peakKib: number }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CHILD, JSON.stringify(config), key, String(SIZE), "fast", "get"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  const done = text.match(/^done ([0-9a-f]{64}) (\d+)$/m);
  assert(
    out.success && done,
    `child failed: ${text.slice(-500)} ${new TextDecoder().decode(out.stderr).slice(-2000)}`,
  );
  return { sha256: done[1], peakKib: Number(done[2]) };
}

envTest({ heavy: "2 GiB written to and read from the local disk" }, {
  name: "storage memory: 2 GiB through local keeps peak RSS under 256 MiB",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "lpm-storage-mem-" });
    try {
      const r = await runChild(
        { spec: { provider: "local", local: { path: dir } } },
        "ns/pod/c/big",
      );
      console.error(`peak RSS ${Math.round(r.peakKib / 1024)} MiB`);
      assert(r.peakKib < LIMIT_KIB, `peak RSS ${Math.round(r.peakKib / 1024)} MiB`);
      assertEquals((await Deno.stat(`${dir}/ns/pod/c/big`)).size, SIZE);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

for (const provider of ["s3", "minio"] as const) {
  envTest({ uses: ["minio"] }, {
    name: `storage memory: 2 GiB through ${provider} keeps peak RSS under 256 MiB`,
    sanitizeOps: false,
    sanitizeResources: false,
    async fn() {
      const info = requirePart("minio");
      const f = await openBucketFixture(provider, info);
      try {
        const { spec, secret } = bucketClassSpec(provider, info, f.prefix);
        const r = await runChild({ spec, secret }, "ns/pod/c/big");
        console.error(`peak RSS ${Math.round(r.peakKib / 1024)} MiB`);
        assert(r.peakKib < LIMIT_KIB, `peak RSS ${Math.round(r.peakKib / 1024)} MiB`);
        const st = await f.store.stat("ns/pod/c/big");
        assertEquals(st?.size, SIZE);
        assertEquals(st?.sha256, r.sha256);
      } finally {
        await f.cleanup();
      }
    },
  });
}
