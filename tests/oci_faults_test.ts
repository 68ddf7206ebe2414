/**
 * Bad input for the OCI path: a fault-injecting registry on 127.0.0.1
 * (401, Bearer auth, 404, 500, a manifest whose digest does not match, a
 * truncated blob) beside the real registry (a corrupt blob is refused and no
 * tag appears), and an archive without `checkpoint/`.
 */
import { assertEquals, assertRejects } from "@std/assert";
import { envTest, requirePart } from "../testing/env.ts";
import {
  buildCheckpointImage,
  credentialsFor,
  digestBytes,
  OciLayout,
  pullImage,
  pushImage,
  RegistryClient,
  RegistryError,
} from "../oci/mod.ts";
import { CheckpointArchiveError } from "../archive/mod.ts";
import { runTool } from "../testing/docker.ts";
import { syntheticArchive } from "../testing/archives.ts";

type Handler = (req: Request, url: URL) => Response | Promise<Response>;

/** A fault registry; `log` records "METHOD path" of each request. */
function faultRegistry(handler: Handler) {
  const log: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    log.push(`${req.method} ${url.pathname}`);
    await req.body?.cancel();
    return await handler(req, url);
  });
  return { host: `127.0.0.1:${server.addr.port}`, log, close: () => server.shutdown() };
}

async function smallImage(dir: string): Promise<string> {
  const archive = await syntheticArchive(dir, {
    inventory: crypto.getRandomValues(new Uint8Array(4096)),
  });
  return (await buildCheckpointImage(archive, { layoutDir: `${dir}/layout` })).layoutDir;
}

Deno.test({
  name:
    "oci faults: 401 without and with wrong credentials, Bearer token flow with a Docker config",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const basicOnly = faultRegistry(() =>
      new Response("{}", { status: 401, headers: { "www-authenticate": 'Basic realm="fault"' } })
    );
    let realm = "";
    const bearer = faultRegistry((req, url) => {
      if (url.pathname === "/token") {
        if (req.headers.get("authorization") !== `Basic ${btoa("lpm:s3cret")}`) {
          return new Response("denied", { status: 401 });
        }
        return Response.json({ token: `tok-${url.searchParams.get("scope")}` });
      }
      if (req.headers.get("authorization")?.startsWith("Bearer tok-")) {
        return new Response(null, { status: url.pathname === "/v2/" ? 200 : 404 });
      }
      return new Response("{}", {
        status: 401,
        headers: { "www-authenticate": `Bearer realm="${realm}",service="fault"` },
      });
    });
    realm = `http://${bearer.host}/token`;
    try {
      const anon = new RegistryClient(basicOnly.host, { insecure: true });
      await assertRejects(
        () => anon.ping(),
        RegistryError,
        "requires authentication and no credentials",
      );
      const wrong = new RegistryClient(basicOnly.host, {
        insecure: true,
        credentials: { username: "a", password: "b" },
      });
      await assertRejects(
        () => wrong.ping(),
        RegistryError,
        "401 (unauthorized: wrong credentials?)",
      );
      const cfg = JSON.stringify({ auths: { [bearer.host]: { auth: btoa("lpm:s3cret") } } });
      const good = new RegistryClient(bearer.host, {
        insecure: true,
        credentials: credentialsFor(cfg, bearer.host),
      });
      await good.ping();
      assertEquals(await good.blobSize("lpm/x", `sha256:${"0".repeat(64)}`), undefined);
      const bad = new RegistryClient(bearer.host, {
        insecure: true,
        credentials: { username: "lpm", password: "nope" },
      });
      await assertRejects(() => bad.ping(), RegistryError, "Cannot get a registry token");
      for (const c of [anon, wrong, good, bad]) c.close();
    } finally {
      await basicOnly.close();
      await bearer.close();
    }
  },
});

