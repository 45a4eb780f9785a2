import { randomBytes } from "node:crypto";

/** Label keys carried by every container and image the factory creates. */
export const LABEL = {
  factory: "stack-factory",
  run: "stack-factory.run",
  pid: "stack-factory.pid",
  host: "stack-factory.host",
  /** Set on containers of a run asked to keep a failed build's container: only `clean --all` removes them. */
  keep: "stack-factory.keep",
  /** Set on the images the factory builds, instead of the run's labels (see imageLabels). */
  image: "stack-factory.image",
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

/**
 * Labels of an image the factory builds: the caller's, the image mark and the host, never the run's own. A container
 * inherits its image's labels: with the run and pid of the (long gone) run that built the image, a container someone
 * starts from it with `docker run` would look like a dead run's and `clean` would remove it.
 */
export function imageLabels(identity: Identity, extra: Record<string, string> = {}): Record<string, string> {
  const own = new Set<string>([LABEL.factory, LABEL.run, LABEL.pid, LABEL.keep]);
  const kept = Object.fromEntries(Object.entries(extra).filter(([key]) => !own.has(key)));
  return { ...kept, [LABEL.image]: "1", [LABEL.host]: identity.host };
}

/** Engine `label` filters selecting the factory's resources, optionally of one run and/or one host. */
export function labelFilters(select: { run?: string; host?: string } = {}): string[] {
  const filters = [`${LABEL.factory}=1`];
  if (select.run !== undefined) filters.push(`${LABEL.run}=${select.run}`);
  if (select.host !== undefined) filters.push(`${LABEL.host}=${select.host}`);
  return filters;
}
