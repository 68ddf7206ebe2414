/**
 * The lpm.my.domain/v1 CRDs against the real API server: they are
 * Established with the right names, scope, short names and categories; every
 * example and every field of the full samples is accepted (and status fields
 * survive pruning); `kubectl get lpm` and the printer columns work; and
 * invalid objects are rejected with an error naming the field, and not stored.
 * @module
 */
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { needing } from "../testing/env.ts";
import { isDeepStrictEqual } from "node:util";
import { parseAllDocuments } from "yaml";
import { kubectl, startEnvironment, waitFor } from "../localenv/mod.ts";
import { FULL_OBJECTS, KIND_DEFINITIONS, KINDS, PROVIDERS } from "../api/mod.ts";

const test = needing({ starts: ["kube"] });

/**
 * A private API server with the CRDs: the shared environment runs lpm's
 * controller, which would (rightly) act on the objects these tests store.
 */
async function privateKube(): Promise<
  { kubeconfig: string; [Symbol.asyncDispose](): Promise<void> }
> {
  const env = await startEnvironment({ parts: ["kube"] });
  return { kubeconfig: env.info.kube!.kubeconfig, [Symbol.asyncDispose]: () => env.stop() };
}

const EXAMPLES = new URL("../examples/", import.meta.url).pathname;

type Obj = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [k: string]: unknown };
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
  [k: string]: unknown;
};

function uid(): string {
  return crypto.randomUUID().slice(0, 8);
}

/** Runs `fn` with a fresh namespace; removes it and `clusterObjects` afterwards. */
async function withNamespace(
  kc: string,
  prefix: string,
  fn: (ns: string, id: string, cluster: string[]) => Promise<void>,
): Promise<void> {
  const id = uid();
  const ns = `${prefix}-${id}`;
  const cluster: string[] = [];
  await kubectl(kc, ["create", "namespace", ns]);
  // Pods are refused until the ServiceAccount controller has made "default".
  await waitFor(
    () => kubectl(kc, ["-n", ns, "get", "serviceaccount", "default"]).then(() => true, () => false),
    { what: `ServiceAccount "${ns}/default"`, timeoutMs: 30_000 },
  );
  try {
    await fn(ns, id, cluster);
  } finally {
    for (const c of cluster) {
      await kubectl(kc, ["delete", "--ignore-not-found", "--wait=false", c]).catch(() => {});
    }
    await kubectl(kc, ["delete", "namespace", ns, "--wait=false"]).catch(() => {});
  }
}

/** kubectl that must fail: returns its error text. */
async function kubectlFails(kc: string, args: string[], stdin?: string): Promise<string> {
  try {
    const out = await kubectl(kc, args, stdin);
    throw new Error(`Expected kubectl ${args.join(" ")} to fail, it printed: ${out}`);
  } catch (err) {
    const msg = (err as Error).message;
    if (msg.startsWith("Expected kubectl")) throw err;
    return msg;
  }
}

const GROUP_OF = (kind: string) =>
  `${Object.values(KINDS).find((k) => k.kind === kind)!.plural}.lpm.my.domain`;

test("api crds: every CRD is Established with its scope, short name and category lpm", async () => {
  await using k = await privateKube();
  const kc = k.kubeconfig;
  for (const def of KIND_DEFINITIONS) {
    const crd = JSON.parse(
      await kubectl(kc, ["get", "crd", `${def.plural}.lpm.my.domain`, "-o", "json"]),
    );
    const established = crd.status.conditions.find((c: { type: string }) =>
      c.type === "Established"
    );
    assertEquals(established?.status, "True", `${def.kind} not Established`);
    assertEquals(crd.spec.scope, def.namespaced ? "Namespaced" : "Cluster");
    assertEquals(crd.status.acceptedNames.shortNames, def.shortNames);
    assertEquals(crd.status.acceptedNames.categories, ["lpm"]);
    assertEquals(crd.spec.versions.map((v: { name: string }) => v.name), ["v1"]);
  }
  const resources = await kubectl(kc, ["api-resources", "--api-group=lpm.my.domain", "-o", "wide"]);
  for (const def of KIND_DEFINITIONS) {
    assert(
      new RegExp(
        `^${def.plural}\\s+${
          def.shortNames[0]
        }\\s+lpm.my.domain/v1\\s+${def.namespaced}\\s+${def.kind}\\s.*lpm`,
        "m",
      )
        .test(resources),
      `api-resources lacks ${def.plural}: ${resources}`,
    );
  }
});

