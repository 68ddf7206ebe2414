import { assertEquals } from "@std/assert";
import { api, controllers, storage } from "./mod.ts";

Deno.test("mod.ts exposes each part's public face", async () => {
  assertEquals(api.GROUP, "lpm.my.domain");
  assertEquals(typeof controllers.startManager, "function");
  const dir = await Deno.makeTempDir();
  try {
    const store = storage.createStore({ provider: "local", local: { path: dir } });
    const info = await store.put(
      "ns/pod/cp1/app.tar",
      new Blob([new Uint8Array([1, 2, 3])]).stream(),
    );
    assertEquals(info.size, 3);
    assertEquals(info.sha256, "039058c6f2c0cb492c533b0a4d14ef77cc0f78abccced5287d84a1a2011cfb81");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
