/**
 * A small PKI made with the openssl CLI: a CA,
 * serving certificates with SANs, client certificates with CN/O (Kubernetes
 * maps them to user and groups), and a service-account signing key.
 * @module
 */

/** Paths of one issued key pair. */
export interface CertPair {
  /** PEM certificate. */
  cert: string;
  /** PEM private key. */
  key: string;
}

/** Options for {@linkcode Pki.issue}. */
export interface IssueOptions {
  /** Subject common name. */
  cn: string;
  /** Subject organizations (Kubernetes groups). */
  orgs?: string[];
  /** DNS names and IPs for a serving certificate. */
  sans?: string[];
  /** Extended key usages. */
  usage?: ("server" | "client")[];
  /** Validity in days (default 30). */
  days?: number;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  const out = await new Deno.Command("openssl", { args, cwd, stdout: "piped", stderr: "piped" })
    .output();
  if (!out.success) {
    throw new Error(
      `openssl ${args[0]} failed: ${new TextDecoder().decode(out.stderr).trim()}`,
    );
  }
}

/** A certificate authority in a directory. */
export class Pki {
  /** The CA certificate and key. */
  readonly ca: CertPair;

  private constructor(readonly dir: string) {
    this.ca = { cert: `${dir}/ca.crt`, key: `${dir}/ca.key` };
  }

  /** Creates a new CA named `name` in `dir`. */
  static async create(dir: string, name = "lpm-local-ca", days = 30): Promise<Pki> {
    await Deno.mkdir(dir, { recursive: true });
    const pki = new Pki(dir);
    await openssl([
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      pki.ca.key,
      "-out",
      pki.ca.cert,
      "-days",
      String(days),
      "-subj",
      `/CN=${name}`,
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
    ], dir);
    return pki;
  }

  /** SHA-256 fingerprint (lowercase hex) of a PEM certificate, as `--allowed-client sha256:` takes it. */
  static async fingerprint(cert: string): Promise<string> {
    const out = await new Deno.Command("openssl", {
      args: ["x509", "-noout", "-fingerprint", "-sha256", "-in", cert],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) throw new Error(`Cannot fingerprint "${cert}": openssl failed`);
    return new TextDecoder().decode(out.stdout).trim().split("=")[1].replaceAll(":", "")
      .toLowerCase();
  }

  /** Opens the CA already in `dir` (`ca.crt`, `ca.key`) to issue more certificates. */
  static async open(dir: string): Promise<Pki> {
    const pki = new Pki(dir);
    await Deno.stat(pki.ca.key).catch(() => {
      throw new Error(`Cannot open the CA in "${dir}": "${pki.ca.key}" does not exist`);
    });
    return pki;
  }

  /** Issues a certificate signed by this CA; files are named after `file`. */
  async issue(file: string, opts: IssueOptions): Promise<CertPair> {
    const pair = { cert: `${this.dir}/${file}.crt`, key: `${this.dir}/${file}.key` };
    const csr = `${this.dir}/${file}.csr`;
    const ext = `${this.dir}/${file}.ext`;
    const subj = `/CN=${opts.cn}` + (opts.orgs ?? []).map((o) => `/O=${o}`).join("");
    await openssl([
      "req",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      pair.key,
      "-out",
      csr,
      "-subj",
      subj,
    ], this.dir);
    const usage = (opts.usage ?? ["client"]).map((u) =>
      u === "server" ? "serverAuth" : "clientAuth"
    );
    const lines = [
      "basicConstraints=critical,CA:FALSE",
      "keyUsage=critical,digitalSignature,keyEncipherment",
      `extendedKeyUsage=${usage.join(",")}`,
    ];
    if (opts.sans?.length) {
      const sans = opts.sans.map((s) => /^[\d.]+$|:/.test(s) ? `IP:${s}` : `DNS:${s}`);
      lines.push(`subjectAltName=${sans.join(",")}`);
    }
    await Deno.writeTextFile(ext, lines.join("\n") + "\n");
    await openssl([
      "x509",
      "-req",
      "-in",
      csr,
      "-CA",
      this.ca.cert,
      "-CAkey",
      this.ca.key,
      // A random serial per certificate: issuing in parallel must not share a serial file.
      "-set_serial",
      `0x${
        crypto.getRandomValues(new Uint8Array(16)).reduce((s, b) =>
          s + b.toString(16).padStart(2, "0"), "").replace(/^./, "1")
      }`,
      "-out",
      pair.cert,
      "-days",
      String(opts.days ?? 30),
      "-extfile",
      ext,
    ], this.dir);
    await Deno.remove(csr);
    await Deno.remove(ext);
    return pair;
  }

  /** Creates an EC key pair for signing (service-account tokens). */
  async signingKey(file: string): Promise<{ key: string; pub: string }> {
    const key = `${this.dir}/${file}.key`;
    const pub = `${this.dir}/${file}.pub`;
    await openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key], this.dir);
    await openssl(["ec", "-in", key, "-pubout", "-out", pub], this.dir);
    return { key, pub };
  }
}
