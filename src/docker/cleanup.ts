import { isProcessAlive } from "../process/alive.js";
import type { Engine } from "./engine.js";
import { dockerError } from "./failure.js";
import { LABEL, labelFilters } from "./labels.js";
import { removeContainer } from "./remove.js";

export interface RemovedContainer {
  id: string;
  name: string;
  runId: string | undefined;
  pid: number | undefined;
}

interface Listed {
  Id: string;
  Names?: string[];
  Labels?: Record<string, string>;
}

function describe(c: Listed): RemovedContainer {
  const pid = Number(c.Labels?.[LABEL.pid]);
  return {
    id: c.Id,
    name: (c.Names?.[0] ?? "").replace(/^\//, ""),
    runId: c.Labels?.[LABEL.run],
    pid: Number.isInteger(pid) && pid > 0 ? pid : undefined,
  };
}

async function listFactoryContainers(engine: Engine, select: { run?: string; host?: string }): Promise<Listed[]> {
  try {
    return (await engine.docker.listContainers({
      all: true,
      filters: { label: labelFilters(select) },
    })) as Listed[];
  } catch (error) {
    throw dockerError("listing the factory's containers", error);
  }
}

async function removeAll(engine: Engine, containers: Listed[]): Promise<RemovedContainer[]> {
  await Promise.all(containers.map((c) => removeContainer(engine.docker.getContainer(c.Id))));
  return containers.map(describe);
}

/** Removes (force) every factory container, or only those of one run. */
export async function removeByLabel(engine: Engine, select: { run?: string } = {}): Promise<RemovedContainer[]> {
  return removeAll(engine, await listFactoryContainers(engine, select));
}

/**
 * Removes factory containers created on this host by processes that no longer exist (left behind by a
 * crash or a kill -9). Containers of other hosts, those without a readable pid label, and those kept on
 * purpose for inspection (label stack-factory.keep) are left alone.
 */
export async function removeDeadRuns(engine: Engine): Promise<RemovedContainer[]> {
  const mine = await listFactoryContainers(engine, { host: engine.identity.host });
  const dead = mine.filter((c) => {
    const { pid } = describe(c);
    return pid !== undefined && c.Labels?.[LABEL.keep] !== "1" && !isProcessAlive(pid);
  });
  return removeAll(engine, dead);
}
