/**
 * The hostile-input corpus: tar streams whose structure lies (sizes,
 * fields, truncation), members that try to leave their root (traversal,
 * absolute, NUL, symbolic and hard links out, a file written through a
 * planted link, devices, names outside a fixed layout), deleted-file lists
 * that escape, and checkpoint metadata with hostile container names. Each
 * case says which refusal each reader must give; `undefined` means that
 * reader legitimately accepts the member (e.g. `etc/passwd` in a root
 * filesystem diff). Built in code: nothing binary is committed.
 * @module
 */
import { checkpointBase, pax, type RawMember } from "./tar.ts";

/** A tar whose structure is hostile: every reader refuses it the same way. */
export interface StructureCase {
  /** Case name. */
  name: string;
  /** Members after the valid checkpoint base. */
  members: RawMember[];
  /** Cut the tar to this many bytes (a truncated archive), counted from the case's own bytes. */
  truncateTail?: number;
  /** The refusal. */
  expect: RegExp;
}

const KiB = 1024;

/** Structure cases: the tar reader itself refuses them. */
export const STRUCTURE_CASES: StructureCase[] = [
  {
    name: "pax size negative",
    members: [pax([["size", "-1"]]), { name: "checkpoint/pages-1.img", data: "abc" }],
    expect: /pax header: size "-1" is not a non-negative integer/,
  },
  {
    name: "pax size huge (1000 TiB)",
    members: [pax([["size", "1099511627776000"]]), { name: "checkpoint/pages-1.img", data: "" }],
    expect: /Tar member "checkpoint\/pages-1.img" is 1099511627776000 bytes, more than the limit/,
  },
  {
    name: "pax size not a number",
    members: [pax([["size", "12abc"]]), { name: "checkpoint/pages-1.img", data: "" }],
    expect: /pax header: size "12abc" is not a non-negative integer/,
  },
  {
    name: "ustar size not octal",
    members: [{ name: "checkpoint/pages-1.img", data: "", sizeField: "0000000009x\0" }],
    expect: /Corrupt tar header: size "0000000009x\\u0000" is not octal/,
  },
  {
    name: "ustar size negative base-256",
    members: [{
      name: "checkpoint/pages-1.img",
      data: "",
      sizeField: new Uint8Array(12).fill(0xff),
    }],
    expect: /Corrupt tar header: negative base-256 size/,
  },
  {
    name: "pax record malformed",
    members: [pax([], "abc path=x\n"), { name: "checkpoint/x.img", data: "" }],
    expect: /Corrupt pax header: record length "abc"/,
  },
  {
    name: "pax header of 2 MiB",
    members: [{ name: "PaxHeader", type: "x", data: "", sizeField: "00010000000\0" }],
    expect: /pax header of 2097152 bytes \(limit 1048576\)/,
  },
  {
    name: "truncated member data",
    members: [{ name: "checkpoint/pages-1.img", data: new Uint8Array(4 * KiB).fill(7) }],
    // Keep the header and 100 bytes of data.
    truncateTail: 512 + 100,
    expect: /Truncated tar stream/,
  },
  {
    name: "truncated header",
    members: [{ name: "checkpoint/pages-1.img", data: "x" }],
    truncateTail: 300,
    expect: /Truncated tar stream/,
  },
];

/** What a path case's refusal is for each member policy (undefined: accepted). */
export interface PathExpect {
  /** The checkpoint archive (readArchive, unpackArchive). */
  archive: RegExp;
  /** An OCI layout tarball. */
  layout: RegExp;
  /** A root filesystem diff (Docker restore). */
  rootfs?: RegExp;
}

/** A member list that tries to leave its root. */
export interface PathCase {
  /** Case name. */
  name: string;
  /** Members (after the reader's valid base); `sentinel` is the absolute sentinel dir. */
  members: (sentinel: string) => RawMember[];
  /** Refusals. */
  expect: PathExpect;
}

const dotdot = /it contains "\.\."/;

