/**
 * The local environment's PKI: the openssl-based CA in `contract/pki.ts`,
 * which the controller also uses to issue the agents' certificates in a
 * cluster (docs/security.md).
 * @module
 */
export { Pki } from "../contract/pki.ts";
export type { CertPair, IssueOptions } from "../contract/pki.ts";
