/**
 * `deno task restore --from <ref> [--context c] [--kubeconfig p] [--node n] [-n ns] [--name pod]
 * [--storage-class c] [--container name] [--label k=v...] [--wait]`
 *
 * Creates a PodRestore in the target cluster (the kubeconfig context) and,
 * with --wait, follows it to Succeeded or Failed. `<ref>` is one of:
 * - `s3://<class>/<key>` or `storage:<class>/<key>`: a stored checkpoint
 *   (archive `.tar` or its `.checkpoint.json`) in a CheckpointStorageClass of
 *   the target cluster;
 * - `oci-archive:<path>`: an OCI layout tarball, first pushed into the
 *   registry of --storage-class (default: the default class);
 * - anything else: a checkpoint image reference in a registry.
 * For images and archives, --container defaults to the container the image
 * says it restores (`org.criu.checkpoint.container.name`); the pod spec and
 * the compatibility facts travel in the image's annotations.
 * @module
 */
import * as k8s from "@kubernetes/client-node";
import type { CheckpointStorageClass, PodRestore, PodRestoreSpec } from "../api/mod.ts";
import { apiMessage, LpmClient } from "../kube/lpm_client.ts";
import {
  CRIU,
  describeCheckpointImage,
  parseReference,
  pushImage,
  readLayoutTarball,
  RegistryClient,
} from "../oci/mod.ts";
import { parseCommandArgs } from "../base/args.ts";
import { kubeconfigPath } from "../kube/config.ts";
import { Progress } from "./progress.ts";

const USAGE = `usage: deno task restore --from <ref> [--context <context>] [--kubeconfig <path>]
                          [--node <node>] [-n <namespace>] [--name <pod name>] [--storage-class <class>]
                          [--container <name>] [--label k=v[,k=v...]] [--wait]

<ref>: s3://<class>/<key> | storage:<class>/<key> | <registry image reference> | oci-archive:<path>
Restores a checkpoint as a pod in the cluster of --context (needs no access to the source cluster).
--container defaults to the container an image or archive says it restores.`;

/** A parsed `--from` reference. */
export type RestoreRef =
  | { kind: "storage"; storageClassName: string; key: string }
  | { kind: "image"; image: string }
  | { kind: "layout"; path: string };

/** Parses a `--from` reference. */
export function parseRestoreRef(ref: string): RestoreRef {
  const m = /^(?:s3:\/\/|storage:)([^/]+)\/(.+)$/.exec(ref);
  if (m) return { kind: "storage", storageClassName: m[1], key: m[2] };
  if (/^(s3:|storage:)/.test(ref)) {
    throw new Error(`Reference "${ref}" needs a class and a key: storage:<class>/<key>`);
  }
  if (ref.startsWith("oci-archive:")) {
    const path = ref.slice("oci-archive:".length);
    if (!path) throw new Error(`Reference "${ref}" names no file`);
    return { kind: "layout", path };
  }
  if (!/^[a-z0-9.-]+(:\d+)?\/.+(:[\w.-]+|@sha256:[0-9a-f]{64})$/i.test(ref)) {
    throw new Error(
      `Reference "${ref}" is neither storage:<class>/<key>, s3://<class>/<key>, ` +
        "oci-archive:<path> nor a registry image reference with a tag or digest",
    );
  }
  return { kind: "image", image: ref };
}