Deno.test({
  name:
    "oci faults: 500 on upload pushes no manifest; 404 manifest; digest mismatch; truncated blob",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const work = await Deno.makeTempDir({ prefix: "lpm-oci-faults-" });
    const layoutDir = await smallImage(work);
    const layout = await OciLayout.open(layoutDir);
    const desc = await layout.resolve();
    const manifestBytes = await layout.readBytes(desc.digest);
    const manifest = JSON.parse(new TextDecoder().decode(manifestBytes));
    const layer = manifest.layers[0];
    const layerBytes = await Deno.readFile(layout.blobPath(layer.digest));
    const configBytes = await layout.readBytes(manifest.config.digest);
    const broken = faultRegistry((_req, url) => {
      if (url.pathname === "/v2/") return new Response(null, { status: 200 });
      if (url.pathname.includes("/blobs/uploads/")) return new Response("boom", { status: 500 });
      return new Response(null, { status: 404 });
    });
    const lying = faultRegistry((_req, url) => {
      const p = url.pathname;
      if (p.endsWith("/manifests/mismatch")) {
        return new Response(manifestBytes, {
          headers: {
            "content-type": manifest.mediaType,
            "docker-content-digest": digestBytes(new TextEncoder().encode("other")),
          },
        });
      }
      if (p.includes("/manifests/")) {
        return new Response(manifestBytes, { headers: { "content-type": manifest.mediaType } });
      }
      if (p.endsWith(manifest.config.digest)) return new Response(configBytes);
      if (p.endsWith(layer.digest)) {
        return new Response(layerBytes.subarray(0, layerBytes.length - 100));
      }
      return new Response(null, { status: 404 });
    });
    try {
      await assertRejects(
        () => pushImage(layoutDir, `${broken.host}/lpm/app:v1`, { insecure: true }),
        RegistryError,
        "answered 500 (registry server error)",
      );
      assertEquals(broken.log.filter((l) => l.startsWith("PUT") && l.includes("/manifests/")), []);
      await assertRejects(
        () => pullImage(`${broken.host}/lpm/app:missing`, `${work}/p0`, { insecure: true }),
        RegistryError,
        "answered 404 (not found)",
      );
      await assertRejects(
        () => pullImage(`${lying.host}/lpm/app:mismatch`, `${work}/p1`, { insecure: true }),
        RegistryError,
        "manifest digest mismatch",
      );
      await assertRejects(
        () =>
          pullImage(
            `${lying.host}/lpm/app@${digestBytes(new TextEncoder().encode("x"))}`,
            `${work}/p2`,
            {
              insecure: true,
            },
          ),
        RegistryError,
        "manifest digest mismatch",
      );
      await assertRejects(
        () => pullImage(`${lying.host}/lpm/app:v1`, `${work}/p3`, { insecure: true }),
        Error,
        "the manifest says",
      );
      const p3 = await OciLayout.open(`${work}/p3`);
      assertEquals(await p3.hasBlob(layer.digest), false);
      assertEquals((await p3.index()).manifests, []);
    } finally {
      await broken.close();
      await lying.close();
      await Deno.remove(work, { recursive: true }).catch(() => {});
    }
  },
});

envTest({ uses: ["registry"] }, {
  name:
    "oci faults: real registry refuses a corrupt blob and no tag appears; archive without checkpoint/",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const { host } = requirePart("registry");
    const id = crypto.randomUUID().slice(0, 8);
    const work = await Deno.makeTempDir({ prefix: "lpm-oci-faults-" });
    try {
      const layoutDir = await smallImage(work);
      const layout = await OciLayout.open(layoutDir);
      const m = JSON.parse(
        new TextDecoder().decode(await layout.readBytes((await layout.resolve()).digest)),
      );
      const path = layout.blobPath(m.layers[0].digest);
      const bytes = await Deno.readFile(path);
      bytes[bytes.length - 1] ^= 0xff;
      await Deno.writeFile(path, bytes);
      const target = `${host}/lpm-test/corrupt-${id}:v1`;
      await assertRejects(
        () => pushImage(layoutDir, target, { insecure: true }),
        RegistryError,
        "400",
      );
      const client = new RegistryClient(host, { insecure: true });
      await assertRejects(
        () => client.getManifest(`lpm-test/corrupt-${id}`, "v1"),
        RegistryError,
        "404",
      );
      client.close();

      await Deno.mkdir(`${work}/nocp`);
      await Deno.writeTextFile(`${work}/nocp/config.dump`, "{}");
      await Deno.writeTextFile(`${work}/nocp/spec.dump`, "{}");
      await runTool("tar", [
        "-C",
        `${work}/nocp`,
        "-cf",
        `${work}/nocp.tar`,
        "config.dump",
        "spec.dump",
      ]);
      await assertRejects(
        () =>
          buildCheckpointImage(`${work}/nocp.tar`, { layoutDir: `${work}/l2`, containerName: "c" }),
        CheckpointArchiveError,
        `no "checkpoint/" directory`,
      );
    } finally {
      await Deno.remove(work, { recursive: true }).catch(() => {});
    }
  },
});
