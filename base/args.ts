/**
 * The one argument parser of every lpm command (the CLI, the controller, the
 * agent, the local environment, the benchmarks and the hack scripts), so that
 * all of them spell flags, report unknown ones and take repeated ones alike.
 *
 * Why not `node:util` `parseArgs` (kept by decision, issue 14): lpm's
 * commands take booleans as `--flag=false` (`--leave-running=false`), which
 * `node:util` refuses ("does not take an argument"); its errors do not list
 * the known flags, which ours do for people typing commands; and it returns
 * repeated and single flags in one loosely typed record. The parser is ~70
 * lines pinned by args_test.ts.
 * @module
 */

/** Parsed flags and positional arguments. */
export interface Args {
  /** Positional arguments in order. */
  positional: string[];
  /** Flags by long name; boolean flags are "true"; a flag given twice keeps the last value. */
  flags: Record<string, string>;
  /** Every value of the flags in `spec.multiple`, in order (absent: not given). */
  lists: Record<string, string[]>;
}

/** What {@linkcode parseArgs} accepts. */
export interface ArgsSpec {
  /** Long names of the flags. */
  known: string[];
  /** Flags that take no value (`--flag`, or `--flag=false`). */
  booleans?: string[];
  /** Flags that may repeat (`--agent a --agent b`), collected in `lists`. */
  multiple?: string[];
  /** Short or alternative names to long ones (`n` -> `namespace`). */
  aliases?: Record<string, string>;
}

/**
 * Parses `args`. `aliases` maps short flags to long ones (`n` -> `namespace`);
 * `booleans` lists flags that take no value; `multiple` lists flags that may
 * repeat. Unknown flags are errors.
 */
export function parseArgs(args: string[], spec: ArgsSpec): Args {
  const out: Args = { positional: [], flags: {}, lists: {} };
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
    if (spec.multiple?.includes(name)) (out.lists[name] ??= []).push(value);
  }
  return out;
}

/**
 * A command's arguments, or the exit code it should end with: on `--help`
 * the usage goes to stdout (0); on a bad flag the error and the usage go to
 * stderr (2). Every command starts with this, so all of them answer alike.
 */
export function parseCommandArgs(
  args: string[],
  spec: ArgsSpec,
  usage: string,
): { args: Args } | { exit: number } {
  let parsed: Args;
  try {
    parsed = parseArgs(args, spec);
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${usage}`);
    return { exit: 2 };
  }
  if (parsed.flags.help) {
    console.log(usage);
    return { exit: 0 };
  }
  return { args: parsed };
}
