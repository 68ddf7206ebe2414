import { assertEquals } from "@std/assert";
import { envTest, requirePart } from "../testing/env.ts";
import { drain, generatedStream, registerConformance } from "../testing/storage_conformance.ts";
import { bucketClassSpec, openBucketFixture } from "../testing/storage_fixtures.ts";
import { createStore } from "./factory.ts";

registerConformance({
  name: "minio",
  open: () => openBucketFixture("minio", requirePart("minio")),
  needs: { uses: ["minio"] },
});

envTest({ uses: ["minio"] }, {
  name: "s3 and minio providers read each other's objects with the same digest",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const info = requirePart("minio");
    const f = await openBucketFixture("s3", info);
    const other = bucketClassSpec("minio", info, f.prefix);
    const viaMinio = createStore(other.spec, { secret: other.secret });
    try {
      const gen = generatedStream(40 << 20);
      const put = await f.store.put("ns/pod/c/archive.tar", gen.stream, { metadata: { by: "s3" } });
      assertEquals(put.sha256, gen.sha256());
      const st = await viaMinio.stat("ns/pod/c/archive.tar");
      assertEquals(st?.sha256, gen.sha256());
      assertEquals(st?.metadata, { by: "s3" });
      assertEquals(await drain(await viaMinio.get("ns/pod/c/archive.tar")), {
        size: 40 << 20,
        sha256: gen.sha256(),
      });
      // And the other way round.
      const gen2 = generatedStream(3 << 20);
      await viaMinio.put("ns/pod/c/2", gen2.stream);
      assertEquals((await drain(await f.store.get("ns/pod/c/2"))).sha256, gen2.sha256());
      assertEquals((await Array.fromAsync(f.store.list("ns/"))).map((o) => o.key), [
        "ns/pod/c/2",
        "ns/pod/c/archive.tar",
      ]);
      const url = await viaMinio.createSignedUrl!("ns/pod/c/2", { ttlMs: 60_000 });
      const r = await fetch(url);
      assertEquals(r.status, 200);
      assertEquals((await drain(r.body!)).sha256, gen2.sha256());
    } finally {
      viaMinio.close?.();
      await f.cleanup();
    }
  },
});
