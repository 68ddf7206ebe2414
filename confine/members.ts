/**
 * Archive members checked against a policy before anything is written:
 * names confined to the root, no member written through a symbolic link the
 * archive planted, links that stay inside, no devices or FIFOs unless
 * allowed, and (for fixed layouts) only the names the layout has.
 * @module
 */
import { ConfinementError, linkTargetProblem, pathProblem } from "./path.ts";

/** Kinds of archive members. */
export type MemberKind =
  | "file"
  | "dir"
  | "symlink"
  | "link"
  | "char"
  | "block"
  | "fifo"
  | "other";

/** What a checker needs to know about a member. */
export interface Member {
  /** Path inside the archive. */
  name: string;
  /** Its kind. */
  type: MemberKind;
  /** Target of a symbolic or hard link. */
  linkname?: string;
}

/** What a {@linkcode MemberChecker} allows. */
export interface MemberPolicy {
  /** Names the archive in messages, e.g. `checkpoint archive "x.tar"`. */
  what: string;
  /**
   * Symbolic links: refused (`"none"`, the default), or allowed when their
   * target stays inside the root (`"inside"`; absolute targets count from the
   * root, as in a container's root filesystem).
   */
  symlinks?: "none" | "inside";
  /** Hard links (to a confined name, not through a symbolic link); default refused. */
  hardlinks?: boolean;
  /** Character and block devices and FIFOs; default refused. */
  devices?: boolean;
  /** A fixed layout: why `name` of kind `type` is not part of it, or undefined. */
  layout?: (name: string, type: MemberKind) => string | undefined;
  /** Most members accepted (default 1,000,000). */
  maxMembers?: number;
}

/** Checks the members of one archive, in order. */
export class MemberChecker {
  #policy: MemberPolicy;
  #kinds = new Map<string, MemberKind>();
  #count = 0;

  /** A checker for one archive. */
  constructor(policy: MemberPolicy) {
    this.#policy = policy;
  }

  #refuse(name: string, why: string): never {
    throw new ConfinementError(`Refusing member "${name}" of ${this.#policy.what}: ${why}`);
  }

  /** The member's name without `./` and a trailing `/`; throws a {@linkcode ConfinementError}. */
  check(m: Member): string {
    const p = this.#policy;
    if (++this.#count > (p.maxMembers ?? 1_000_000)) {
      this.#refuse(m.name, `the archive has more than ${p.maxMembers ?? 1_000_000} members`);
    }
    const name = m.name.replace(/^(\.\/)+/, "").replace(/\/+$/, "");
    if (name === "" || name === ".") {
      if (m.type === "dir") return "";
      this.#refuse(m.name, "it names the root");
    }
    const problem = pathProblem(name);
    if (problem) this.#refuse(m.name, problem);
    // No member may be written through a symbolic link (or a file) the archive made before.
    const segs = name.split("/");
    for (let i = 1; i < segs.length; i++) {
      const prefix = segs.slice(0, i).join("/");
      const kind = this.#kinds.get(prefix);
      if (kind === "symlink") {
        this.#refuse(m.name, `"${prefix}" is a symbolic link earlier in the archive`);
      }
      if (kind && kind !== "dir") this.#refuse(m.name, `"${prefix}" is not a directory`);
    }
    switch (m.type) {
      case "symlink": {
        if ((p.symlinks ?? "none") === "none") {
          this.#refuse(m.name, `symbolic links are not allowed (to "${m.linkname ?? ""}")`);
        }
        const why = linkTargetProblem(name, m.linkname ?? "", { absolute: "root" });
        if (why) this.#refuse(m.name, `symbolic link: ${why}`);
        break;
      }
      case "link": {
        if (!p.hardlinks) this.#refuse(m.name, `hard links are not allowed (to "${m.linkname}")`);
        const target = (m.linkname ?? "").replace(/^(\.\/)+/, "");
        const why = pathProblem(target);
        if (why) this.#refuse(m.name, `hard link target "${m.linkname}": ${why}`);
        const tsegs = target.split("/");
        for (let i = 1; i <= tsegs.length; i++) {
          const prefix = tsegs.slice(0, i).join("/");
          if (this.#kinds.get(prefix) === "symlink") {
            this.#refuse(
              m.name,
              `hard link target "${m.linkname}" goes through symbolic link "${prefix}"`,
            );
          }
        }
        break;
      }
      case "char":
      case "block":
      case "fifo":
        if (!p.devices) {
          this.#refuse(
            m.name,
            `${m.type === "fifo" ? "FIFOs" : `${m.type} devices`} are not allowed`,
          );
        }
        break;
      case "other":
        this.#refuse(m.name, "unsupported member type");
    }
    const layoutWhy = p.layout?.(name, m.type);
    if (layoutWhy) this.#refuse(m.name, layoutWhy);
    this.#kinds.set(name, m.type);
    return name;
  }
}
