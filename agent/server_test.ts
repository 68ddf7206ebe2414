import { assert, assertEquals, assertMatch, assertRejects } from "@std/assert";
import * as grpc from "@grpc/grpc-js";
import { Buffer } from "node:buffer";
import { agentService } from "../contract/proto.ts";
import { createLocalStore } from "../storage/mod.ts";
import {
  clientWith,
  FakeDriver,
  makeTestCerts,
  startTestServer,
  type TestCerts,
} from "../testing/agent.ts";
import type { AgentServer } from "./server.ts";
import { hostArchitecture } from "../oci/platform.ts";
import type { ResolvedClass } from "./pipeline.ts";
import { CriuFailureError } from "./runtime/criu_log.ts";
import type { ContainerRef } from "./runtime/driver.ts";
import { Logger } from "../base/log.ts";
import { encodePagemap, tarFileEntries } from "../archive/mod.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

function localClass(dir: string): () => Promise<ResolvedClass> {
  return () => Promise.resolve({ name: "local-test", store: createLocalStore({ path: dir }) });
}

/** What a test gets from {@linkcode withAgent}. */
interface AgentFixture {
  certs: TestCerts;
  storeDir: string;
  stateDir: string;
  address: string;
  server: AgentServer;
  driver: FakeDriver;
}

/**
 * Runs `fn` against an agent server with mutual TLS, a fake driver and a
 * local store (or the class `resolveClass` makes of the store directory),
 * then stops it and removes its files.
 */
async function withAgent(
  setup: {
    driver?: FakeDriver;
    resolveClass?: (storeDir: string) => () => Promise<ResolvedClass>;
  },
  fn: (t: AgentFixture) => Promise<void>,
): Promise<void> {
  const certs = await makeTestCerts();
  const storeDir = await Deno.makeTempDir();
  const driver = setup.driver ?? new FakeDriver();
  const { server, stateDir, address } = await startTestServer(certs, {
    driver,
    resolveClass: (setup.resolveClass ?? localClass)(storeDir),
  });
  try {
    await fn({ certs, storeDir, stateDir, address, server, driver });
  } finally {
    await server.close();
    for (const d of [certs.dir, storeDir, stateDir]) await Deno.remove(d, { recursive: true });
  }
}

Deno.test({
  name: "agent mTLS: the controller's certificate is accepted; Health answers",
  ...opts,
  fn: () =>
    withAgent({}, async ({ address, certs }) => {
      const c = await clientWith(address, certs.controller);
      try {
        const h = await c.health();
        assertEquals(h.status, "SERVING");
        assertEquals(h.nodeName, "test-node");
        assertEquals(h.runtime, "fake");
        // What PodRestore's compatibility checks ask of the node.
        assertEquals(h.architecture, hostArchitecture());
        assertMatch(h.criuVersion, /^\d+\.\d+/, "the node's CRIU version (criu on PATH)");
        assertEquals(h.kernelVersion, Deno.osRelease(), "the node's kernel (uname -r)");
      } finally {
        c.close();
      }
    }),
});

