import { resolve } from "node:path";
import { loadStack } from "../../config/index.js";
import { InputError } from "../../errors.js";
import { loadSigningKey } from "../../sign/key.js";
import { chooseReporter } from "../../ui/live.js";
import { cacheRoot, envPairs, targetList } from "../options.js";
import { abortOnSignals } from "../signals.js";

export interface KitFlags {
  cacheDir?: string;
  network?: string;
  env?: unknown;
  withBuildcache?: boolean;
  signKey?: string;
  signPassphraseFile?: string;
  stack?: string;
  target?: unknown;
  keyring?: string;
  verbose?: boolean;
}

/** `kit create <stack> DIR` and `kit verify DIR`. Returns the exit code. */
export async function kitCommand(action: string, args: string[], flags: KitFlags): Promise<number> {
  if (action === "create") {
    const [stackFile, dir] = args;
    if (stackFile === undefined || dir === undefined || args.length !== 2)
      throw new InputError("kit create: expected <stack.yaml> DIR");
    return create(stackFile, dir, flags);
  }
  if (action === "verify") {
    const [dir] = args;
    if (dir === undefined || args.length !== 1) throw new InputError("kit verify: expected DIR");
    return verify(dir, flags);
  }
  throw new InputError(`kit: unknown action "${action}"; expected create or verify`);
}

async function create(stackFile: string, dir: string, flags: KitFlags): Promise<number> {
  const stack = await loadStack(stackFile);
  const signing = await loadSigningKey({
    ...(flags.signKey === undefined ? {} : { signKey: flags.signKey }),
    ...(flags.signPassphraseFile === undefined ? {} : { signPassphraseFile: flags.signPassphraseFile }),
  });
  if (flags.network !== undefined && !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(flags.network))
    throw new InputError(
      `--network: expected a Docker network name such as host, got ${JSON.stringify(flags.network)}`,
    );
  const reporter = chooseReporter(process.stderr, { verbose: flags.verbose === true });
  const { signal, dispose } = abortOnSignals(() => undefined);
  try {
    const { createKit } = await import("../../kit/create.js");
    const made = await createKit(stack, {
      kitDir: resolve(dir),
      cacheRoot: cacheRoot(flags.cacheDir),
      reporter,
      signal,
      extraEnv: envPairs(flags.env),
      ...(flags.network === undefined ? {} : { network: flags.network }),
      ...(flags.withBuildcache === true ? { withBuildcache: true } : {}),
      ...(signing === undefined ? {} : { signing }),
    });
    reporter.close();
    const m = made.manifest;
    const sources = new Set(
      Object.values(m.specs).flatMap((s) => s.flatMap((x) => (x.source === undefined ? [] : [x.source]))),
    );
    process.stdout.write(
      `kit ${resolve(dir)}: ${m.stack.name} ${m.stack.version}, targets ${m.targets.join(", ")}, ` +
        `${sources.size} source archive(s), ${m.images.length} builder image(s), ` +
        `${(made.bytes / 1024 / 1024).toFixed(1)} MiB in ${Object.keys(m.files).length} files, ${made.seconds.toFixed(0)} s` +
        `${signing === undefined ? "" : `, kit.json signed by ${signing.fingerprint}`}\n`,
    );
    return 0;
  } finally {
    reporter.close();
    dispose();
  }
}

async function verify(dir: string, flags: KitFlags): Promise<number> {
  const { verifyKit } = await import("../../kit/verify.js");
  const stack = flags.stack === undefined ? undefined : await loadStack(flags.stack);
  const targets = targetList(flags.target);
  const verdict = await verifyKit(resolve(dir), {
    ...(stack === undefined ? {} : { stack }),
    ...(flags.keyring === undefined ? {} : { keyring: flags.keyring }),
    ...(targets === undefined ? {} : { targets }),
  });
  for (const note of verdict.notes) process.stdout.write(`note ${note}\n`);
  for (const problem of verdict.problems) process.stdout.write(`FAIL ${problem}\n`);
  const files = Object.keys(verdict.manifest.files).length;
  process.stdout.write(
    verdict.problems.length === 0
      ? `ok   kit ${resolve(dir)}: ${files} files match kit.json${stack === undefined ? "" : `, it covers ${stack.file}`}\n`
      : `kit ${resolve(dir)}: ${verdict.problems.length} problem(s)\n`,
  );
  return verdict.problems.length === 0 ? 0 : 1;
}
