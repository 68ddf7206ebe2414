/**
 * The `pods/eviction` validating webhook's server and registration
 * (eviction.ts decides). lpm manages it all itself, as cert-manager-less
 * operators do:
 *
 * - the serving pair comes from lpm's CA and lives in the Secret
 *   `lpm-webhook-tls` (contract/cert_secrets.ts), renewed when fewer than
 *   10 of its 30 days are left; a renewal restarts the HTTPS server;
 * - the ValidatingWebhookConfiguration `lpm-eviction` is created or updated
 *   with that CA as `caBundle` on every pass (10 min), so an edit or a new
 *   CA heals;
 * - `failurePolicy: Ignore`: lpm down (or slow: `timeoutSeconds: 5`) never
 *   blocks an eviction; `sideEffects: NoneOnDryRun`: a dry run creates
 *   nothing.
 * @module
 */
import type { Logger } from "../base/log.ts";
import type { KubeHttp } from "../kube/http.ts";
import { ensureServingSecret, type ServingPem } from "../contract/cert_secrets.ts";
import type { ReconcilerDeps } from "./deps.ts";
import { reviewEviction } from "./eviction.ts";

/** The path the webhook answers on. */
export const WEBHOOK_PATH = "/validate-eviction";
/** Name of the ValidatingWebhookConfiguration. */
export const WEBHOOK_CONFIGURATION = "lpm-eviction";
/** Name of the serving certificate's Secret. */
export const WEBHOOK_SECRET = "lpm-webhook-tls";

/** How the API server reaches the webhook: a URL (host processes) or a Service. */
export type WebhookClientConfig =
  | { url: string }
  | { service: { namespace: string; name: string; port?: number } };

/** Options of {@linkcode startEvictionWebhook}. */
export interface EvictionWebhookOptions {
  /** Address to listen on. */
  hostname: string;
  /** Port to listen on (0: any). */
  port: number;
  /** What goes into the configuration's clientConfig. */
  clientConfig: WebhookClientConfig;
  /** Namespace of the serving Secret (and of lpm's CA unless `caNamespace` is set). */
  secretsNamespace: string;
  /** Namespace of lpm's CA Secret (default `secretsNamespace`). */
  caNamespace?: string;
  /** A private directory for the CA key while issuing. */
  workDir: string;
  /** API access for the Secrets and the configuration. */
  kube: KubeHttp;
  /** Renewal period. Default 10 min. */
  periodMs?: number;
}

/** A running webhook. */
export interface EvictionWebhook {
  /** The port it listens on. */
  port: number;
  /** Stops the server and the renewals (the configuration stays: failurePolicy Ignore). */
  stop(): Promise<void>;
}

/** The DNS names and IPs the serving certificate needs for `cc`. */
export function webhookSans(cc: WebhookClientConfig): string[] {
  if ("url" in cc) return [new URL(cc.url).hostname.replace(/^\[|\]$/g, "")];
  const { name, namespace } = cc.service;
  return [`${name}.${namespace}.svc`, `${name}.${namespace}.svc.cluster.local`];
}

/** The ValidatingWebhookConfiguration for `cc`, trusting `caPem`. */
export function webhookConfiguration(cc: WebhookClientConfig, caPem: string): unknown {
  const clientConfig = "url" in cc
    ? { url: new URL(WEBHOOK_PATH, cc.url).href }
    : { service: { ...cc.service, port: cc.service.port ?? 443, path: WEBHOOK_PATH } };
  return {
    apiVersion: "admissionregistration.k8s.io/v1",
    kind: "ValidatingWebhookConfiguration",
    metadata: {
      name: WEBHOOK_CONFIGURATION,
      labels: {
        "app.kubernetes.io/part-of": "lpm",
        "app.kubernetes.io/managed-by": "lpm-controller",
      },
    },
    webhooks: [{
      name: "eviction.lpm.my.domain",
      clientConfig: { ...clientConfig, caBundle: btoa(caPem) },
      rules: [{
        apiGroups: [""],
        apiVersions: ["v1"],
        operations: ["CREATE"],
        resources: ["pods/eviction"],
        scope: "Namespaced",
      }],
      // lpm down never blocks an eviction; a pod that opted in is then evicted as usual.
      failurePolicy: "Ignore",
      sideEffects: "NoneOnDryRun",
      timeoutSeconds: 5,
      admissionReviewVersions: ["v1"],
      matchPolicy: "Equivalent",
    }],
  };
}

