/** Small argument parsing for the lpm commands. @module */

/** Parsed flags and positional arguments. */
export interface Args {
  /** Positional arguments in order. */
  positional: string[];
  /** Flags by long name; boolean flags are "true". */
  flags: Record<string, string>;
}

/**
 * Parses `args`. `aliases` maps short flags to long ones (`n` -> `namespace`);
 * `booleans` lists flags that take no value. Unknown flags are errors.
 */
export function parseArgs(
  args: string[],
  spec: { known: string[]; booleans?: string[]; aliases?: Record<string, string> },
): Args {
  const out: Args = { positional: [], flags: {} };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (!a.startsWith("-") || a === "-") {
      out.positional.push(a);
      continue;
    }
    let [name, value] = a.replace(/^--?/, "").split(/=(.*)/s, 2) as [string, string | undefined];
    name = spec.aliases?.[name] ?? name;
    if (!spec.known.includes(name)) {
      throw new Error(`Unknown flag "${a}" (known: ${spec.known.map((k) => `--${k}`).join(", ")})`);
    }
    if (spec.booleans?.includes(name)) {
      out.flags[name] = value ?? "true";
      continue;
    }
    if (value === undefined) {
      value = args[++i];
      if (value === undefined) throw new Error(`Flag "--${name}" needs a value`);
    }
    out.flags[name] = value;
  }
  return out;
}

/** The kubeconfig to use: --kubeconfig, $KUBECONFIG, the local environment's, else ~/.kube/config. */
export function kubeconfigPath(flag?: string): string {
  if (flag) return flag;
  const env = Deno.env.get("KUBECONFIG");
  if (env) return env;
  const local = new URL("../.lpm/kubeconfig", import.meta.url).pathname;
  try {
    Deno.statSync(local);
    return local;
  } catch {
    return `${Deno.env.get("HOME")}/.kube/config`;
  }
}