/** Runs the command (also `kubectl lpm restore`); returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(args, {
    known: [
      "from",
      "context",
      "kubeconfig",
      "node",
      "namespace",
      "name",
      "storage-class",
      "container",
      "label",
      "wait",
      "help",
    ],
    booleans: ["wait", "help"],
    aliases: { n: "namespace", h: "help" },
  }, USAGE);
  if ("exit" in parsed) return parsed.exit;
  const a = parsed.args;
  if (!a.flags.from || a.positional.length) {
    console.error(`${a.flags.from ? "Too many arguments" : "Missing --from <ref>"}\n\n${USAGE}`);
    return 2;
  }
  let ref: RestoreRef;
  try {
    ref = parseRestoreRef(a.flags.from);
  } catch (err) {
    console.error((err as Error).message);
    return 2;
  }
  const ns = a.flags.namespace ?? "default";
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfigPath(a.flags.kubeconfig));
  if (a.flags.context) {
    if (!kc.getContexts().some((c) => c.name === a.flags.context)) {
      console.error(`Context "${a.flags.context}" is not in the kubeconfig`);
      return 2;
    }
    kc.setCurrentContext(a.flags.context);
  }
  const lpm = new LpmClient(kc);
  const labels: Record<string, string> = {};
  for (const kv of (a.flags.label ?? "").split(",").filter(Boolean)) {
    const [k, ...v] = kv.split("=");
    labels[k] = v.join("=");
  }
  let source: PodRestoreSpec["source"];
  if (ref.kind === "storage") {
    source = { storage: { storageClassName: ref.storageClassName, key: ref.key } };
  } else {
    let image = ref.kind === "image" ? ref.image : "";
    let container: string | undefined = a.flags.container;
    try {
      if (ref.kind === "layout") {
        const pushed = await pushLayout(lpm, ref.path, a.flags["storage-class"]);
        image = pushed.image;
        container ??= pushed.containerName;
        console.error(`Pushed "${ref.path}" as "${image}"`);
      } else if (!container) {
        container = await imageContainerName(lpm, image);
      }
    } catch (err) {
      console.error((err as Error).message);
      return 1;
    }
    if (!container) {
      console.error(
        `"${a.flags.from}" names no container (no "${CRIU.name}" annotation): give --container`,
      );
      return 2;
    }
    source = { image: { references: [{ containerName: container, image }] } };
  }
  const name = `restore-${crypto.randomUUID().slice(0, 8)}`;
  const body: PodRestore = {
    apiVersion: "lpm.my.domain/v1",
    kind: "PodRestore",
    metadata: { name, namespace: ns },
    spec: {
      source,
      ...(a.flags.name ? { podName: a.flags.name } : {}),
      ...(a.flags.node ? { nodeName: a.flags.node } : {}),
      ...(Object.keys(labels).length ? { labels } : {}),
    },
  };
  try {
    await lpm.create("podrestores", ns, body);
  } catch (err) {
    console.error(`Cannot create PodRestore "${ns}/${name}": ${apiMessage(err)}`);
    return 1;
  }
  console.error(`PodRestore "${ns}/${name}" created`);
  console.log(name);
  if (!a.flags.wait) return 0;
  const progress = new Progress();
  while (true) {
    const pr = await lpm.get<PodRestore>("podrestores", ns, name);
    const phase = pr?.status?.phase ?? "Pending";
    if (phase === "Succeeded" || phase === "Failed") {
      progress.done(`${phase}: ${pr?.status?.message ?? ""}`);
      if (pr?.status?.restoredPodName) console.log(`pod\t${ns}/${pr.status.restoredPodName}`);
      return phase === "Succeeded" ? 0 : 1;
    }
    const last = pr?.status?.conditions?.at(-1);
    progress.update({ phase, detail: last?.message ?? pr?.status?.message });
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** The registry access of the class whose registry lives on `host`, if any. */
async function accessFor(lpm: LpmClient, host: string): Promise<{ insecure?: boolean }> {
  const classes = await lpm.list<CheckpointStorageClass>("checkpointstorageclasses");
  const cls = classes.find((c) => c.spec.registry?.repository?.split("/")[0] === host);
  return { insecure: cls?.spec.registry?.insecure };
}

/** The container a checkpoint image restores, from its manifest annotations. */
async function imageContainerName(lpm: LpmClient, image: string): Promise<string | undefined> {
  const ref = parseReference(image);
  const client = new RegistryClient(ref.host, await accessFor(lpm, ref.host));
  try {
    const got = await client.getManifest(ref.repository, ref.digest ?? ref.tag ?? "latest");
    return describeCheckpointImage(JSON.parse(new TextDecoder().decode(got.bytes)).annotations)
      .containerName;
  } finally {
    client.close();
  }
}

/**
 * Pushes an OCI layout tarball into the registry of `className` (or the
 * default class); returns the image by digest and the container it restores.
 */
async function pushLayout(
  lpm: LpmClient,
  path: string,
  className?: string,
): Promise<{ image: string; containerName?: string }> {
  const classes = await lpm.list<CheckpointStorageClass>("checkpointstorageclasses");
  const cls = className
    ? classes.find((c) => c.metadata?.name === className)
    : classes.find((c) => c.spec.default);
  if (!cls) {
    throw new Error(
      className
        ? `CheckpointStorageClass "${className}" does not exist in the target cluster`
        : "No default CheckpointStorageClass in the target cluster: give --storage-class",
    );
  }
  const repo = cls.spec.registry?.repository;
  if (!repo) throw new Error(`CheckpointStorageClass "${cls.metadata?.name}" has no registry`);
  const dir = await Deno.makeTempDir({ prefix: "lpm-restore-layout-" });
  try {
    const layout = await readLayoutTarball(path, dir);
    const desc = await layout.resolve();
    const manifest = JSON.parse(new TextDecoder().decode(await layout.readBytes(desc.digest)));
    const tag = `restore-${crypto.randomUUID().slice(0, 8)}`;
    const r = await pushImage(dir, `${repo}:${tag}`, {
      insecure: cls.spec.registry?.insecure,
      ref: desc.digest,
    });
    return {
      image: `${repo}@${r.digest}`,
      containerName: describeCheckpointImage(manifest.annotations).containerName,
    };
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