Deno.test({
  name: "agent mTLS: refused without a certificate, with a foreign CA, with a wrong identity",
  ...opts,
  fn: () =>
    withAgent({}, async ({ address, certs, driver, server }) => {
      // 1. No client certificate at all: the TLS handshake is refused.
      const Service = agentService();
      const noCert = new Service(
        address,
        grpc.credentials.createSsl(Buffer.from(await Deno.readFile(certs.server.ca))),
        { "grpc.ssl_target_name_override": "lpm-agent" },
      );
      const noCertErr = await new Promise<grpc.ServiceError>((resolve) =>
        // deno-lint-ignore no-explicit-any
        (noCert as any).Health(
          {},
          { deadline: Date.now() + 5000 },
          (e: grpc.ServiceError) => resolve(e),
        )
      );
      noCert.close();
      assert(noCertErr, "a client without a certificate got an answer");
      assertEquals(noCertErr.code, grpc.status.UNAVAILABLE, noCertErr.message);

      // 2. A certificate from another CA (same CN): the chain does not verify.
      const foreign = await clientWith(address, certs.foreign);
      const e2 = await assertRejects(() => foreign.health());
      foreign.close();
      assertEquals((e2 as { code?: number }).code, grpc.status.UNAVAILABLE, String(e2));

      // 3. A valid chain with the wrong identity: TLS passes, the call is denied.
      const intruder = await clientWith(address, certs.wrongIdentity);
      const e3 = await assertRejects(() =>
        intruder.checkpoint({
          operationId: "op-intruder",
          namespace: "default",
          pod: "p",
          container: "c",
          storageClass: { name: "x" },
        })
      );
      const e3b = await assertRejects(() => intruder.health());
      intruder.close();
      assertEquals((e3 as { code?: number }).code, grpc.status.PERMISSION_DENIED);
      assertEquals((e3b as { code?: number }).code, grpc.status.PERMISSION_DENIED);
      assertMatch((e3 as Error).message, /CN "intruder" is not allowed/);
      assertEquals(driver.calls.length, 0, "a refused client made the driver run");
      assertEquals(server.operations.list().length, 0);
    }),
});

Deno.test({
  name: "agent: the same Checkpoint request twice makes one operation and one checkpoint",
  ...opts,
  fn: () => {
    const driver = new FakeDriver(256 * 1024);
    driver.delayMs = 200;
    return withAgent({ driver }, async ({ address, certs, storeDir, server }) => {
      const c = await clientWith(address, certs.controller);
      try {
        const req = {
          operationId: "op-idem-1",
          namespace: "default",
          pod: "counter",
          container: "app",
          storageClass: { name: "local-test" },
          leaveRunning: true,
        };
        // Concurrent duplicates and a later retry.
        const [a, b] = await Promise.all([c.checkpoint(req), c.checkpoint(req)]);
        assertEquals(a.id, "op-idem-1");
        assertEquals(b.id, "op-idem-1");
        let last;
        for await (const op of c.watchOperation("op-idem-1")) last = op;
        assertEquals(last?.phase, "Succeeded", last?.message);
        const again = await c.checkpoint(req);
        assertEquals(again.phase, "Succeeded");
        assertEquals(again.result?.archive?.sha256, last?.result?.archive?.sha256);
        assertEquals(driver.calls.length, 1, "the driver ran more than once");
        assertEquals(server.operations.list().length, 1);
        // One archive (and its metadata) in the store.
        const store = createLocalStore({ path: storeDir });
        const objs = [];
        for await (const o of store.list("default/counter/")) objs.push(o.key);
        assertEquals(objs.sort(), [
          "default/counter/op-idem-1/app.checkpoint.json",
          "default/counter/op-idem-1/app.tar",
        ]);
        assertEquals(last?.result?.archive?.size, 256 * 1024);
        assertEquals(last?.result?.criuStats?.frozenTime, 7);
        // A different request under the same id is refused.
        const conflict = await assertRejects(() => c.checkpoint({ ...req, container: "other" }));
        assertMatch((conflict as Error).message, /already exists with different parameters/);
        assertEquals(driver.calls.length, 1);
        // Local cleanup of a finished operation.
        const del = await c.deleteCheckpoint("op-idem-1");
        assertEquals(del.bytesFreed, 0, "the pipeline already removed the local archive");
        await assertRejects(() => c.getOperation("op-idem-1"), Error, "not found");
      } finally {
        c.close();
      }
    });
  },
});

Deno.test({
  name: "agent: DeleteCheckpoint with deleteStored removes the archive and metadata from a " +
    "node-local store",
  ...opts,
  fn: () =>
    withAgent({}, async ({ address, certs, storeDir }) => {
      const c = await clientWith(address, certs.controller);
      try {
        const req = {
          operationId: "op-del-1",
          namespace: "default",
          pod: "counter",
          container: "app",
          storageClass: { name: "local-test" },
          leaveRunning: true,
        };
        await c.checkpoint(req);
        let last;
        for await (const op of c.watchOperation("op-del-1")) last = op;
        assertEquals(last?.phase, "Succeeded", last?.message);
        const store = createLocalStore({ path: storeDir });
        const keys = async () => (await Array.fromAsync(store.list("default/"))).map((o) => o.key);
        assertEquals((await keys()).length, 2);
        const del = await c.deleteCheckpoint("op-del-1", { deleteStored: true });
        assertEquals(del.bytesFreed, last!.result!.archive!.size);
        assertEquals(await keys(), []);
        await assertRejects(() => c.getOperation("op-del-1"), Error, "not found");
      } finally {
        c.close();
      }
    }),
});