/**
 * The objects of an example file, made unique for this test: namespaced
 * objects go to `ns` (lpm-system's Namespace object is dropped and Secret
 * references follow), cluster-scoped lpm objects get a `-<id>` suffix.
 */
async function exampleObjects(file: string, ns: string, id: string): Promise<Obj[]> {
  const text = await Deno.readTextFile(`${EXAMPLES}${file}`);
  const out: Obj[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length) throw new Error(`Cannot parse "${file}": ${doc.errors[0].message}`);
    const o = doc.toJS() as Obj;
    if (o.kind === "Namespace") continue;
    if (o.kind === "CheckpointStorageClass") {
      o.metadata.name = `${o.metadata.name}-${id}`;
      const ref = o.spec?.credentialsSecretRef as { namespace?: string } | undefined;
      if (ref) ref.namespace = ns;
    } else {
      o.metadata.namespace = ns;
    }
    out.push(o);
  }
  return out;
}

test("api crds: every example applies, kubectl get lpm lists them, printer columns show", async () => {
  await using k = await privateKube();
  const kc = k.kubeconfig;
  await withNamespace(kc, "api-examples", async (ns, id, cluster) => {
    const files = [...Deno.readDirSync(EXAMPLES)].map((e) => e.name).filter((n) =>
      n.endsWith(".yaml")
    ).sort();
    for (
      const want of [
        "counter-pod.yaml",
        "podcheckpoint.yaml",
        "podmigration.yaml",
        "podrestore.yaml",
        "storageclass-local.yaml",
        "storageclass-minio.yaml",
        "storageclass-pvc.yaml",
        "storageclass-s3.yaml",
      ]
    ) assert(files.includes(want), `examples/${want} is missing`);
    const classes: string[] = [];
    for (const file of files) {
      const objs = await exampleObjects(file, ns, id);
      for (const o of objs) {
        if (o.kind === "CheckpointStorageClass") {
          cluster.push(`checkpointstorageclass/${o.metadata.name}`);
          classes.push(o.metadata.name);
        }
      }
      const out = await kubectl(
        kc,
        ["apply", "-f", "-"],
        JSON.stringify({
          apiVersion: "v1",
          kind: "List",
          items: objs,
        }),
      );
      assertEquals(out.trim().split("\n").length, objs.length, `${file}: ${out}`);
      // Stored for real: read each object back from the server.
      for (const o of objs) {
        const got = JSON.parse(
          await kubectl(kc, [
            "get",
            o.kind.toLowerCase(),
            o.metadata.name,
            ...(o.metadata.namespace ? ["-n", ns] : []),
            "-o",
            "json",
          ]),
        );
        assertEquals(got.metadata.name, o.metadata.name);
      }
    }
    // The original project's minimal PodMigration got the defaults.
    const pm = JSON.parse(
      await kubectl(kc, ["get", "pm", "podmigration-sample", "-n", ns, "-o", "json"]),
    );
    assertEquals(pm.spec, {
      podName: "counter",
      targetNode: "node-b",
      sourcePodPolicy: "Delete",
      timeoutSeconds: 600,
      freezeDeadlineSeconds: 120,
    });
    const pc = JSON.parse(
      await kubectl(kc, ["get", "pckpt", "counter-checkpoint", "-n", ns, "-o", "json"]),
    );
    assertEquals(pc.spec.leaveRunning, true);

    const lpm = await kubectl(kc, ["get", "lpm", "-n", ns, "-o", "name"]);
    for (
      const name of [
        "podmigration.lpm.my.domain/podmigration-sample",
        "podcheckpoint.lpm.my.domain/counter-checkpoint",
        "podrestore.lpm.my.domain/counter-restore",
        ...classes.map((c) => `checkpointstorageclass.lpm.my.domain/${c}`),
      ]
    ) assertStringIncludes(lpm, name);

    const pmTable = await kubectl(kc, ["get", "pm", "-n", ns]);
    assert(/^NAME\s+POD\s+SOURCE\s+TARGET\s+PHASE\s+AGE$/m.test(pmTable), pmTable);
    // A running lpm controller may already fill Source, Target (status.targetNode) and Phase.
    assert(/^podmigration-sample\s+counter\s+(\S+\s+)*\S+$/m.test(pmTable), pmTable);
    const cscTable = await kubectl(kc, ["get", "csc", ...classes]);
    assert(/^NAME\s+PROVIDER\s+DEFAULT\s+ENCRYPTION\s+PHASE\s+AGE$/m.test(cscTable), cscTable);
    assert(new RegExp(`^minio-${id}\\s+minio\\s+true\\s`, "m").test(cscTable), cscTable);
    assert(new RegExp(`^local-${id}\\s+local\\s+false\\s`, "m").test(cscTable), cscTable);
    const pcTable = await kubectl(kc, ["get", "pckpt", "-n", ns]);
    assert(/^NAME\s+POD\s+NODE\s+PHASE\s+AGE$/m.test(pcTable), pcTable);
    const prTable = await kubectl(kc, ["get", "prst", "-n", ns]);
    assert(/^NAME\s+POD\s+NODE\s+PHASE\s+AGE$/m.test(prTable), prTable);
    assert(/^counter-restore\s+(\S+\s+)?node-b\s+(\S+\s+)?\S+$/m.test(prTable), prTable);
  });
});

