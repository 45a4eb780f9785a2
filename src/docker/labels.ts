import { randomBytes } from "node:crypto";

/** Label keys carried by every container and image the factory creates. */
export const LABEL = {
  factory: "stack-factory",
  run: "stack-factory.run",
  pid: "stack-factory.pid",
  host: "stack-factory.host",
  /** Set on containers of a run asked to keep a failed build's container: only `clean --all` removes them. */
  keep: "stack-factory.keep",
} as const;

/** Who creates resources: the run, the process and the host, as written into the labels. */
export interface Identity {
  runId: string;
  pid: number;
  host: string;
}

/** A fresh run id: time (base 36) and 4 random bytes, e.g. `m1x2y3z4-9f3a0c1d`. */
export function newRunId(): string {
  return `${Date.now().toString(36)}-${randomBytes(4).toString("hex")}`;
}

/** The caller's labels plus the factory's own; the factory's keys always win. */
export function factoryLabels(identity: Identity, extra: Record<string, string> = {}): Record<string, string> {
  return {
    ...extra,
    [LABEL.factory]: "1",
    [LABEL.run]: identity.runId,
    [LABEL.pid]: String(identity.pid),
    [LABEL.host]: identity.host,
  };
}

/** Engine `label` filters selecting the factory's resources, optionally of one run and/or one host. */
export function labelFilters(select: { run?: string; host?: string } = {}): string[] {
  const filters = [`${LABEL.factory}=1`];
  if (select.run !== undefined) filters.push(`${LABEL.run}=${select.run}`);
  if (select.host !== undefined) filters.push(`${LABEL.host}=${select.host}`);
  return filters;
}
