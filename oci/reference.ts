/**
 * Image references: `host[:port]/repo/path[:tag][@sha256:...]`.
 * @module
 */

/** A parsed image reference. */
export interface ImageReference {
  /** Registry host (with port). */
  host: string;
  /** Repository path. */
  repository: string;
  /** Tag, when given. */
  tag?: string;
  /** Digest, when given. */
  digest?: string;
}

/** Parses a reference; the registry host is required (no Docker Hub default). */
export function parseReference(ref: string): ImageReference {
  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!/^sha256:[a-f0-9]{64}$/.test(digest)) {
      throw new Error(`Invalid image reference "${ref}": bad digest "${digest}"`);
    }
  }
  const slash = rest.indexOf("/");
  if (slash < 0) throw new Error(`Invalid image reference "${ref}": no registry host`);
  const host = rest.slice(0, slash);
  let repository = rest.slice(slash + 1);
  let tag: string | undefined;
  const colon = repository.lastIndexOf(":");
  if (colon >= 0) {
    tag = repository.slice(colon + 1);
    repository = repository.slice(0, colon);
    if (!/^[\w][\w.-]{0,127}$/.test(tag)) {
      throw new Error(`Invalid image reference "${ref}": bad tag "${tag}"`);
    }
  }
  if (!/^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$/.test(repository)) {
    throw new Error(`Invalid image reference "${ref}": bad repository "${repository}"`);
  }
  return { host, repository, tag, digest };
}

/** Formats a reference back (`host/repo:tag@digest`). */
export function formatReference(r: ImageReference): string {
  return `${r.host}/${r.repository}${r.tag ? `:${r.tag}` : ""}${r.digest ? `@${r.digest}` : ""}`;
}