test("api crds: full objects (every field) are accepted and status survives pruning", async () => {
  await using k = await privateKube();
  const kc = k.kubeconfig;
  await withNamespace(kc, "api-full", async (ns, id, cluster) => {
    const objects: Obj[] = [];
    for (const p of PROVIDERS) {
      const o = structuredClone(FULL_OBJECTS.CheckpointStorageClass) as unknown as Obj;
      o.metadata = { name: `full-${p}-${id}` };
      o.spec!.provider = p;
      for (const q of PROVIDERS) if (q !== p) delete o.spec![q];
      objects.push(o);
      cluster.push(`checkpointstorageclass/${o.metadata.name}`);
    }
    for (const kind of ["PodMigration", "PodCheckpoint", "ContainerCheckpoint"] as const) {
      const o = structuredClone(FULL_OBJECTS[kind]) as unknown as Obj;
      o.metadata = { name: "full", namespace: ns };
      objects.push(o);
    }
    for (const source of ["image", "storage", "layout"]) {
      const o = structuredClone(FULL_OBJECTS.PodRestore) as unknown as Obj;
      o.metadata = { name: `full-${source}`, namespace: ns };
      const src = o.spec!.source as Record<string, unknown>;
      for (const k of Object.keys(src)) if (k !== source) delete src[k];
      objects.push(o);
    }
    for (const o of objects) {
      const { status, ...body } = o;
      await kubectl(kc, ["create", "-f", "-"], JSON.stringify(body));
      const target = [
        GROUP_OF(o.kind),
        o.metadata.name,
        ...(o.metadata.namespace ? ["-n", ns] : []),
      ];
      // A running lpm controller reconciles these objects too (their pod does
      // not exist) and may write its own status between our patch and read;
      // it leaves terminal phases alone, so a retry settles it.
      let got: Obj | undefined;
      for (let attempt = 0; attempt < 5; attempt++) {
        await kubectl(kc, [
          "patch",
          ...target,
          "--subresource=status",
          "--type=merge",
          "-p",
          JSON.stringify({ status }),
        ]);
        got = JSON.parse(await kubectl(kc, ["get", ...target, "-o", "json"])) as Obj;
        if (isDeepStrictEqual(got.status, status)) break;
        await new Promise((r) => setTimeout(r, 500));
      }
      got = got!;
      assertEquals(got.spec, o.spec, `${o.kind} ${o.metadata.name}: spec changed on the server`);
      assertEquals(got.status, status, `${o.kind} ${o.metadata.name}: status pruned or changed`);
    }
    const ccTable = await kubectl(kc, ["get", "cckpt", "full", "-n", ns]);
    assert(/^NAME\s+POD\s+CONTAINER\s+NODE\s+PHASE\s+IMAGE\s+AGE$/m.test(ccTable), ccTable);
    assert(
      /^full\s+counter\s+app\s+node-a\s+Succeeded\s+\S+@sha256:[0-9a-f]{64}\s/m.test(ccTable),
      ccTable,
    );
    const pmTable = await kubectl(kc, ["get", "pm", "full", "-n", ns]);
    assert(/^full\s+counter\s+node-a\s+node-b\s+Succeeded\s/m.test(pmTable), pmTable);
  });
});

