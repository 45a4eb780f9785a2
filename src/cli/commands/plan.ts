import { resolve } from "node:path";
import { planStack } from "../../api/build-stack.js";
import { engineChoice, loadFactorySettings, secretFiles } from "../../config/factory.js";
import { loadStack } from "../../config/index.js";
import { InputError } from "../../errors.js";
import { planToJson, writePlan } from "../../plan/write.js";
import { loadSigningKey } from "../../sign/key.js";
import { chooseReporter } from "../../ui/live.js";
import {
  cacheRoot,
  checkInputFile,
  checkOutputDir,
  engineUrls,
  memoryBytes,
  positiveInt,
  targetList,
} from "../options.js";

export interface PlanFlags {
  target?: unknown;
  out?: string;
  json?: boolean;
  jobs?: unknown;
  concurrency?: unknown;
  memory?: unknown;
  cacheDir?: string;
  engine?: unknown;
  factory?: string;
  signKey?: string;
  signPassphraseFile?: string;
}

/**
 * The plan a `build` with the same flags and settings runs, placed on its engines: printed (`--json`) or written
 * (`--out DIR`, which `build --plan DIR` runs). Engines of the settings are reached (their architecture and size
 * place the targets); the one default engine is not.
 */
export async function planCommand(stackFile: string, flags: PlanFlags): Promise<void> {
  if (flags.out === undefined && flags.json !== true) {
    throw new InputError("plan: give --out DIR to write the plan's files, or --json to print it");
  }
  // Before anything is read or planned: a FIFO as the stack file would block, an --out under /proc would spin.
  await checkInputFile(stackFile, "stack file");
  if (flags.out !== undefined) await checkOutputDir(flags.out, "--out");
  const settings = flags.factory === undefined ? undefined : await loadFactorySettings(flags.factory);
  const secrets = [...secretFiles(settings), flags.signKey, flags.signPassphraseFile].filter(
    (f): f is string => f !== undefined,
  );
  const stack = await loadStack(stackFile, { secrets: secrets.map((f) => resolve(f)) });
  const signing = await loadSigningKey({
    ...(flags.signKey === undefined ? {} : { signKey: flags.signKey }),
    ...(flags.signPassphraseFile === undefined ? {} : { signPassphraseFile: flags.signPassphraseFile }),
  });
  const choice = engineChoice(settings, engineUrls(flags.engine));
  const targets = targetList(flags.target);
  const jobs = positiveInt(flags.jobs, "jobs");
  const concurrency = positiveInt(flags.concurrency, "concurrency");
  const memory = memoryBytes(flags.memory);
  const reporter = chooseReporter(process.stderr, { verbose: false });
  try {
    const { plan } = await planStack(stack, {
      mode: "build",
      cacheRoot: cacheRoot(flags.cacheDir),
      reporter,
      signal: new AbortController().signal,
      ...(targets === undefined ? {} : { targets }),
      ...(jobs === undefined ? {} : { jobs }),
      ...(concurrency === undefined ? {} : { concurrency }),
      ...(memory === undefined ? {} : { memory }),
      ...(signing === undefined ? {} : { signing }),
      ...(choice.given ? { engines: choice.engines } : {}),
      ...(settings?.buildcache === undefined ? {} : { buildcache: settings.buildcache }),
      ...(settings?.credentials === undefined ? {} : { credentialsFile: settings.credentials }),
      ...(settings?.buildcacheCa === undefined ? {} : { registryCaFile: settings.buildcacheCa }),
    });
    if (flags.json === true) process.stdout.write(planToJson(plan));
    if (flags.out !== undefined) {
      const written = await writePlan(plan, flags.out);
      if (flags.json !== true) for (const f of written) process.stdout.write(`${f}\n`);
    }
  } finally {
    reporter.close();
  }
}