/** Path cases: the member checkers refuse them before anything is written. */
export const PATH_CASES: PathCase[] = [
  {
    name: "traversal ../",
    members: () => [{ name: "../sentinel/victim", data: "pwned" }],
    expect: { archive: dotdot, layout: dotdot, rootfs: dotdot },
  },
  {
    name: "traversal inside a name",
    members: () => [{ name: "checkpoint/../../sentinel/victim", data: "pwned" }],
    expect: { archive: dotdot, layout: dotdot, rootfs: dotdot },
  },
  {
    name: "absolute path",
    members: (s) => [{ name: `${s}/victim`.slice(0, 99), data: "pwned" }],
    expect: { archive: /it is absolute/, layout: /it is absolute/, rootfs: /it is absolute/ },
  },
  {
    name: "NUL in a pax path",
    members: () => [pax([["path", "checkpoint/a\0/../../x"]]), { name: "x", data: "pwned" }],
    expect: {
      archive: /contains a NUL byte/,
      layout: /contains a NUL byte/,
      rootfs: /contains a NUL byte/,
    },
  },
  {
    name: "symlink pointing out",
    members: () => [{ name: "checkpoint/lnk", type: "2", linkname: "../../sentinel" }],
    expect: {
      archive: /symbolic links are not allowed/,
      layout: /symbolic links are not allowed/,
      rootfs: /symbolic link: its target "..\/..\/sentinel" points outside the root/,
    },
  },
  {
    name: "symlink then a file written through it",
    members: (s) => [
      // Inside a container root an absolute target is the container's; on the host it is the
      // sentinel: only the refusal to write through it keeps the host safe.
      { name: "lnk", type: "2", linkname: s },
      { name: "lnk/victim", data: "pwned" },
    ],
    expect: {
      archive: /symbolic links are not allowed/,
      layout: /symbolic links are not allowed/,
      rootfs: /Refusing member "lnk\/victim".*"lnk" is a symbolic link earlier in the archive/,
    },
  },
  {
    name: "hard link pointing out",
    members: () => [{ name: "checkpoint/hl", type: "1", linkname: "../../sentinel/victim" }],
    expect: {
      archive: /hard links are not allowed/,
      layout: /hard links are not allowed/,
      rootfs: /hard link target "..\/..\/sentinel\/victim": it contains ".."/,
    },
  },
  {
    name: "hard link to an absolute host path",
    members: (s) => [{ name: "hl", type: "1", linkname: `${s}/victim`.slice(0, 99) }],
    expect: {
      archive: /hard links are not allowed/,
      layout: /hard links are not allowed/,
      rootfs: /hard link target .*: it is absolute/,
    },
  },
  {
    name: "character device",
    members: () => [{ name: "checkpoint/mem", type: "3" }],
    expect: {
      archive: /char devices are not allowed/,
      layout: /char devices are not allowed/,
      rootfs: /char devices are not allowed/,
    },
  },
  {
    name: "FIFO",
    members: () => [{ name: "checkpoint/pipe", type: "6" }],
    expect: {
      archive: /FIFOs are not allowed/,
      layout: /FIFOs are not allowed/,
      rootfs: /FIFOs are not allowed/,
    },
  },
  {
    name: "name outside the layout",
    members: () => [{ name: "etc", type: "5" }, { name: "etc/cron.d", data: "* * * * * root x" }],
    expect: {
      archive: /top-level members must be regular files/,
      layout: /"etc".*not part of an OCI image layout/,
      // A root filesystem diff may hold any path inside the root.
      rootfs: undefined,
    },
  },
];

/** Deleted-file lists a checkpoint may carry (Docker restore turns them into whiteouts). */
export const DELETED_CASES: { name: string; deleted: string[]; expect: RegExp }[] = [
  {
    name: "deleted path with ..",
    deleted: ["/../../etc/shadow"],
    expect: /"deleted.files" entry 0 "\/..\/..\/etc\/shadow": it contains ".."/,
  },
  {
    name: "deleted path not absolute",
    deleted: ["/ok", "etc/shadow"],
    expect: /"deleted.files" entry 1 "etc\/shadow": it is not an absolute path/,
  },
  {
    name: "deleted path with NUL",
    deleted: ["/etc/sha\0dow"],
    expect: /"deleted.files" entry 0 .*: it contains a NUL byte/,
  },
  {
    name: "deleted root",
    deleted: ["/"],
    expect: /"deleted.files" entry 0 "\/": it names the root/,
  },
];

/** Container names stored metadata may carry. */
export const CONTAINER_NAME_CASES: { name: string; container: unknown }[] = [
  { name: "traversal", container: "../../x" },
  { name: "slash", container: "a/b" },
  { name: "very long", container: "a".repeat(300) },
  { name: "NUL", container: "app\0x" },
  { name: "upper case", container: "App" },
  { name: "not a string", container: { evil: true } },
];

export { checkpointBase };