interface BadCase {
  /** What is wrong. */
  what: string;
  kind: keyof typeof KINDS;
  spec: unknown;
  /** Override the object's name. */
  name?: string;
  /** Text the error must contain: the field path (and what is wrong with it). */
  error: string;
}

const pm = { podName: "counter", targetNode: "node-b" };
const s3 = { bucket: "checkpoints" };

const BAD: BadCase[] = [
  {
    what: "missing podName",
    kind: "PodMigration",
    spec: { targetNode: "node-b" },
    error: "spec.podName: Required value",
  },
  { what: "no spec at all", kind: "PodMigration", spec: undefined, error: "spec: Required value" },
  {
    what: "targetNode not a DNS name",
    kind: "PodMigration",
    spec: { ...pm, targetNode: "Node_B" },
    error: 'spec.targetNode: Invalid value: "Node_B"',
  },
  {
    what: "podName longer than 253",
    kind: "PodMigration",
    spec: { ...pm, podName: "a".repeat(254) },
    error: "spec.podName: Too long",
  },
  {
    what: "object name longer than 63",
    kind: "PodMigration",
    spec: pm,
    name: "m".repeat(64),
    error: "metadata.name: Too long",
  },
  {
    what: "timeoutSeconds below 10",
    kind: "PodMigration",
    spec: { ...pm, timeoutSeconds: 5 },
    error: "spec.timeoutSeconds: Invalid value: 5",
  },
  {
    what: "timeoutSeconds as a string",
    kind: "PodMigration",
    spec: { ...pm, timeoutSeconds: "600" },
    error: 'spec.timeoutSeconds: Invalid value: "string"',
  },
  {
    what: "unknown sourcePodPolicy",
    kind: "PodMigration",
    spec: { ...pm, sourcePodPolicy: "Orphan" },
    error: 'spec.sourcePodPolicy: Unsupported value: "Orphan"',
  },
  {
    what: "bandwidthLimit not a quantity",
    kind: "PodMigration",
    spec: { ...pm, bandwidthLimit: "fast" },
    error: "spec.bandwidthLimit: Invalid value",
  },
  {
    what: "misspelled field (targetnode)",
    kind: "PodMigration",
    spec: { podName: "counter", targetNode: "b", targetnode: "c" },
    error: 'unknown field "spec.targetnode"',
  },
  {
    what: "unknown provider",
    kind: "CheckpointStorageClass",
    spec: { provider: "nfs" },
    error: 'spec.provider: Unsupported value: "nfs"',
  },
  {
    what: "s3 without bucket",
    kind: "CheckpointStorageClass",
    spec: { provider: "s3", s3: { region: "x" } },
    error: "spec.s3.bucket: Required value",
  },
  {
    what: "provider s3 without an s3 block",
    kind: "CheckpointStorageClass",
    spec: { provider: "s3" },
    error: "spec.s3: Required value",
  },
  {
    what: "s3 with a local block",
    kind: "CheckpointStorageClass",
    spec: { provider: "s3", s3, local: { path: "/x" } },
    error: "spec.local: Forbidden",
  },
  {
    what: "minio with an s3 block",
    kind: "CheckpointStorageClass",
    spec: { provider: "minio", minio: { endpoint: "http://m:9000", ...s3 }, s3 },
    error: "spec.s3: Forbidden",
  },
  {
    what: "minio without endpoint",
    kind: "CheckpointStorageClass",
    spec: { provider: "minio", minio: s3 },
    error: "spec.minio.endpoint: Required value",
  },
  {
    what: "local with a relative path",
    kind: "CheckpointStorageClass",
    spec: { provider: "local", local: { path: "var/lib" } },
    error: "spec.local.path: Invalid value",
  },
  {
    what: "negative retention.maxCount",
    kind: "CheckpointStorageClass",
    spec: { provider: "local", local: { path: "/x" }, retention: { maxCount: -1 } },
    error: "spec.retention.maxCount: Invalid value: -1",
  },
  {
    what: "malformed retention.maxAge",
    kind: "CheckpointStorageClass",
    spec: { provider: "local", local: { path: "/x" }, retention: { maxAge: "3 days" } },
    error: 'spec.retention.maxAge: Invalid value: "3 days"',
  },
  {
    what: "default as a string",
    kind: "CheckpointStorageClass",
    spec: { provider: "local", local: { path: "/x" }, default: "yes" },
    error: "spec.default: Invalid value",
  },
  {
    what: "credentials without namespace",
    kind: "CheckpointStorageClass",
    spec: { provider: "s3", s3, credentialsSecretRef: { name: "c" } },
    error: "spec.credentialsSecretRef.namespace: Required value",
  },
  {
    what: "registry repository with spaces",
    kind: "CheckpointStorageClass",
    spec: { provider: "s3", s3, registry: { repository: "not a repo" } },
    error: "spec.registry.repository: Invalid value",
  },
  {
    what: "bucket with capitals",
    kind: "CheckpointStorageClass",
    spec: { provider: "s3", s3: { bucket: "My_Bucket" } },
    error: "spec.s3.bucket: Invalid value",
  },
  {
    what: "container name not a DNS label",
    kind: "PodCheckpoint",
    spec: { podName: "counter", containers: ["App_1"] },
    error: "spec.containers[0]: Invalid value",
  },
  {
    what: "duplicate container names",
    kind: "PodCheckpoint",
    spec: { podName: "counter", containers: ["a", "a"] },
    error: "spec.containers[1]: Duplicate value",
  },
  {
    what: "leaveRunning as a string",
    kind: "PodCheckpoint",
    spec: { podName: "counter", leaveRunning: "true" },
    error: "spec.leaveRunning: Invalid value",
  },
  {
    what: "missing containerName",
    kind: "ContainerCheckpoint",
    spec: { podName: "counter" },
    error: "spec.containerName: Required value",
  },
  {
    what: "containerName longer than 63",
    kind: "ContainerCheckpoint",
    spec: { podName: "counter", containerName: "c".repeat(64) },
    error: "spec.containerName: Too long",
  },
  {
    what: "two sources",
    kind: "PodRestore",
    spec: { source: { layout: { path: "/x" }, storage: { storageClassName: "minio", key: "k" } } },
    error: "spec.source: Invalid value",
  },
  {
    what: "no source",
    kind: "PodRestore",
    spec: { source: {} },
    error: "spec.source: Invalid value",
  },
  {
    what: "empty image references",
    kind: "PodRestore",
    spec: { source: { image: { references: [] } } },
    error: "spec.source.image.references: Invalid value",
  },
];