Deno.test({
  name: "agent: a failing store publishes nothing and the operation fails with a clear message",
  ...opts,
  fn: () =>
    withAgent({
      resolveClass: (storeDir) => () => {
        const store = createLocalStore({ path: storeDir });
        // A store whose metadata write fails after the archive was stored.
        return Promise.resolve({
          name: "flaky",
          store: {
            ...store,
            provider: store.provider,
            location: store.location,
            put: (key, body, o) =>
              key.endsWith(".json")
                ? Promise.reject(new Error("disk full"))
                : store.put(key, body, o),
            stat: (k) => store.stat(k),
            list: (p) => store.list(p),
            delete: (k) => store.delete(k),
            get: (k) => store.get(k),
            cleanDebris: (o) => store.cleanDebris(o),
          },
        });
      },
    }, async ({ address, certs, storeDir, stateDir }) => {
      const c = await clientWith(address, certs.controller);
      try {
        await c.checkpoint({
          operationId: "op-fail-1",
          namespace: "default",
          pod: "p",
          container: "c",
          storageClass: { name: "flaky" },
          keepArchiveOnFailure: true,
        });
        let last;
        for await (const op of c.watchOperation("op-fail-1")) last = op;
        assertEquals(last?.phase, "Failed");
        assertMatch(last!.message, /disk full; nothing was published, the archive is kept at/);
        const store = createLocalStore({ path: storeDir });
        for await (const o of store.list("default/")) throw new Error(`left behind: ${o.key}`);
        const kept = `${stateDir}/kept/op-fail-1.tar`;
        assert((await Deno.stat(kept)).size > 0);
        const del = await c.deleteCheckpoint("op-fail-1");
        assertEquals(del.bytesFreed, 64 * 1024);
        await assertRejects(() => Deno.stat(kept));
      } finally {
        c.close();
      }
    }),
});

Deno.test({
  name: "agent mTLS rotation: a changed client CA file is picked up without a restart",
  ...opts,
  async fn() {
    const certs = await makeTestCerts();
    const storeDir = await Deno.makeTempDir();
    // The server reads its files from a directory we rewrite, as a Secret volume update would.
    const tlsDir = await Deno.makeTempDir();
    const files = { cert: `${tlsDir}/tls.crt`, key: `${tlsDir}/tls.key`, ca: `${tlsDir}/ca.crt` };
    await Deno.copyFile(certs.server.cert, files.cert);
    await Deno.copyFile(certs.server.key, files.key);
    await Deno.copyFile(certs.server.ca, files.ca);
    const { Pki } = await import("../localenv/pki.ts");
    const newCa = await Pki.create(`${certs.dir}/new-ca`, "rotated-ca");
    const newCtl = await newCa.issue("controller", { cn: "lpm-controller", usage: ["client"] });
    const newClientFiles = { cert: newCtl.cert, key: newCtl.key, ca: certs.server.ca };
    const { startAgentServer } = await import("./server.ts");
    const stateDir = await Deno.makeTempDir();
    const reloads: string[] = [];
    const server = await startAgentServer({
      nodeName: "rot",
      listen: "127.0.0.1:0",
      security: { mode: "mtls", files, allowedClients: ["lpm-controller"], watch: true },
      stateDir,
      driver: new FakeDriver(),
      resolveClass: localClass(storeDir),
      log: new Logger({}, "info", (line) => void reloads.push(JSON.parse(line).msg)),
    });
    const address = `127.0.0.1:${server.port}`;
    try {
      const before = await clientWith(address, newClientFiles);
      await assertRejects(() => before.health());
      before.close();
      // Rotate: the client CA is now the new CA (written atomically, like the kubelet does).
      await Deno.copyFile(newCa.ca.cert, `${files.ca}.new`);
      await Deno.rename(`${files.ca}.new`, files.ca);
      const { waitFor } = await import("../localenv/mod.ts");
      await waitFor(() => reloads.includes("TLS certificates reloaded"), {
        what: "the TLS reload",
        timeoutMs: 10_000,
      });
      const after = await clientWith(address, newClientFiles);
      assertEquals((await after.health()).status, "SERVING");
      after.close();
      const old = await clientWith(address, certs.controller);
      await assertRejects(() => old.health());
      old.close();
    } finally {
      await server.close();
      for (const d of [certs.dir, storeDir, stateDir, tlsDir]) {
        await Deno.remove(d, { recursive: true });
      }
    }
  },
});

