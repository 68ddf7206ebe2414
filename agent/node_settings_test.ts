import { assertEquals, assertThrows } from "@std/assert";
import { applyNodeFlags, overrideFlags } from "./node_settings.ts";

Deno.test("overrideFlags: file flags replace every occurrence of the same flag", () => {
  const args = ["--node-name=a", "--criu-log-dir=/x", "--criu-log-dir=/y", "--listen=1:2"];
  assertEquals(overrideFlags(args, "# node a\n--criu-log-dir=/z\n\n--kubelet-root-dir=/k\n"), [
    "--node-name=a",
    "--listen=1:2",
    "--criu-log-dir=/z",
    "--kubelet-root-dir=/k",
  ]);
  assertThrows(() => overrideFlags(args, "rm -rf /"), Error, "invalid");
});

Deno.test("applyNodeFlags: reads <dir>/<node>; absent file or flag changes nothing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/node-a`, "--kubelet-root-dir=/var/lib/k-a\n");
    assertEquals(
      await applyNodeFlags([
        "--node-flags-dir",
        dir,
        "--node-name=node-a",
        "--kubelet-root-dir=/v",
      ]),
      ["--node-name=node-a", "--kubelet-root-dir=/var/lib/k-a"],
    );
    assertEquals(await applyNodeFlags([`--node-flags-dir=${dir}`, "--node-name=node-b"]), [
      "--node-name=node-b",
    ]);
    assertEquals(await applyNodeFlags(["--node-name=x"]), ["--node-name=x"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
