/**
 * A plan written by `plan --out`, read back to run (`build --plan DIR`): `plan.json` is the plan; the other files are
 * views of it and must say the same. Refused, with the reason: another plan format or factory, a builder tag that
 * is not its recipe's, a placement that is not the one its own inputs give, a cache mount outside the cache roots,
 * and views that differ from plan.json (an edit there would not run).
 */
import { isAbsolute, join, normalize } from "node:path";
import type { FactoryIdentity } from "../factory-identity.js";
import { InputError } from "../errors.js";
import { readUserFile } from "../fs/user-file.js";
import { placePlan, REGISTRY_CREDENTIALS_SECRET } from "./placement.js";
import { contentHash, PLAN_FORMAT_VERSION } from "./plan.js";
import type { BuildPlan, PlanPlacement } from "./types.js";
import { planFiles } from "./write.js";

/** A plan is data the factory wrote; a larger file is not one. */
const MAX_PLAN_BYTES = 64 * 1024 * 1024;

export async function readPlan(dir: string, factory: FactoryIdentity): Promise<BuildPlan> {
  const file = join(dir, "plan.json");
  const text = (await readUserFile(file, { what: "plan", maxBytes: MAX_PLAN_BYTES })).toString("utf8");
  let plan: BuildPlan;
  try {
    plan = JSON.parse(text) as BuildPlan;
  } catch (error) {
    throw new InputError(`${file}: not JSON (${error instanceof Error ? error.message : String(error)})`);
  }
  const problems = planProblems(plan, factory);
  if (problems.length > 0)
    throw new InputError(`${file}: ${problems.join("; ")}`, {
      hint: "make the plan again with this factory: stack-factory plan STACK --out DIR",
    });
  await checkViews(plan, dir);
  return plan;
}

/** Pure: why the plan cannot run on this factory (empty when it can). */
export function planProblems(plan: BuildPlan, factory: FactoryIdentity): string[] {
  if (typeof plan !== "object" || plan === null || Array.isArray(plan)) return ["not a plan (an object expected)"];
  if (plan.format_version !== PLAN_FORMAT_VERSION)
    return [`plan format ${String(plan.format_version)}, this factory reads format ${PLAN_FORMAT_VERSION}`];
  const placement = plan.placement as PlanPlacement | undefined;
  if (placement === undefined)
    return ["the plan is not placed on engines (written by `plan --json` or an older factory)"];
  const made = placement.factory;
  if (made?.version !== factory.version || made.digest !== factory.digest)
    return [
      `placed by stack-factory ${made?.version} (code ${made?.digest}), this is ${factory.version} (code ${factory.digest})`,
    ];
  if (plan.package === undefined) return ["a warm plan: `build --plan` runs plans made by `plan`"];
  const problems: string[] = [];
  const recipe = `stack-factory/builder:${contentHash(plan.builder.files)}`;
  if (plan.builder.tag !== recipe)
    problems.push(
      `builder.tag is ${plan.builder.tag}, its recipe (builder.files) makes ${recipe}: an image is named by its recipe`,
    );
  problems.push(...mountProblems(plan));
  if (problems.length > 0) return problems;
  const { placement: _placed, ...unplaced } = plan;
  const again = placePlan(unplaced, {
    ...placement,
    credentials: placement.secrets.includes(REGISTRY_CREDENTIALS_SECRET),
  }).placement;
  if (JSON.stringify(again) !== JSON.stringify(placement))
    problems.push("placement.targets is not what the plan's targets placed on its engines give (edited by hand?)");
  return problems;
}

/**
 * Caches are directories under a cache root, named relative to it; trees (checkouts, clones, repositories, mirrors)
 * are mounted read-only. A plan cannot mount anything else (`/etc` read-write, a home directory) into a build
 * container.
 */
function mountProblems(plan: BuildPlan): string[] {
  const out: string[] = [];
  const content = new Set(["spack", "spack-packages", "repo", "mirror"]);
  for (const t of plan.targets) {
    for (const m of t.mounts) {
      const at = `targets.${t.target}: mount ${m.container}`;
      const underRoot =
        !m.hostIsAbsolute && !isAbsolute(m.host) && m.host !== "" && !normalize(m.host).startsWith("..");
      if (content.has(m.kind)) {
        if (!m.readOnly || !(underRoot || (m.hostIsAbsolute && isAbsolute(m.host))))
          out.push(`${at}: a ${m.kind} tree is mounted read-only, from a checkout or a clone under the cache root`);
      } else if (!underRoot)
        out.push(`${at}: a ${m.kind} cache is a directory under the cache root, named relative to it`);
    }
  }
  return out;
}

/** Each view `plan --out` wrote beside plan.json says what plan.json says. */
async function checkViews(plan: BuildPlan, dir: string): Promise<void> {
  for (const [rel, content] of Object.entries(planFiles(plan))) {
    if (rel === "plan.json") continue;
    const there = await readUserFile(join(dir, rel), { what: "", maxBytes: MAX_PLAN_BYTES })
      .then((b) => b.toString("utf8"))
      .catch(() => undefined);
    if (there !== content)
      throw new InputError(
        `${join(dir, rel)}: ${there === undefined ? "missing or not a regular file" : "differs from plan.json"}; plan.json is what runs, the other files are views of it`,
        { hint: "make the plan again, or edit plan.json itself (its builder tag must stay its recipe's)" },
      );
  }
}