/** A driver whose dump fails inside CRIU, with the log the runtime left. */
class CriuFailingDriver extends FakeDriver {
  override checkpoint(_ref: ContainerRef): Promise<never> {
    return Promise.reject(
      new CriuFailureError('Cannot checkpoint: CRIU failed: "Error (criu/x.c:1): boom"', {
        path: "/run/containerd/t/criu-dump.log",
        content: "(0.1) Info\n(0.2) Error (criu/x.c:1): boom\n",
        truncated: false,
      }),
    );
  }
}

Deno.test({
  name: "agent: a CRIU failure keeps the log with the operation; GetOperationLog returns it",
  ...opts,
  fn: () =>
    withAgent({ driver: new CriuFailingDriver() }, async ({ address, certs, stateDir }) => {
      const c = await clientWith(address, certs.controller);
      try {
        await c.checkpoint({
          operationId: "op-criu-1",
          namespace: "default",
          pod: "p",
          container: "c",
          storageClass: { name: "local-test" },
        });
        let last;
        for await (const op of c.watchOperation("op-criu-1")) last = op;
        assertEquals(last?.phase, "Failed");
        assertMatch(last!.message, /failed in the fake driver: .*Error \(criu\/x\.c:1\): boom/);
        const log = await c.getOperationLog("op-criu-1");
        assertEquals(log.sourcePath, "/run/containerd/t/criu-dump.log");
        assertMatch(log.content, /Error \(criu\/x\.c:1\): boom/);
        assertEquals(log.truncated, false);
        const unknown = await assertRejects(() => c.getOperationLog("op-none"));
        assertEquals((unknown as { code?: number }).code, grpc.status.NOT_FOUND);
        await c.deleteCheckpoint("op-criu-1");
        const gone = await Deno.stat(`${stateDir}/logs/op-criu-1.json`).catch(() => undefined);
        assertEquals(gone, undefined, "DeleteCheckpoint removes the kept log");
      } finally {
        c.close();
      }
    }),
});

Deno.test({
  name: "agent: an operation without a kept log answers NOT_FOUND on GetOperationLog",
  ...opts,
  fn: () =>
    withAgent({}, async ({ address, certs }) => {
      const c = await clientWith(address, certs.controller);
      try {
        await c.checkpoint({
          operationId: "op-ok-log",
          namespace: "default",
          pod: "p",
          container: "c",
          storageClass: { name: "local-test" },
        });
        for await (const _ of c.watchOperation("op-ok-log"));
        const e = await assertRejects(() => c.getOperationLog("op-ok-log"));
        assertEquals((e as { code?: number }).code, grpc.status.NOT_FOUND);
        assertMatch(String(e), /has no kept log/);
      } finally {
        c.close();
      }
    }),
});

