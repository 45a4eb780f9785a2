/**
 * `build --plan DIR`: run a plan written earlier by `plan --out DIR` as it is, on the engines it was placed on. What
 * planning decided (targets, jobs, concurrency, engines, buildcache, the buildcache's signing key) is the plan's;
 * a flag or setting that says otherwise is refused, not silently followed or ignored.
 */
import { resolve } from "node:path";
import { buildEngines } from "../../api/build-engines.js";
import { runStack } from "../../api/build-stack.js";
import { engineChoice, loadFactorySettings, type FactorySettings } from "../../config/factory.js";
import { InputError } from "../../errors.js";
import { factoryIdentity } from "../../factory-identity.js";
import { readPlan } from "../../plan/read.js";
import { REGISTRY_CREDENTIALS_SECRET } from "../../plan/placement.js";
import type { BuildPlan, PlanPlacement } from "../../plan/types.js";
import { loadSigningKey, type SigningKey } from "../../sign/key.js";
import { chooseReporter } from "../../ui/live.js";
import { engineUrls } from "../options.js";
import { abortOnSignals } from "../signals.js";
import { runChoices, runReported, type BuildFlags } from "./build.js";

export async function buildPlanCommand(stackFile: string | undefined, dir: string, flags: BuildFlags): Promise<number> {
  if (stackFile !== undefined)
    throw new InputError(`build --plan ${dir}: the plan holds the stack; give no stack file (${stackFile})`);
  const decided: [string, unknown][] = [
    ["--target", flags.target],
    ["--jobs", flags.jobs],
    ["--concurrency", flags.concurrency],
    ["--kit", flags.kit],
    ["--bundle", flags.bundle],
  ];
  for (const [flag, value] of decided)
    if (value !== undefined && value !== false)
      throw new InputError(`build --plan: ${flag} is decided when planning; give it to \`stack-factory plan\``);
  const plan = await readPlan(resolve(dir), await factoryIdentity());
  const placement = plan.placement as PlanPlacement;
  const settings = flags.factory === undefined ? undefined : await loadFactorySettings(flags.factory);
  const signing = await loadSigningKey({
    ...(flags.signKey === undefined ? {} : { signKey: flags.signKey }),
    ...(flags.signPassphraseFile === undefined ? {} : { signPassphraseFile: flags.signPassphraseFile }),
    ...(flags.signKeyId === undefined ? {} : { signKeyId: flags.signKeyId }),
  });
  checkRunMatchesPlan(plan, { settings, signing, cacheDir: flags.cacheDir });
  const reporter = chooseReporter(process.stderr, { verbose: flags.verbose === true });
  const { signal, dispose } = abortOnSignals((sig) =>
    reporter.emit({ type: "info", message: `${sig}: stopping, removing this run's containers` }),
  );
  const choice = engineChoice(settings, engineUrls(flags.engine));
  const first = placement.engines[0];
  return runReported(
    async () => {
      const engines = choice.given
        ? await buildEngines(
            { engines: choice.engines, cacheRoot: placement.cacheRoot, reporter },
            {
              concurrency: first?.concurrency ?? 1,
              jobs: placement.jobs,
              reason: "as planned",
              targets: plan.targets.length,
            },
          )
        : undefined;
      return runStack(
        { plan, ...(engines === undefined ? {} : { engines }) },
        { mode: "build", ...runChoices(flags, signing, settings), reporter, signal },
      );
    },
    { stack: undefined, flags, mode: "build", reporter, dispose },
  );
}

/** Pure: the run's settings and flags against what the plan decided; an InputError naming the first difference. */
export function checkRunMatchesPlan(
  plan: BuildPlan,
  given: { settings: FactorySettings | undefined; signing: SigningKey | undefined; cacheDir: string | undefined },
): void {
  const placement = plan.placement as PlanPlacement;
  const refuse = (what: string) =>
    new InputError(`build --plan: ${what}`, { hint: "make the plan again with the settings and flags of this run" });
  if (given.cacheDir !== undefined && resolve(given.cacheDir) !== placement.cacheRoot)
    throw refuse(`--cache-dir ${resolve(given.cacheDir)}, the plan was placed with cache root ${placement.cacheRoot}`);
  const bc = (b: unknown) => (b === undefined ? "none" : JSON.stringify(b));
  if (bc(given.settings?.buildcache) !== bc(placement.buildcache))
    throw refuse(
      `the settings' buildcache is ${bc(given.settings?.buildcache)}, the plan's ${bc(placement.buildcache)}`,
    );
  if (placement.secrets.includes(REGISTRY_CREDENTIALS_SECRET) && given.settings?.credentials === undefined)
    throw refuse("the plan pushes with the registry's credentials and the settings name no credentials file");
  const planned = plan.targets.find((t) => t.signing !== undefined)?.signing?.fingerprint;
  const key = given.signing?.kind === "file" ? given.signing.fingerprint : undefined;
  if (planned !== key)
    throw refuse(
      planned === undefined
        ? `the plan's buildcache is not signed; --sign-key ${key} would sign it (give --sign-key to \`plan\`)`
        : `the plan signs its buildcache with key ${planned}; give --sign-key with that key${key === undefined ? "" : ` (not ${key})`}`,
    );
}
