import { hostname } from "node:os";
import Docker from "dockerode";
import { DockerError } from "../errors.js";
import { reasonOf } from "./failure.js";
import { newRunId, type Identity } from "./labels.js";

export const START_ENGINE_HINT = "start one with scripts/ensure-docker.sh (or set DOCKER_HOST)";

export interface EngineVersion {
  version: string;
  apiVersion: string;
  os: string;
  arch: string;
}

/**
 * A connection to a Docker engine plus the identity its resources are labelled with.
 * `docker` is the dockerode client; only src/docker uses it.
 */
export class Engine {
  constructor(
    readonly docker: Docker,
    readonly identity: Identity,
    /** Where the engine was reached, for messages (`DOCKER_HOST` or the default socket). */
    readonly where: string,
  ) {}

  get runId(): string {
    return this.identity.runId;
  }

  async version(): Promise<EngineVersion> {
    try {
      const v = await this.docker.version();
      return { version: v.Version, apiVersion: v.ApiVersion, os: v.Os, arch: v.Arch };
    } catch (error) {
      throw new DockerError(`the Docker engine at ${this.where} did not report its version: ${reasonOf(error)}`, {
        cause: error,
      });
    }
  }
}

export interface ConnectOptions {
  /** Run id written into labels; a fresh one by default. */
  runId?: string;
  /** Process id written into labels; this process by default. */
  pid?: number;
  /** Host name written into labels; this host by default. */
  host?: string;
  /** How long the first ping may take. Default 5000 ms. */
  timeoutMs?: number;
}

/** Connects to the engine named by DOCKER_HOST (default: the local socket) and checks that it answers. */
export async function connectEngine(options: ConnectOptions = {}): Promise<Engine> {
  const where = process.env.DOCKER_HOST ? `DOCKER_HOST=${process.env.DOCKER_HOST}` : "/var/run/docker.sock";
  let docker: Docker;
  try {
    docker = new Docker();
  } catch (error) {
    throw new DockerError(`cannot use ${where}: ${reasonOf(error)}`, { cause: error, hint: START_ENGINE_HINT });
  }
  try {
    await (docker.ping as (opts: { abortSignal: AbortSignal }) => Promise<unknown>).call(docker, {
      abortSignal: AbortSignal.timeout(options.timeoutMs ?? 5000),
    });
  } catch (error) {
    throw new DockerError(`no Docker engine answers at ${where}: ${reasonOf(error)}`, {
      cause: error,
      hint: START_ENGINE_HINT,
    });
  }
  const identity: Identity = {
    runId: options.runId ?? newRunId(),
    pid: options.pid ?? process.pid,
    host: options.host ?? hostname(),
  };
  return new Engine(docker, identity, where);
}
