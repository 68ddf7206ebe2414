import { assert, assertEquals, assertMatch, assertRejects, assertThrows } from "@std/assert";
import {
  boundedInflate,
  ConfinementError,
  isDnsLabel,
  linkTargetProblem,
  MemberChecker,
  pathProblem,
  readBounded,
  resolveInside,
} from "./mod.ts";

Deno.test("confine: pathProblem refuses absolute, .., NUL, empty, too long", () => {
  assertEquals(pathProblem("a/b/c"), undefined);
  assertEquals(pathProblem("a/./b"), undefined);
  assertEquals(pathProblem("/etc/shadow"), "it is absolute");
  assertEquals(pathProblem("a/../../b"), 'it contains ".."');
  assertEquals(pathProblem(".."), 'it contains ".."');
  assertEquals(pathProblem("a\0b"), "it contains a NUL byte");
  assertEquals(pathProblem(""), "it is empty");
  assertMatch(pathProblem("a".repeat(5000))!, /longer than 4096/);
});

Deno.test("confine: link targets resolve lexically from the link's directory", () => {
  assertEquals(linkTargetProblem("a/b/l", "../c", { absolute: "refuse" }), undefined);
  assertMatch(linkTargetProblem("a/l", "../../x", { absolute: "refuse" })!, /points outside/);
  assertMatch(linkTargetProblem("l", "/etc", { absolute: "refuse" })!, /is absolute/);
  assertEquals(linkTargetProblem("l", "/bin/busybox", { absolute: "root" }), undefined);
  assertMatch(linkTargetProblem("l", "/../x", { absolute: "root" })!, /points outside/);
});

Deno.test("confine: isDnsLabel", () => {
  for (const ok of ["app", "a-1", "0"]) assert(isDnsLabel(ok), ok);
  for (const bad of ["", "A", "a/b", "../x", "a\0", "-a", "a".repeat(64), 5]) {
    assert(!isDnsLabel(bad), String(bad));
  }
});

Deno.test("confine: MemberChecker refuses a member written through an earlier symlink", () => {
  const c = new MemberChecker({ what: "test", symlinks: "inside" });
  assertEquals(c.check({ name: "./d/", type: "dir" }), "d");
  c.check({ name: "d/l", type: "symlink", linkname: "/etc" });
  const err = assertThrows(() => c.check({ name: "d/l/passwd", type: "file" }), ConfinementError);
  assertEquals(
    err.message,
    'Refusing member "d/l/passwd" of test: "d/l" is a symbolic link earlier in the archive',
  );
});

Deno.test("confine: resolveInside never follows a symlink and creates parents", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/root`);
    await Deno.mkdir(`${dir}/outside`);
    await Deno.symlink(`${dir}/outside`, `${dir}/root/l`);
    assertEquals(
      await resolveInside(`${dir}/root`, "a/b/c", { createParents: true }),
      `${dir}/root/a/b/c`,
    );
    assert((await Deno.lstat(`${dir}/root/a/b`)).isDirectory);
    const err = await assertRejects(
      () => resolveInside(`${dir}/root`, "l/x", { createParents: true }),
      ConfinementError,
    );
    assertEquals(err.message, 'Refusing path "l/x": "l" is a symbolic link (never followed)');
    assertEquals([...Deno.readDirSync(`${dir}/outside`)], []);
    // The last segment may itself be a link: the caller lstat()s it, nothing follows it here.
    assertEquals(await resolveInside(`${dir}/root`, "l"), `${dir}/root/l`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("confine: boundedInflate stops a gzip bomb; readBounded stops an endless stream", async () => {
  const zeros = new Uint8Array(16 << 20);
  const gz = new Uint8Array(
    await new Response(new Blob([zeros]).stream().pipeThrough(new CompressionStream("gzip")))
      .arrayBuffer(),
  );
  const out = boundedInflate(
    new Blob([gz]).stream(),
    (s) =>
      s.pipeThrough(new DecompressionStream("gzip") as TransformStream<Uint8Array, Uint8Array>),
    { what: "bomb", maxBytes: 4 << 20 },
  );
  const err = await assertRejects(() => new Response(out).arrayBuffer(), ConfinementError);
  assertEquals(err.message, "Refusing bomb: it decompresses to more than 4194304 bytes");
  const endless = new ReadableStream<Uint8Array>({ pull: (c) => c.enqueue(new Uint8Array(4096)) });
  await assertRejects(() => readBounded(endless, 1 << 20, "doc"), ConfinementError, "larger than");
});