test(`api crds: ${BAD.length} invalid objects are rejected naming the field, and not stored`, async () => {
  await using k = await privateKube();
  const kc = k.kubeconfig;
  await withNamespace(kc, "api-bad", async (ns, id, cluster) => {
    const failures: string[] = [];
    for (const [i, c] of BAD.entries()) {
      const { kind, plural, namespaced } = KINDS[c.kind];
      const name = c.name ?? (namespaced ? `bad-${i}` : `bad-${i}-${id}`);
      if (!namespaced) cluster.push(`${plural}.lpm.my.domain/${name}`);
      const obj: Record<string, unknown> = {
        apiVersion: "lpm.my.domain/v1",
        kind,
        metadata: namespaced ? { name, namespace: ns } : { name },
      };
      if (c.spec !== undefined) obj.spec = c.spec;
      const err = await kubectlFails(kc, ["create", "-f", "-"], JSON.stringify(obj));
      if (!err.includes(c.error)) failures.push(`${c.what}: want "${c.error}" in: ${err}`);
      const get = await kubectlFails(kc, [
        "get",
        `${plural}.lpm.my.domain`,
        name,
        ...(namespaced ? ["-n", ns] : []),
      ]);
      if (!get.includes("NotFound")) failures.push(`${c.what}: stored anyway (${get})`);
    }
    assertEquals(failures, []);
  });
});

