/** The host's CPU architecture in the names Kubernetes and OCI use. @module */

const GOARCH: Record<string, string> = {
  x86_64: "amd64",
  aarch64: "arm64",
  arm: "arm",
  riscv64: "riscv64",
  s390x: "s390x",
  powerpc64le: "ppc64le",
};

/**
 * The GOARCH name (as in `node.status.nodeInfo.architecture` and OCI image
 * platforms) of a Deno/Rust architecture name; this host's by default.
 */
export function hostArchitecture(arch: string = Deno.build.arch): string {
  return GOARCH[arch] ?? arch;
}