const VWC_PATH = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations";

/** Creates or updates the configuration. */
export async function applyWebhookConfiguration(kube: KubeHttp, body: unknown): Promise<void> {
  const headers = { "content-type": "application/json" };
  const got = await kube.request(`${VWC_PATH}/${WEBHOOK_CONFIGURATION}`);
  let res: Response;
  if (got.status === 404) {
    await got.body?.cancel();
    res = await kube.request(VWC_PATH, { method: "POST", body: JSON.stringify(body), headers });
  } else if (got.ok) {
    const rv = ((await got.json()) as { metadata: { resourceVersion: string } }).metadata
      .resourceVersion;
    const b = body as { metadata: Record<string, unknown> };
    res = await kube.request(`${VWC_PATH}/${WEBHOOK_CONFIGURATION}`, {
      method: "PUT",
      body: JSON.stringify({ ...b, metadata: { ...b.metadata, resourceVersion: rv } }),
      headers,
    });
  } else {
    res = got;
  }
  if (!res.ok && res.status !== 409) {
    throw new Error(
      `Cannot write ValidatingWebhookConfiguration "${WEBHOOK_CONFIGURATION}": the API server ` +
        `returned ${res.status} ${await res.text()}`,
    );
  }
  await res.body?.cancel();
}

/** The HTTPS server answering AdmissionReviews on {@linkcode WEBHOOK_PATH}. */
function serve(
  deps: ReconcilerDeps,
  opts: { hostname: string; port: number },
  pem: ServingPem,
  log: Logger,
): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({
    hostname: opts.hostname,
    port: opts.port,
    cert: pem.cert,
    key: pem.key,
    onListen: () => {},
  }, async (req) => {
    if (new URL(req.url).pathname !== WEBHOOK_PATH || req.method !== "POST") {
      return new Response("not found\n", { status: 404 });
    }
    try {
      return Response.json(await reviewEviction(deps, await req.json(), log));
    } catch (err) {
      log.warn(
        "eviction review failed; the API server admits the eviction (failurePolicy Ignore)",
        {
          error: (err as Error).message,
        },
      );
      return new Response(`${(err as Error).message}\n`, { status: 500 });
    }
  });
}

/** Issues the certificate, registers the webhook and serves it; renews both on a period. */
export async function startEvictionWebhook(
  deps: ReconcilerDeps,
  opts: EvictionWebhookOptions,
  log: Logger,
): Promise<EvictionWebhook> {
  const ensure = async () => {
    const pem = await ensureServingSecret(opts.kube, {
      namespace: opts.secretsNamespace,
      caNamespace: opts.caNamespace,
      name: WEBHOOK_SECRET,
      sans: webhookSans(opts.clientConfig),
      workDir: opts.workDir,
    });
    await applyWebhookConfiguration(opts.kube, webhookConfiguration(opts.clientConfig, pem.ca));
    return pem;
  };
  let server = serve(deps, opts, await ensure(), log);
  const port = server.addr.port;
  log.info("eviction webhook serving", { port, configuration: WEBHOOK_CONFIGURATION });
  const timer = setInterval(async () => {
    try {
      const pem = await ensure();
      if (!pem.issued) return;
      await server.shutdown();
      server = serve(deps, { hostname: opts.hostname, port }, pem, log);
      log.info("eviction webhook certificate renewed", { secret: WEBHOOK_SECRET });
    } catch (err) {
      log.warn("eviction webhook renewal failed", { error: (err as Error).message });
    }
  }, opts.periodMs ?? 10 * 60_000);
  return {
    port,
    async stop() {
      clearInterval(timer);
      await server.shutdown();
    },
  };
}
