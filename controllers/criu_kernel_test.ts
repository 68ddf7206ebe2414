import { assertEquals, assertStringIncludes } from "@std/assert";
import { criuKernelProblem, kernelNumber } from "./criu_kernel.ts";

Deno.test("criu_kernel: CRIU < 4.2 on kernel >= 6.16 is refused, naming both versions and the fix", () => {
  const p = criuKernelProblem("4.1.1", "6.18.0-1-amd64");
  assertStringIncludes(p!, "CRIU 4.1.1");
  assertStringIncludes(p!, "kernel 6.18.0-1-amd64");
  assertStringIncludes(p!, "TCP or UDP sockets");
  assertStringIncludes(p!, "install CRIU >= 4.2");
  assertStringIncludes(criuKernelProblem("3.17", "6.16.0")!, "CRIU 3.17");
  assertStringIncludes(criuKernelProblem("4.1", "6.16-rc1")!, "kernel 6.16-rc1");
});

Deno.test("criu_kernel: fixed CRIU, older kernels and unknown versions pass", () => {
  assertEquals(criuKernelProblem("4.2", "6.18.0"), undefined);
  assertEquals(criuKernelProblem("4.2.1", "6.18.0-1-amd64"), undefined);
  assertEquals(criuKernelProblem("4.1.1", "6.15.9"), undefined);
  assertEquals(criuKernelProblem("4.1.1", "6.1.0-35-amd64"), undefined);
  assertEquals(criuKernelProblem(undefined, "6.18.0"), undefined);
  assertEquals(criuKernelProblem("4.1.1", undefined), undefined);
  assertEquals(criuKernelProblem("4.1.1", ""), undefined);
  assertEquals(criuKernelProblem("unknown", "6.18.0"), undefined);
  assertEquals(criuKernelProblem("4.1.1", "garbage"), undefined);
});

Deno.test("criu_kernel: kernelNumber takes the leading release number", () => {
  assertEquals(kernelNumber("6.18.0-1-amd64"), "6.18.0");
  assertEquals(kernelNumber("6.16"), "6.16");
  assertEquals(kernelNumber("5.15.0+"), "5.15.0");
  assertEquals(kernelNumber("x"), undefined);
});
