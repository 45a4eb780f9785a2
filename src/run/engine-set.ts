/**
 * The engines a run builds on, as one set: the one engine of a plain run is a set of one. The set knows which engines
 * are down (and why), which engines serve a target's family, and how a run names its engines in messages: a run over
 * the factory's engines names them (`on engine x86-a`); a run over its one engine does not, and its engine's failures
 * are the run's own.
 */
import { removeByLabel, removeDeadRuns } from "../docker/index.js";
import { BuildError } from "../errors.js";
import { ANY_ARCH, familyOfEngineArch } from "../plan/dispatch.js";
import type { TargetPlan } from "../plan/types.js";
import type { Reporter } from "../ui/reporter.js";
import type { DownEngine, RunEngine } from "./engines.js";

export interface EngineSetOptions {
  engine?: RunEngine["engine"];
  cacheRoot: string;
  concurrency: number;
  engines?: RunEngine[];
  downEngines?: DownEngine[];
}

export class EngineSet {
  /** Engines that went down, by name, with why: they take no more targets. */
  readonly down: Map<string, string>;
  private readonly byName: Map<string, RunEngine>;
  /** Containers of finished targets still being removed (their slots are free already). */
  private readonly removals = new Set<Promise<void>>();

  private constructor(
    readonly members: readonly RunEngine[],
    /** Whether messages and results name the engine (a run over the factory's engines). */
    readonly named: boolean,
    downEngines: readonly DownEngine[],
  ) {
    this.down = new Map(downEngines.map((d) => [d.name, `did not answer at ${d.where}: ${d.reason}`]));
    this.byName = new Map(members.map((e) => [e.name, e]));
  }

  /** `engines` when given (named), else `engine` alone with the run's cache root and concurrency, taking every target. */
  static of(options: EngineSetOptions): EngineSet {
    const one = options.engine;
    const members: RunEngine[] =
      options.engines ??
      (one === undefined
        ? []
        : [
            {
              name: one.name,
              engine: one,
              cacheRoot: options.cacheRoot,
              concurrency: options.concurrency,
              arch: ANY_ARCH,
            },
          ]);
    if (members[0] === undefined) throw new BuildError("runPlan: no engine to build on (give engine or engines)");
    return new EngineSet(members, options.engines !== undefined, options.downEngines ?? []);
  }

  /** Every engine labels what it creates with this run's id, pid and host. */
  get runId(): string {
    return (this.members[0] as RunEngine).engine.runId;
  }

  get concurrency(): number {
    return this.members.reduce((n, e) => n + e.concurrency, 0);
  }

  get(name: string): RunEngine {
    return this.byName.get(name) as RunEngine;
  }

  live(): RunEngine[] {
    return this.members.filter((e) => !this.down.has(e.name));
  }

  markDown(name: string, why: string): void {
    this.down.set(name, why);
  }

  /** A finished target's container, removed while its slot takes the next target; the run waits for it (`settle`). */
  removeLater(removal: Promise<void>): void {
    const tracked = removal.catch(() => undefined).finally(() => this.removals.delete(tracked));
    this.removals.add(tracked);
  }

  /** Every removal handed to `removeLater` done. */
  async settle(): Promise<void> {
    while (this.removals.size > 0) await Promise.all([...this.removals]);
  }

  /** `x86-a did not answer …; arm-b …`, for messages about engines down. */
  downList(): string {
    return [...this.down].map(([name, why]) => `${name} ${why}`).join("; ");
  }

  /** The engine builds targets of this family (the one engine of a plain run builds any). */
  static serves(e: RunEngine, target: TargetPlan): boolean {
    return e.arch === ANY_ARCH || familyOfEngineArch(e.arch) === target.family;
  }

  /** `{ engine: name }` for a result of a run that names its engines, else nothing. */
  tag(name: string): { engine?: string } {
    return this.named ? { engine: name } : {};
  }

  /** Containers of dead runs removed from every engine; an engine that fails is down (the one engine's failure is the run's). */
  async removeLeftovers(reporter: Reporter): Promise<void> {
    for (const e of this.members) {
      const leftovers = await removeDeadRuns(e.engine).catch((error: unknown) => {
        if (!this.named) throw error;
        this.down.set(e.name, error instanceof Error ? error.message : String(error));
        return undefined;
      });
      if (leftovers === undefined || leftovers.length === 0) continue;
      const where = this.named ? ` on engine ${e.name}` : "";
      reporter.emit({ type: "info", message: `removed ${leftovers.length} container(s) left by dead runs${where}` });
    }
  }

  /** A target's failure on an engine, naming the engine (and marking it down when it stopped answering). */
  async failureMessage(e: RunEngine, message: string, cancelled: boolean): Promise<string> {
    if (!this.named || cancelled) return message;
    const gone = await e.engine.unreachable();
    if (gone !== undefined) this.down.set(e.name, gone);
    return `on engine ${e.name}${gone === undefined ? "" : ` (it ${gone})`}: ${message}`;
  }

  /** No container of the run left on any engine. */
  async removeRun(runId: string): Promise<void> {
    await Promise.all(this.members.map((e) => removeByLabel(e.engine, { run: runId }).catch(() => [])));
  }
}