Deno.test({
  name: "agent pre-copy: refused without the node's runc; a round or a Checkpoint naming an " +
    "unknown or failed pre-copy is refused by field, before anything is dumped",
  ...opts,
  fn: async () => {
    const req = {
      operationId: "pc-1",
      namespace: "default",
      pod: "counter",
      container: "app",
      storageClass: { name: "local-test" },
      maxRounds: 3,
    };
    // No --runtime-endpoint (no containerd): no pre-copy at all.
    await withAgent({}, async ({ address, certs }) => {
      const c = await clientWith(address, certs.controller);
      try {
        const e = await assertRejects(() => c.preCopy(req));
        assertMatch((e as Error).message, /cannot pre-copy/);
      } finally {
        c.close();
      }
    });
    const certs = await makeTestCerts();
    const driver = new FakeDriver();
    const stateDir0 = await Deno.makeTempDir({ prefix: "lpm-agent-store-" });
    const { server, stateDir, address } = await startTestServer(certs, {
      driver,
      resolveClass: localClass(stateDir0),
      preCopy: {
        runc: "/nonexistent/runc",
        runcRoot: "/nonexistent",
        pushParent: () => Promise.reject(new Error("not reached")),
        containerId: () => Promise.resolve("abc"),
      },
    });
    const c = await clientWith(address, certs.controller);
    try {
      const limit = await assertRejects(() => c.preCopy({ ...req, maxRounds: 17 }));
      assertMatch((limit as Error).message, /Field "max_rounds" is 17: it must be 1 to 16/);
      const unknown = await assertRejects(() =>
        c.preCopy({ ...req, operationId: "pc-2", previousOperationId: "no-such-round" })
      );
      assertMatch(
        (unknown as Error).message,
        /Field "previous_operation_id" "no-such-round": no pre-copy operation/,
      );
      // A class without a registry fails the operation (the container is never dumped).
      await c.preCopy(req);
      let last;
      for await (const op of c.watchOperation("pc-1")) last = op;
      assertEquals(last?.phase, "Failed");
      assertMatch(last?.message ?? "", /class "local-test" has no registry/);
      const checkpoint = {
        operationId: "cp-1",
        namespace: "default",
        pod: "counter",
        container: "app",
        storageClass: { name: "local-test" },
        leaveRunning: true,
      };
      const failed = await assertRejects(() =>
        c.preCopy({ ...req, operationId: "pc-3", previousOperationId: "pc-1" })
      );
      assertMatch(
        (failed as Error).message,
        /"previous_operation_id" "pc-1": the pre-copy is Failed/,
      );
      for (
        const [id, want] of [
          ["no-such-op", /"pre_copy_operation_id" "no-such-op": no pre-copy operation/],
          ["pc-1", /"pre_copy_operation_id" "pc-1": the pre-copy is Failed/],
        ]
      ) {
        const e = await assertRejects(() =>
          c.checkpoint({ ...checkpoint, preCopyOperationId: id as string })
        );
        assertMatch((e as Error).message, want as RegExp);
      }
      assertEquals(driver.calls.length, 0, "nothing was dumped");
    } finally {
      c.close();
      await server.close();
      for (const d of [certs.dir, stateDir, stateDir0]) {
        await Deno.remove(d, { recursive: true }).catch(() => {});
      }
    }
  },
});

/** A fake runc: `checkpoint ... --image-path DIR ...` copies the dump named by `$dir/next` into DIR. */
async function fakeRunc(dir: string): Promise<string> {
  const path = `${dir}/runc`;
  await Deno.writeTextFile(
    path,
    `#!/bin/sh
while [ "$#" -gt 0 ]; do [ "$1" = "--image-path" ] && out="$2"; shift; done
cp "${dir}/$(cat "${dir}/next")"/* "$out"/
`,
  );
  await Deno.chmod(path, 0o755);
  return path;
}

/** A CRIU dump of one process: 4 pages at 0x10000, page i filled with fill(i). */
async function fakeDump(dir: string, fill: (i: number) => number): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  const magic = new Uint8Array([0x19, 0x43, 0x56, 0x54, 0x25, 0x40, 0x08, 0x56]);
  const pm = { magic, pagesId: 1, entries: [{ vaddr: 0x10000, nrPages: 4, flags: 4 }] };
  await Deno.writeFile(`${dir}/pagemap-1.img`, encodePagemap(pm));
  const pages = new Uint8Array(4 * 4096);
  for (let i = 0; i < 4; i++) pages.fill(fill(i), i * 4096, (i + 1) * 4096);
  await Deno.writeFile(`${dir}/pages-1.img`, pages);
  await Deno.writeFile(`${dir}/inventory.img`, new Uint8Array(8));
}

