import type Docker from "dockerode";
import { DockerError } from "../errors.js";

export interface BindMount {
  /** Absolute host path; it must exist, unless `create` is set. */
  host: string;
  container: string;
  readOnly: boolean;
  /** Create the host directory (as root, on the engine's host) when it is missing. */
  create?: boolean;
}

/** Characters a host path of a created bind mount may hold (the engine's `src:dst:mode` form splits on ':'). */
const BIND_PATH = /^\/[A-Za-z0-9._+/-]*$/;

/** Whether a host path can be the source of a created bind mount (see BindMount.create). */
export function isPlainHostPath(path: string): boolean {
  return BIND_PATH.test(path) && !path.split("/").includes("..");
}

export interface Resources {
  mounts?: BindMount[];
  /** CPU limit in cores (fractions allowed). */
  cpus?: number;
  /** Memory limit in bytes. */
  memory?: number;
  /**
   * Container paths of tmpfs mounts (mode 1777, 16 MiB): memory only, gone with the container, never in an image
   * layer or the container's file system (`docker diff`). Write into them with exec and stdin: the engine's archive
   * API (putArchive) writes beneath a tmpfs, into the container's own layer.
   */
  tmpfs?: string[];
}

export function envList(env: Record<string, string> | undefined): string[] {
  return Object.entries(env ?? {}).map(([k, v]) => `${k}=${v}`);
}

/**
 * Host configuration of every factory container: bind mounts, limits, an init process, nothing else
 * (not privileged, default network, no engine socket).
 */
export function hostConfig(resources: Resources): Docker.HostConfig {
  const binds: string[] = [];
  const mounts = (resources.mounts ?? []).flatMap((m): Docker.MountSettings[] => {
    if (!m.host.startsWith("/")) {
      throw new DockerError(`bind mount source must be an absolute host path, got ${JSON.stringify(m.host)}`);
    }
    if (!m.container.startsWith("/")) {
      throw new DockerError(`bind mount target must be an absolute container path, got ${JSON.stringify(m.container)}`);
    }
    if (m.create === true) {
      // Only the legacy form makes a missing source directory (engines before API 1.44 know no CreateMountpoint).
      if (!isPlainHostPath(m.host) || !isPlainHostPath(m.container))
        throw new DockerError(
          `a created bind mount needs plain paths, got ${JSON.stringify(`${m.host}:${m.container}`)}`,
        );
      binds.push(`${m.host}:${m.container}:${m.readOnly ? "ro" : "rw"}`);
      return [];
    }
    return [{ Type: "bind", Source: m.host, Target: m.container, ReadOnly: m.readOnly }];
  });
  for (const target of resources.tmpfs ?? []) {
    if (!target.startsWith("/"))
      throw new DockerError(`tmpfs target must be an absolute container path, got ${JSON.stringify(target)}`);
    mounts.push({
      Type: "tmpfs",
      Source: "",
      Target: target,
      TmpfsOptions: { SizeBytes: 16 * 1024 * 1024, Mode: 0o1777 },
    });
  }
  const config: Docker.HostConfig = {
    Init: true,
    Mounts: mounts,
    ...(binds.length === 0 ? {} : { Binds: binds }),
    Privileged: false,
  };
  if (resources.cpus !== undefined) {
    if (!(resources.cpus > 0)) throw new DockerError(`cpus must be a positive number, got ${resources.cpus}`);
    config.NanoCpus = Math.round(resources.cpus * 1e9);
  }
  if (resources.memory !== undefined) {
    if (!(resources.memory > 0))
      throw new DockerError(`memory must be a positive number of bytes, got ${resources.memory}`);
    config.Memory = Math.round(resources.memory);
  }
  return config;
}
