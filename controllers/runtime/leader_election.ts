/**
 * Leader election on a coordination.k8s.io/v1 Lease, as client-go does it:
 * acquire the lease when it is free or expired, renew it every retry period,
 * and give up leadership when renewing fails for longer than the renew
 * deadline. Writes use the lease's resourceVersion, so two candidates can
 * never both win.
 *
 * Why hand-written (kept by decision): client-node 2.0.1 has no leader
 * election (its dist holds informers, watch and cache only), and the npm
 * packages that add one are small unmaintained wrappers over older
 * client-node APIs. Lease semantics are client-go's, checked on the real API
 * server by runtime_kube_test.ts (two candidates, take-over on step-down).
 * @module
 */
import type * as k8s from "@kubernetes/client-node";
import { Logger } from "../../base/log.ts";
import { CoreClient } from "../../kube/core_client.ts";
import type { KubeAccess } from "../../kube/kubeconfig.ts";

/**
 * A MicroTime as the API server parses it (six fractional digits); the
 * client serializes Dates with three, which the server rejects for Leases.
 */
export function microTime(d: Date): Date {
  return d.toISOString().replace(/\.(\d{3})Z$/, ".$1000Z") as unknown as Date;
}

/** Options for {@linkcode LeaderElector}. */
export interface LeaderElectionOptions {
  /** Lease name. */
  name: string;
  /** Lease namespace. */
  namespace: string;
  /** This candidate's identity (pod name + random suffix). */
  identity: string;
  /** How long a lease is valid without renewal. Default 15 s. */
  leaseDurationMs?: number;
  /** A leader that could not renew for this long steps down. Default 10 s. */
  renewDeadlineMs?: number;
  /** Time between tries. Default 2 s. */
  retryPeriodMs?: number;
  /** Logger. */
  logger?: Logger;
}

/** Runs an election loop for one candidate. */
export class LeaderElector {
  readonly #api: CoreClient;
  readonly #o: Required<Omit<LeaderElectionOptions, "logger">>;
  readonly #log: Logger;
  #leading = false;
  #stopped = false;
  #timer?: ReturnType<typeof setTimeout>;
  #lastRenew = 0;

  /** Creates an elector; {@linkcode run} starts it. */
  constructor(kc: KubeAccess, opts: LeaderElectionOptions) {
    this.#api = new CoreClient(kc);
    this.#o = {
      leaseDurationMs: 15_000,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 2_000,
      ...opts,
    };
    this.#log = (opts.logger ?? new Logger()).with({
      lease: `${opts.namespace}/${opts.name}`,
      identity: opts.identity,
    });
  }

  /** True while this candidate holds the lease. */
  get leading(): boolean {
    return this.#leading;
  }

  /**
   * Tries to acquire, then keeps renewing. `onStartedLeading` runs once when
   * leadership is won; `onStoppedLeading` when it is lost (the process should
   * then stop its controllers, as another leader may already act).
   */
  run(cb: { onStartedLeading: () => void; onStoppedLeading: () => void }): void {
    const tick = async () => {
      if (this.#stopped) return;
      let ok = false;
      try {
        ok = await this.#tryAcquireOrRenew();
      } catch (err) {
        this.#log.warn("lease update failed", { err });
      }
      if (this.#stopped) return;
      if (ok) {
        this.#lastRenew = Date.now();
        if (!this.#leading) {
          this.#leading = true;
          this.#log.info("became leader");
          cb.onStartedLeading();
        }
      } else if (this.#leading && Date.now() - this.#lastRenew > this.#o.renewDeadlineMs) {
        this.#leading = false;
        this.#log.warn("lost leadership");
        cb.onStoppedLeading();
      }
      this.#timer = setTimeout(tick, this.#o.retryPeriodMs);
    };
    tick();
  }

  /** Stops the loop and, if leading, releases the lease so a successor need not wait. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    if (!this.#leading) return;
    this.#leading = false;
    try {
      const lease = await this.#api.readNamespacedLease({
        name: this.#o.name,
        namespace: this.#o.namespace,
      });
      if (lease.spec?.holderIdentity === this.#o.identity) {
        lease.spec.holderIdentity = undefined;
        lease.spec.leaseDurationSeconds = 1;
        if (lease.spec.renewTime) lease.spec.renewTime = microTime(new Date(lease.spec.renewTime));
        if (lease.spec.acquireTime) {
          lease.spec.acquireTime = microTime(new Date(lease.spec.acquireTime));
        }
        await this.#api.replaceNamespacedLease({
          name: this.#o.name,
          namespace: this.#o.namespace,
          body: lease,
        });
      }
    } catch (err) {
      this.#log.warn("could not release the lease", { err });
    }
  }

  async #tryAcquireOrRenew(): Promise<boolean> {
    const { name, namespace, identity } = this.#o;
    const nowDate = new Date();
    const now = microTime(nowDate);
    const seconds = Math.ceil(this.#o.leaseDurationMs / 1000);
    let lease: k8s.V1Lease;
    try {
      lease = await this.#api.readNamespacedLease({ name, namespace });
    } catch (err) {
      if ((err as { code?: number }).code !== 404) throw err;
      await this.#api.createNamespacedLease({
        namespace,
        body: {
          metadata: { name, namespace },
          spec: {
            holderIdentity: identity,
            leaseDurationSeconds: seconds,
            acquireTime: now,
            renewTime: now,
            leaseTransitions: 0,
          },
        },
      });
      return true;
    }
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity;
    const renewed = spec.renewTime ? new Date(spec.renewTime).getTime() : 0;
    const expired = renewed + (spec.leaseDurationSeconds ?? seconds) * 1000 < nowDate.getTime();
    if (holder && holder !== identity && !expired) return false;
    const takingOver = holder !== identity;
    lease.spec = {
      ...spec,
      holderIdentity: identity,
      leaseDurationSeconds: seconds,
      renewTime: now,
      acquireTime: takingOver ? now : spec.acquireTime && microTime(new Date(spec.acquireTime)),
      leaseTransitions: (spec.leaseTransitions ?? 0) + (takingOver && holder ? 1 : 0),
    };
    // replace carries metadata.resourceVersion: a concurrent winner makes this fail with 409.
    await this.#api.replaceNamespacedLease({ name, namespace, body: lease });
    return true;
  }
}