Deno.test({
  name: "agent pre-copy: round 2 sends only the changed pages above round 1's layer, releases " +
    "round 1's dump, and a retry of round 2 finds it",
  ...opts,
  fn: async () => {
    const certs = await makeTestCerts();
    const work = await Deno.makeTempDir({ prefix: "lpm-agent-pc-" });
    await fakeDump(`${work}/d1`, (i) => i + 1);
    await fakeDump(`${work}/d2`, (i) => (i === 3 ? 99 : i + 1));
    const pushed: { layer: string; base: number }[] = [];
    const { server, stateDir, address } = await startTestServer(certs, {
      driver: new FakeDriver(),
      resolveClass: () =>
        Promise.resolve({
          name: "c",
          store: createLocalStore({ path: `${work}/store` }),
          registry: { repository: "registry.test/lpm/x" },
        }),
      preCopy: {
        runc: await fakeRunc(work),
        runcRoot: "/nonexistent",
        containerId: () => Promise.resolve("abc"),
        pushParent: async (layerPath, o) => {
          const names: string[] = [];
          for await (const e of await tarFileEntries(layerPath)) names.push(e.name);
          pushed.push({ layer: names.join(","), base: o.baseLayers.length });
          const digest = `sha256:${String(pushed.length).padStart(64, "0")}`;
          return { reference: `registry.test/lpm/x@${digest}`, digest, layer: { digest, size: 1 } };
        },
      },
    });
    const c = await clientWith(address, certs.controller);
    const req = {
      namespace: "default",
      pod: "p",
      container: "app",
      storageClass: { name: "c" },
      maxRounds: 3,
    };
    const finish = async (id: string) => {
      let last;
      for await (const op of c.watchOperation(id)) last = op;
      assertEquals(last?.phase, "Succeeded", last?.message);
      return last!;
    };
    try {
      await Deno.writeTextFile(`${work}/next`, "d1");
      await c.preCopy({ ...req, operationId: "r1" });
      const r1 = await finish("r1");
      assertEquals([r1.preCopy?.round?.round, r1.preCopy?.round?.dirtyPages], [1, 4]);
      await Deno.writeTextFile(`${work}/next`, "d2");
      await c.preCopy({ ...req, operationId: "r2", previousOperationId: "r1" });
      const r2 = await finish("r2");
      assertEquals([r2.preCopy?.round?.round, r2.preCopy?.round?.dirtyPages], [2, 1]);
      assertEquals(r2.preCopy?.layers?.length, 2);
      // Round 1 of at most 3 sits 3 parents deep, round 2 two; round 2 above round 1's layer.
      assertMatch(pushed[0].layer, /checkpoint\/parent\/parent\/parent\/pages-1\.img/);
      assertMatch(pushed[1].layer, /checkpoint\/parent\/parent\/pages-1\.img/);
      assertEquals(pushed.map((p) => p.base), [0, 1]);
      const r1Dir = `${stateDir}/work/r1`;
      assertEquals(await Deno.stat(r1Dir).then(() => true, () => false), false, "round 1 released");
      // A retry of round 2 (its reply lost) finds it, though round 1's dump is gone.
      const again = await c.preCopy({ ...req, operationId: "r2", previousOperationId: "r1" });
      assertEquals(again.phase, "Succeeded");
      // A new round on the released round 1 is refused by name.
      const e = await assertRejects(() =>
        c.preCopy({ ...req, operationId: "r2b", previousOperationId: "r1" })
      );
      assertMatch((e as Error).message, /"previous_operation_id" "r1": its dump is no longer/);
    } finally {
      c.close();
      await server.close();
      for (const d of [certs.dir, stateDir, work]) {
        await Deno.remove(d, { recursive: true }).catch(() => {});
      }
    }
  },
});
