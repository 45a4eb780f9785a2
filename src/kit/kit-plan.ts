/**
 * Plans for kits. Pure: a build plan in, a plan out.
 *
 * `kitCreatePlan`: what `kit create` runs per target: the build's own steps up to concretization (so the factory's
 * kept locks are reused, and concretized where there is none), then `spack mirror create` of the environment into
 * the kit, and once, on the first target, `spack bootstrap mirror --binary-packages`. The kit directory is mounted
 * writable at KIT_CONTAINER.out.
 *
 * `planWithKit`: a build from a kit: every environment gets the kit's bootstrap source, trusted, mounted read-only.
 */
import { parse, stringify } from "yaml";
import type { BuildPlan, Step, TargetPlan } from "../plan/types.js";
import { bootstrapSourceConfig, spackCommands } from "../spack/contract.js";
import { KIT_BOOTSTRAP_SOURCE, KIT_LAYOUT } from "./layout.js";

/** Container paths of kit mounts. */
export const KIT_CONTAINER = { out: "/sf/kit-out", kit: "/sf/kit" } as const;

/** Steps of a build that feed concretization; everything after `concretize` is left out of a kit's run. */
function untilConcretized(steps: readonly Step[]): Step[] {
  const at = steps.findIndex((s) => s.id === "concretize");
  if (at < 0) throw new Error("kit plan: the build plan has no concretize step");
  // A compiler Spack builds is installed before concretizing: its sources come from the same mirror create.
  return steps.slice(0, at + 1);
}

function kitTarget(target: TargetPlan, first: boolean, kitDir: string): TargetPlan {
  const spack = target.steps.find((s) => s.id === "concretize")?.argv[0] as string;
  const paths = { spack, envDir: target.envDir };
  const mirror = `${KIT_CONTAINER.out}/${KIT_LAYOUT.mirror}`;
  // A compiler Spack builds has an environment of its own: its sources go into the kit too.
  const compilerEnv = target.steps.find((s) => s.id === "compiler-install")?.argv[2];
  const steps: Step[] = [
    ...untilConcretized(target.steps),
    ...(compilerEnv === undefined
      ? []
      : [
          {
            id: "mirror" as const,
            title: "mirror the sources of the compiler into the kit",
            argv: spackCommands.mirrorCreate({ spack, envDir: compilerEnv }, mirror),
          },
        ]),
    {
      id: "mirror",
      title: "mirror the sources of every concrete spec into the kit",
      argv: spackCommands.mirrorCreate(paths, mirror),
    },
  ];
  if (first) {
    steps.push({
      id: "bootstrap-mirror",
      title: "mirror Spack's bootstrap binaries (clingo, gnupg, patchelf) into the kit",
      argv: spackCommands.bootstrapMirror(paths, `${KIT_CONTAINER.out}/${KIT_LAYOUT.bootstrap}`),
    });
  }
  return {
    ...target,
    steps,
    mounts: [
      ...target.mounts,
      { kind: "mirror", host: kitDir, hostIsAbsolute: true, container: KIT_CONTAINER.out, readOnly: false },
    ],
  };
}

export function kitCreatePlan(plan: BuildPlan, kitDir: string): BuildPlan {
  const { package: _package, ...rest } = plan;
  return { ...rest, targets: plan.targets.map((t, i) => kitTarget(t, i === 0, kitDir)) };
}

/** Add the kit's trusted bootstrap source to one spack.yaml. */
function withBootstrap(yaml: string): string {
  const doc = parse(yaml) as { spack: Record<string, unknown> };
  doc.spack["bootstrap"] = bootstrapSourceConfig(
    KIT_BOOTSTRAP_SOURCE,
    `${KIT_CONTAINER.kit}/${KIT_LAYOUT.bootstrapBinaries}`,
  );
  return stringify(doc, { lineWidth: 0 });
}

export function planWithKit(plan: BuildPlan, kitDir: string): BuildPlan {
  const targets = plan.targets.map((t) => {
    const files = Object.fromEntries(
      Object.entries(t.files).map(([path, content]) => [
        path,
        path.endsWith("/spack.yaml") ? withBootstrap(content) : content,
      ]),
    );
    return {
      ...t,
      files,
      spackYaml: withBootstrap(t.spackYaml),
      mounts: [
        ...t.mounts,
        {
          kind: "mirror" as const,
          host: `${kitDir}/${KIT_LAYOUT.bootstrap}`,
          hostIsAbsolute: true,
          container: `${KIT_CONTAINER.kit}/${KIT_LAYOUT.bootstrap}`,
          readOnly: true,
        },
      ],
    };
  });
  return { ...plan, targets };
}
