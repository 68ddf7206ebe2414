/**
 * Which CRIU versions are known to fail on which kernels: a small table of
 * facts, each with the reason it is there, and a pure function that says why
 * a node's CRIU cannot dump on its kernel. PodMigration validation refuses
 * such a node before anything is frozen or dumped.
 * @module
 */
import { compareVersions } from "./pod_restore_compat.ts";

/** A CRIU version range that fails on a kernel range. */
export interface CriuKernelRule {
  /** CRIU versions below this fail. */
  criuBelow: string;
  /** On kernels at or above this version. */
  kernelFrom: string;
  /** What CRIU cannot do there, for people ("dump processes holding ..."). */
  cannot: string;
  /** Why, in a few words. */
  because: string;
}

/** The known failures. */
export const CRIU_KERNEL_RULES: readonly CriuKernelRule[] = [
  // Linux 6.16 restricted SO_PASSCRED and SO_PASSSEC to Unix and netlink sockets;
  // CRIU before 4.2 reads both options on every socket it dumps and treats the
  // refusal as fatal ("sockets: Can't get 1:16 opt: Operation not supported"), so no
  // process holding a TCP or UDP socket can be dumped. Fixed in CRIU 4.2 (upstream
  // CRIU issues 2705 and 2718); checked on this project's kernel 6.18 with 4.1.1 and 4.2.1.
  {
    criuBelow: "4.2",
    kernelFrom: "6.16",
    cannot: "dump processes holding TCP or UDP sockets",
    because: "Linux 6.16 restricted SO_PASSCRED/SO_PASSSEC to Unix and netlink sockets",
  },
];

/** The leading `major.minor[.patch]` of a kernel release ("6.18.0-1-amd64" -> "6.18.0"). */
export function kernelNumber(release: string | undefined): string | undefined {
  return /^v?(\d+\.\d+(?:\.\d+)?)/.exec((release ?? "").trim())?.[1];
}

/**
 * Why CRIU `criu` cannot work on kernel `kernel` (a uname release), naming both
 * versions and the fix; undefined when no rule applies or a version is unknown.
 */
export function criuKernelProblem(
  criu: string | undefined,
  kernel: string | undefined,
  rules: readonly CriuKernelRule[] = CRIU_KERNEL_RULES,
): string | undefined {
  const k = kernelNumber(kernel);
  const c = /^v?(\d+(?:\.\d+)*)/.exec((criu ?? "").trim())?.[1];
  if (!k || !c) return undefined;
  const rule = rules.find((r) =>
    compareVersions(c, r.criuBelow) < 0 && compareVersions(k, r.kernelFrom) >= 0
  );
  if (!rule) return undefined;
  return `CRIU ${criu} cannot ${rule.cannot} on kernel ${kernel} (${rule.because}; ` +
    `fixed in CRIU ${rule.criuBelow}): install CRIU >= ${rule.criuBelow} on the node`;
}
