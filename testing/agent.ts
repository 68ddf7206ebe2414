/**
 * Test helpers for the agent: a PKI with server and client certificates
 * (including ones from a foreign CA and of a wrong identity), a fake runtime
 * driver that writes a small archive, and a server+client pair on 127.0.0.1.
 * The fake driver stands beside the real-driver tests, never instead of them.
 * @module
 */
import { Pki } from "../localenv/pki.ts";
import { silentLogger } from "../base/log.ts";
import { AgentClient } from "../contract/client.ts";
import { type AgentServer, type AgentServerOptions, startAgentServer } from "../agent/server.ts";
import type {
  CheckpointOptions,
  CheckpointResult,
  ContainerRef,
  RuntimeDriver,
} from "../agent/runtime/driver.ts";
import type { TlsFiles } from "../contract/tls.ts";
import type { StorageClassRefMsg } from "../contract/proto.ts";
import type { MinioInfo } from "../localenv/mod.ts";
import { DeleteObjectsCommand, ListObjectsV2Command, type S3Client } from "@aws-sdk/client-s3";

/** Certificates for mTLS tests. */
export interface TestCerts {
  /** Directory holding them (remove when done). */
  dir: string;
  /** The agent's serving files (CA = the client CA). */
  server: TlsFiles;
  /** The controller (CN lpm-controller). */
  controller: TlsFiles;
  /** Valid chain, wrong identity (CN intruder). */
  wrongIdentity: TlsFiles;
  /** A certificate from another CA, CN lpm-controller. */
  foreign: TlsFiles;
}

/** Mints a CA, the agent's serving cert and three client certs. */
export async function makeTestCerts(): Promise<TestCerts> {
  const dir = await Deno.makeTempDir({ prefix: "lpm-agent-pki-" });
  const pki = await Pki.create(`${dir}/ca`, "lpm-agent-test-ca");
  const other = await Pki.create(`${dir}/other`, "some-other-ca");
  const srv = await pki.issue("agent", {
    cn: "lpm-agent",
    sans: ["lpm-agent", "127.0.0.1"],
    usage: ["server"],
  });
  const ctl = await pki.issue("controller", { cn: "lpm-controller", usage: ["client"] });
  const bad = await pki.issue("intruder", { cn: "intruder", usage: ["client"] });
  const foreign = await other.issue("controller", { cn: "lpm-controller", usage: ["client"] });
  const ca = pki.ca.cert;
  return {
    dir,
    server: { cert: srv.cert, key: srv.key, ca },
    controller: { cert: ctl.cert, key: ctl.key, ca },
    wrongIdentity: { cert: bad.cert, key: bad.key, ca },
    foreign: { cert: foreign.cert, key: foreign.key, ca },
  };
}

/** A driver that writes `size` bytes as the archive and counts its calls. */
export class FakeDriver implements RuntimeDriver {
  readonly name = "fake";
  /** Every checkpoint call. */
  readonly calls: ContainerRef[] = [];
  /** Delay before the archive is written, ms. */
  delayMs = 0;

  /** Creates the driver. */
  constructor(readonly size = 64 * 1024) {}

  async checkpoint(ref: ContainerRef, opts: CheckpointOptions): Promise<CheckpointResult> {
    this.calls.push(ref);
    if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
    opts.signal?.throwIfAborted();
    const archivePath = `${opts.workDir}/fake.tar`;
    const data = new Uint8Array(this.size);
    for (let i = 0; i < data.length; i += 65536) {
      crypto.getRandomValues(data.subarray(i, Math.min(i + 65536, data.length)));
    }
    await Deno.writeFile(archivePath, data);
    const stats = {
      freezingTime: 1,
      frozenTime: 7,
      memdumpTime: 2,
      memwriteTime: 3,
      pagesScanned: 0,
      pagesSkippedParent: 0,
      pagesWritten: 0,
    };
    return { archivePath, runtime: { name: "fake", version: "1" }, stats };
  }
}

/** Starts a server over mTLS on 127.0.0.1 with `certs`. */
export async function startTestServer(
  certs: TestCerts,
  opts: Partial<AgentServerOptions> & Pick<AgentServerOptions, "driver" | "resolveClass">,
): Promise<{ server: AgentServer; stateDir: string; address: string }> {
  const stateDir = opts.stateDir ?? await Deno.makeTempDir({ prefix: "lpm-agent-state-" });
  const server = await startAgentServer({
    nodeName: "test-node",
    listen: "127.0.0.1:0",
    security: {
      mode: "mtls",
      files: certs.server,
      allowedClients: ["lpm-controller"],
      watch: false,
    },
    stateDir,
    log: silentLogger,
    ...opts,
  });
  return { server, stateDir, address: `127.0.0.1:${server.port}` };
}

/** A client with the given files. */
export function clientWith(address: string, files: TlsFiles): Promise<AgentClient> {
  return AgentClient.connect(address, { security: { mode: "mtls", files }, timeoutMs: 10_000 });
}

/**
 * A class that travels inline in a request (spec and credentials, as on a
 * Docker host): the harness MinIO under `prefix`, images to `repository`
 * (plain HTTP).
 */
export function inlineMinioClass(
  name: string,
  opts: { minio: MinioInfo; prefix: string; repository: string },
): StorageClassRefMsg & { specJson: string; credentials: Record<string, string> } {
  const { minio: m, prefix, repository } = opts;
  return {
    name,
    specJson: JSON.stringify({
      provider: "minio",
      minio: { endpoint: m.endpoint, bucket: m.bucket, region: m.region, prefix },
      credentialsSecretRef: { name: "unused", namespace: "lpm-system" },
      registry: { repository, insecure: true },
    }),
    credentials: { accessKeyId: m.accessKey, secretAccessKey: m.secretKey },
  };
}

/** Deletes the objects under `prefix` in `bucket` (the first listing page: what one test wrote). */
export async function removeObjectsUnder(
  s3: S3Client,
  opts: { bucket: string; prefix: string },
): Promise<void> {
  const { bucket, prefix } = opts;
  const objs = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
  if (objs.Contents?.length) {
    await s3.send(
      new DeleteObjectsCommand({
        Bucket: bucket,
        Delete: { Objects: objs.Contents.map((o) => ({ Key: o.Key! })) },
      }),
    );
  }
}
