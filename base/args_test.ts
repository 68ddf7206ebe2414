import { assert, assertEquals, assertThrows } from "@std/assert";
import { parseArgs, parseCommandArgs } from "./args.ts";

const SPEC = {
  known: ["namespace", "wait", "agent", "listen"],
  booleans: ["wait"],
  multiple: ["agent"],
  aliases: { n: "namespace" },
};

Deno.test("parseArgs: values, =values, aliases, booleans and positionals", () => {
  const a = parseArgs(["pod", "-n", "shop", "--listen=0.0.0.0:1", "--wait", "x"], SPEC);
  assertEquals(a.positional, ["pod", "x"]);
  assertEquals(a.flags, { namespace: "shop", listen: "0.0.0.0:1", wait: "true" });
  assertEquals(parseArgs(["--wait=false"], SPEC).flags.wait, "false");
});

Deno.test("parseArgs: a repeated flag keeps every value in lists, the last in flags", () => {
  const a = parseArgs(["--agent", "a=1", "--agent=b=2", "--listen", "l"], SPEC);
  assertEquals(a.lists, { agent: ["a=1", "b=2"] });
  assertEquals(a.flags.agent, "b=2");
  assertEquals(parseArgs([], SPEC).lists, {});
});

Deno.test("parseArgs: unknown flags and missing values are errors that name the flag", () => {
  assertThrows(
    () => parseArgs(["--nope"], SPEC),
    Error,
    'Unknown flag "--nope" (known: --namespace',
  );
  assertThrows(() => parseArgs(["--listen"], SPEC), Error, 'Flag "--listen" needs a value');
});

Deno.test("parseCommandArgs: --help exits 0, a bad flag exits 2, else the arguments", () => {
  const spec = { known: ["namespace", "help"], booleans: ["help"], aliases: { n: "namespace" } };
  const quiet = (fn: () => void) => {
    const [log, error] = [console.log, console.error];
    console.log = console.error = () => {};
    try {
      fn();
    } finally {
      [console.log, console.error] = [log, error];
    }
  };
  quiet(() => {
    assertEquals(parseCommandArgs(["--help"], spec, "usage"), { exit: 0 });
    assertEquals(parseCommandArgs(["--nope"], spec, "usage"), { exit: 2 });
  });
  const ok = parseCommandArgs(["-n", "prod", "pod"], spec, "usage");
  assert("args" in ok);
  assertEquals(ok.args.flags.namespace, "prod");
  assertEquals(ok.args.positional, ["pod"]);
});
