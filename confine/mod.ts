/**
 * Guards for data that comes from outside (checkpoint archives, OCI layouts,
 * registry answers, storage metadata): paths confined to a root, tar members
 * checked against a policy before anything is written, and bounded sizes.
 * The lowest layer: it imports nothing of lpm, so the agent, `oci/` and the
 * controllers share one implementation.
 *
 * ```ts
 * const check = new MemberChecker({ what: 'archive "x.tar"' });
 * for await (const e of tarEntries(stream)) check.check(e); // throws ConfinementError
 * const dir = await resolveInside(root, "usr/lib/x", { createParents: true });
 * ```
 * @module
 */
export {
  ConfinementError,
  isDnsLabel,
  linkTargetProblem,
  lstatOrUndefined,
  pathProblem,
  resolveInside,
} from "./path.ts";
export { MemberChecker } from "./members.ts";
export type { Member, MemberKind, MemberPolicy } from "./members.ts";
export { boundedInflate, LIMITS, limitStream, readBounded } from "./limits.ts";
export type { InflateLimits } from "./limits.ts";
