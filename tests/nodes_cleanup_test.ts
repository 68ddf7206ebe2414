/**
 * Stopping an environment with a node leaves nothing behind: no kubelet,
 * containerd or shim process, no mount, no cgroup, no bridge, no node
 * address, no network namespace, no files. Starts a private environment (its
 * own control plane, registry and one node), so it runs in any environment.
 * @module
 */
import { assert, assertEquals } from "@std/assert";
import { envTest } from "../testing/env.ts";
import { counterScript, kubectl, startEnvironment, waitFor } from "../localenv/mod.ts";

async function processesMentioning(text: string): Promise<string[]> {
  const found: string[] = [];
  for await (const e of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    const cmd = await Deno.readTextFile(`/proc/${e.name}/cmdline`).catch(() => "");
    if (cmd.includes(text)) found.push(`${e.name}: ${cmd.replaceAll("\0", " ").slice(0, 160)}`);
  }
  return found;
}

/** Entries of `dir` (empty when it does not exist). */
async function entries(dir: string): Promise<Set<string>> {
  const names = new Set<string>();
  try {
    for await (const e of Deno.readDir(dir)) names.add(e.name);
  } catch {
    // absent
  }
  return names;
}

/** Host paths outside the environment that containerd, its shims and CNI write to. */
const HOST_DIRS = ["/run/containerd/s", "/var/lib/cni/results", "/var/log/containers"];

/** The sockets among `names` in `dir` that no process answers on. */
async function unanswered(dir: string, names: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const name of names) {
    const conn = await Deno.connect({ transport: "unix", path: `${dir}/${name}` }).catch(() =>
      undefined
    );
    if (conn) conn.close();
    else out.push(name);
  }
  return out;
}

async function ipOutput(args: string[]): Promise<string> {
  const out = await new Deno.Command("ip", { args, stdout: "piped" }).output();
  return new TextDecoder().decode(out.stdout);
}

envTest({ starts: ["kube", "registry", "nodes"] }, {
  name: "nodes: stopping removes pods, processes, shims, mounts, cgroups, bridge, address, files",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const hostBefore = await Promise.all(HOST_DIRS.map(entries));
    const env = await startEnvironment({ parts: ["kube", "registry"], nodes: 1 });
    let stopped = false;
    try {
      const node = env.info.nodes![0];
      const kc = env.info.kube!.kubeconfig;
      // A fresh control plane: retry until the "default" service account exists.
      const apply = () =>
        kubectl(
          kc,
          ["apply", "-f", "-"],
          JSON.stringify({
            apiVersion: "v1",
            kind: "Pod",
            metadata: { name: "counter", namespace: "default" },
            spec: {
              nodeName: node.name,
              automountServiceAccountToken: false,
              containers: [{
                name: "counter",
                image: env.info.nodeImages!.busybox,
                command: ["/bin/sh", "-c", counterScript(0.2)],
              }],
            },
          }),
        ).then(() => true);
      await waitFor(apply, { what: "the counter pod created", timeoutMs: 30_000 });
      await waitFor(async () => {
        const p = JSON.parse(await kubectl(kc, ["get", "pod", "counter", "-o", "json"]));
        return p.status?.containerStatuses?.[0]?.state?.running !== undefined;
      }, { what: "the counter pod Running", timeoutMs: 60_000, intervalMs: 300 });
      // While it runs, the things stop() must remove all exist.
      assert((await processesMentioning(node.containerdSocket)).length > 0, "no shim found");
      assert((await Deno.readTextFile("/proc/self/mountinfo")).includes(node.dir));
      assert((await Deno.stat(`/sys/fs/cgroup/memory${node.cgroupRoot}`)).isDirectory);
      assert((await ipOutput(["link", "show", node.bridge])).includes(node.bridge));

      // This node's sandboxes and containers (CNI results are keyed by sandbox id).
      const ids = await entries(`${node.containerdState}/io.containerd.runtime.v2.task/k8s.io`);
      assert(ids.size > 0, "no task of this node found");
      const t0 = Date.now();
      await env.stop();
      stopped = true;
      const stopMs = Date.now() - t0;
      assert(stopMs < 30_000, `stop took ${stopMs} ms`);

      assertEquals(await processesMentioning(env.info.dir), [], "processes left");
      // Pod network namespaces are bind mounts under the node's state dir, so
      // this also proves the netns are gone (and their veths with them).
      const mounts = (await Deno.readTextFile("/proc/self/mountinfo")).split("\n")
        .filter((l) => l.includes(env.info.dir));
      assertEquals(mounts, [], "mounts left");
      for (const c of ["cpu", "memory", "pids", "freezer", "cpuset", "systemd", "unified"]) {
        const left = await Deno.stat(`/sys/fs/cgroup/${c}${node.cgroupRoot}`).then(
          () => true,
          () => false,
        );
        assert(!left, `cgroup /sys/fs/cgroup/${c}${node.cgroupRoot} left`);
      }
      assert(!(await ipOutput(["link"])).includes(node.bridge), `bridge ${node.bridge} left`);
      const hostAfter = await Promise.all(HOST_DIRS.map(entries));
      for (const [i, d] of HOST_DIRS.entries()) {
        let added = [...hostAfter[i]].filter((n) => !hostBefore[i].has(n));
        // Shim sockets are machine-wide: one that a live shim still answers on
        // belongs to another environment running meanwhile (this node's shims
        // are gone, checked above); a leak is a socket nobody answers.
        if (d === "/run/containerd/s") added = await unanswered(d, added);
        // CNI results are machine-wide too: only this node's sandboxes count.
        if (d === "/var/lib/cni/results") {
          added = added.filter((n) => [...ids].some((id) => n.includes(id)));
        }
        assertEquals(added, [], `left in ${d}`);
      }
      assert(!(await ipOutput(["addr", "show", "dev", "lo"])).includes(`${node.ip}/32`));
      assert(
        !(await Deno.stat(env.info.dir).then(() => true, () => false)),
        `${env.info.dir} left`,
      );
    } finally {
      if (!stopped) await env.stop();
    }
  },
});