test("api crds: podName, targetNode and storageClassName of a PodMigration are immutable", async () => {
  await using k = await privateKube();
  const kc = k.kubeconfig;
  await withNamespace(kc, "api-immutable", async (ns) => {
    const base = {
      apiVersion: "lpm.my.domain/v1",
      kind: "PodMigration",
      metadata: { name: "move", namespace: ns },
      spec: { podName: "counter", targetNode: "node-b", storageClassName: "minio" },
    };
    await kubectl(kc, ["apply", "-f", "-"], JSON.stringify(base));
    const changes: [string, Record<string, unknown>, string][] = [
      ["podName", { ...base.spec, podName: "other" }, "spec.podName: Invalid value"],
      ["targetNode", { ...base.spec, targetNode: "node-c" }, "spec.targetNode: Invalid value"],
      ["storageClassName", { ...base.spec, storageClassName: "s3" }, "spec.storageClassName"],
      [
        "storageClassName removed",
        { podName: "counter", targetNode: "node-b" },
        "spec.storageClassName",
      ],
      // Optional since issue 18 (the controller chooses), yet not removable.
      [
        "targetNode removed",
        { podName: "counter", storageClassName: "minio" },
        "spec.targetNode",
      ],
    ];
    for (const [what, spec, error] of changes) {
      const err = await kubectlFails(kc, ["replace", "-f", "-"], JSON.stringify({ ...base, spec }));
      assertStringIncludes(err, error, what);
      assert(/immutable|cannot be added or removed/.test(err), `${what}: ${err}`);
    }
    // Policy fields stay editable (e.g. giving a running migration more time).
    await kubectl(kc, [
      "patch",
      "pm",
      "move",
      "-n",
      ns,
      "--type=merge",
      "-p",
      '{"spec":{"timeoutSeconds":1200,"sourcePodPolicy":"Keep"}}',
    ]);
    const got = JSON.parse(await kubectl(kc, ["get", "pm", "move", "-n", ns, "-o", "json"]));
    assertEquals(got.spec, {
      podName: "counter",
      targetNode: "node-b",
      storageClassName: "minio",
      timeoutSeconds: 1200,
      sourcePodPolicy: "Keep",
      freezeDeadlineSeconds: 120,
    });
  });
});

test("api crds: a status with an unknown phase or a bad condition is rejected", async () => {
  await using k = await privateKube();
  const kc = k.kubeconfig;
  await withNamespace(kc, "api-status", async (ns) => {
    await kubectl(
      kc,
      ["apply", "-f", "-"],
      JSON.stringify({
        apiVersion: "lpm.my.domain/v1",
        kind: "PodMigration",
        metadata: { name: "move", namespace: ns },
        spec: { podName: "counter", targetNode: "node-b" },
      }),
    );
    const patch = (status: unknown) =>
      kubectlFails(kc, [
        "patch",
        "pm",
        "move",
        "-n",
        ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        JSON.stringify({ status }),
      ]);
    assertStringIncludes(
      await patch({ phase: "Teleporting" }),
      'status.phase: Unsupported value: "Teleporting"',
    );
    assertStringIncludes(
      await patch({
        conditions: [{
          type: "Ready",
          status: "Maybe",
          reason: "x",
          message: "",
          lastTransitionTime: "2026-01-01T00:00:00Z",
        }],
      }),
      "status.conditions[0].status: Unsupported value",
    );
    assertStringIncludes(
      await patch({ conditions: [{ type: "Ready", status: "True", message: "" }] }),
      "status.conditions[0].reason: Required value",
    );
    // Nothing of ours was stored (a running lpm controller may have written
    // its own, valid, status meanwhile).
    const got = JSON.parse(await kubectl(kc, ["get", "pm", "move", "-n", ns, "-o", "json"]));
    assert(got.status?.phase !== "Teleporting", JSON.stringify(got.status));
    assert(
      !(got.status?.conditions ?? []).some((c: { status: string }) => c.status === "Maybe"),
      JSON.stringify(got.status),
    );
  });
});
