/**
 * Targets × engines: which engines can build which targets (by architecture family), and the order they are handed
 * out in. An x86_64-family target goes to an amd64 engine, an aarch64-family target to an arm64 engine; a target
 * no engine can build is refused before anything runs. Within a family a target takes the next free slot of any
 * engine that can build it: one p-queue per engine (its concurrency), one global order (the plan's). No I/O here:
 * the caller runs the targets and says which engines have gone down.
 */
import PQueue from "p-queue";
import { InputError } from "../errors.js";
import type { Family } from "../targets/index.js";

/** What an engine reports as its architecture (`docker version` Arch or `docker info` Architecture) → family. */
const FAMILY_OF_ARCH: Record<string, Family> = {
  amd64: "x86_64",
  x86_64: "x86_64",
  arm64: "aarch64",
  aarch64: "aarch64",
};

/** The family of targets an engine of this architecture builds; undefined for one the factory has no targets for. */
export function familyOfEngineArch(arch: string): Family | undefined {
  return FAMILY_OF_ARCH[arch.toLowerCase()];
}

/** The Docker architecture of a family's engines, for messages. */
const ARCH_OF_FAMILY: Record<Family, string> = { x86_64: "amd64", aarch64: "arm64" };

/** The architecture of an engine that takes every target: the one default engine, which builds what it is given. */
export const ANY_ARCH = "*";

export interface DispatchEngine {
  name: string;
  /** As the engine reports it: amd64, arm64, ...; or ANY_ARCH. */
  arch: string;
  /** Containers at once on it. */
  concurrency: number;
}

export interface DispatchTarget {
  target: string;
  family: string;
}

/**
 * The engines each target can go to, in engine order. Refuses, all at once and with the reason, every target no
 * engine can build.
 */
export function eligibleEngines(
  targets: readonly DispatchTarget[],
  engines: readonly DispatchEngine[],
): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const refused: string[] = [];
  for (const t of targets) {
    const able = engines
      .filter((e) => e.arch === ANY_ARCH || familyOfEngineArch(e.arch) === t.family)
      .map((e) => e.name);
    if (able.length === 0) {
      const wanted = ARCH_OF_FAMILY[t.family as Family];
      const have = engines.map((e) => `${e.name} (${e.arch})`).join(", ");
      refused.push(
        `target ${t.target} refused: it is an ${t.family} target and no engine builds ${t.family}` +
          `${wanted === undefined ? "" : ` (it needs an ${wanted} engine)`}; engines: ${have === "" ? "none" : have}`,
      );
    }
    out.set(t.target, able);
  }
  if (refused.length > 0) {
    throw new InputError(refused.join("\n"), {
      hint: "add an engine of that architecture (--engine URL or engines: in the --factory file), or leave the target out (--target)",
    });
  }
  return out;
}

export interface DispatchOptions<R> {
  targets: readonly DispatchTarget[];
  engines: readonly DispatchEngine[];
  /** Builds one target on one engine. Must not reject: a failure is a result. */
  run: (target: DispatchTarget, engine: string) => Promise<R>;
  /** Why an engine takes no more targets (it went down), or undefined while it is usable. Asked before each hand-out. */
  down?: (engine: string) => string | undefined;
  /** The result of a target left without a usable engine (every engine of its family went down). */
  stranded: (target: DispatchTarget, reason: string) => R;
}

/**
 * Run every target on an engine that can build it, each as soon as such an engine has a free slot, in plan order
 * among the targets waiting. Resolves with the results in target order. Throws (before running anything) when a
 * target has no engine at all.
 */
export async function dispatch<R>(options: DispatchOptions<R>): Promise<R[]> {
  const { targets, engines } = options;
  const eligible = eligibleEngines(targets, engines);
  const down = options.down ?? (() => undefined);
  const queues = new Map(engines.map((e) => [e.name, new PQueue({ concurrency: e.concurrency })]));
  const results: R[] = new Array<R>(targets.length);
  const waiting = targets.map((target, index) => ({ target, index }));
  let running = 0;

  return new Promise<R[]>((resolve, reject) => {
    const pump = (): void => {
      for (const engine of engines) {
        if (down(engine.name) !== undefined) continue;
        const queue = queues.get(engine.name) as PQueue;
        while (queue.pending + queue.size < engine.concurrency) {
          const k = waiting.findIndex((w) => eligible.get(w.target.target)?.includes(engine.name) === true);
          if (k < 0) break;
          const [next] = waiting.splice(k, 1);
          const { target, index } = next as (typeof waiting)[number];
          running++;
          void queue
            .add(() => options.run(target, engine.name))
            .then(
              (result) => {
                results[index] = result as R;
              },
              (error: unknown) => reject(error),
            )
            .finally(() => {
              running--;
              pump();
            });
        }
      }
      // A waiting target whose engines have all gone down will never run.
      for (let k = waiting.length - 1; k >= 0; k--) {
        const { target, index } = waiting[k] as (typeof waiting)[number];
        const able = eligible.get(target.target) ?? [];
        const reasons = able.map((name) => [name, down(name)] as const);
        if (reasons.every(([, why]) => why !== undefined)) {
          waiting.splice(k, 1);
          results[index] = options.stranded(
            target,
            `no ${target.family} engine left: ${reasons.map(([name, why]) => `${name} ${why}`).join("; ")}`,
          );
        }
      }
      if (waiting.length === 0 && running === 0) resolve(results);
    };
    pump();
  });
}
