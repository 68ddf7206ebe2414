/**
 * Pod networking for the local nodes: each node has a Linux bridge of its
 * own with no address on the host side, no uplink, no gateway and no
 * masquerading, so pods of one node reach each other and nothing else, and no
 * private-range traffic can leave the machine. See docs/nodes.md.
 * @module
 */

/** The CNI setup of one node. */
export interface NodeNetwork {
  /** Linux bridge name (at most 15 characters). */
  bridge: string;
  /** Pod subnet (host-local IPAM). */
  subnet: string;
  /** Directory holding the conflist. */
  confDir: string;
  /** host-local IPAM state directory. */
  ipamDir: string;
}

/** Writes the node's conflist into `dir` and returns what it set up. */
export async function writeNodeNetwork(
  dir: string,
  opts: { bridge: string; subnet: string; name: string },
): Promise<NodeNetwork> {
  if (opts.bridge.length > 15) {
    throw new Error(`Bridge name "${opts.bridge}" is longer than the kernel's 15 characters`);
  }
  const net: NodeNetwork = {
    bridge: opts.bridge,
    subnet: opts.subnet,
    confDir: `${dir}/net.d`,
    ipamDir: `${dir}/ipam`,
  };
  await Deno.mkdir(net.confDir, { recursive: true });
  await Deno.mkdir(net.ipamDir, { recursive: true });
  const conflist = {
    cniVersion: "1.0.0",
    name: opts.name,
    plugins: [{
      type: "bridge",
      bridge: net.bridge,
      isGateway: false,
      isDefaultGateway: false,
      ipMasq: false,
      hairpinMode: false,
      ipam: {
        type: "host-local",
        ranges: [[{ subnet: net.subnet }]],
        dataDir: net.ipamDir,
      },
    }],
  };
  await Deno.writeTextFile(
    `${net.confDir}/10-lpm.conflist`,
    JSON.stringify(conflist, null, 2) + "\n",
  );
  return net;
}

/** Deletes the node's bridge (the veths went with their pods). */
export async function removeBridge(bridge: string): Promise<void> {
  await new Deno.Command("ip", {
    args: ["link", "del", bridge],
    stdout: "null",
    stderr: "null",
  }).output();
}

/**
 * Gives a node an address of its own: a free /32 from 198.18.0.0/15 (RFC 2544,
 * benchmarking; not a private range and never routed out) on the host's `lo`.
 * The kubelet refuses a loopback node IP (127.0.0.0/8), and two kubelets in one
 * network namespace still need distinct InternalIPs for the API server to reach.
 */
export async function addNodeAddress(): Promise<string> {
  for (let i = 0; i < 20; i++) {
    const [a, b] = crypto.getRandomValues(new Uint8Array(2));
    const ip = `198.${18 + (a & 1)}.${b}.${1 + ((a >> 1) % 254)}`;
    const out = await new Deno.Command("ip", {
      args: ["addr", "add", `${ip}/32`, "dev", "lo"],
      stdout: "null",
      stderr: "piped",
    }).output();
    if (out.success) return ip;
    if (!new TextDecoder().decode(out.stderr).includes("exists")) {
      throw new Error(
        `Cannot add node address "${ip}" to lo: ${new TextDecoder().decode(out.stderr).trim()}`,
      );
    }
  }
  throw new Error("Cannot find a free node address in 198.18.0.0/15 after 20 tries");
}

/** Removes a node address added by {@linkcode addNodeAddress}. */
export async function removeNodeAddress(ip: string): Promise<void> {
  await new Deno.Command("ip", {
    args: ["addr", "del", `${ip}/32`, "dev", "lo"],
    stdout: "null",
    stderr: "null",
  }).output();
}
