import { type ParseArgsConfig, parseArgs } from "node:util";

type Options = NonNullable<ParseArgsConfig["options"]>;

/** Exits with status 2 and `<command>: message` on stderr. */
export function cliFail(command: string, message: string, code = 2): never {
  process.stderr.write(`${command}: ${message}\n`);
  process.exit(code);
}

/**
 * Strict flag parsing shared by the npm scripts: unknown flags and positionals are usage errors
 * (exit 2 with the help text), and `-h/--help` prints the help and exits 0.
 */
export function parseCli<O extends Options>(command: string, options: O, help: string) {
  const all = { ...options, help: { type: "boolean", short: "h", default: false } } as const;
  let parsed: ReturnType<typeof parseArgs<{ options: typeof all; strict: true; allowPositionals: false }>>;
  try {
    parsed = parseArgs({ options: all, strict: true, allowPositionals: false });
  } catch (err) {
    cliFail(command, `${(err as Error).message}\n\n${help}`);
  }
  if ((parsed.values as { help?: boolean }).help) {
    process.stdout.write(help);
    process.exit(0);
  }
  return parsed.values;
}
