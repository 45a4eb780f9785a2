import { createHash } from "node:crypto";
import { createPrivateKey } from "node:crypto";
import { homedir, hostname, userInfo } from "node:os";
import { basename, join } from "node:path";
import Docker from "dockerode";
import ssh2 from "ssh2";
import { DockerError, InputError } from "../errors.js";
import { readUserFile, readUserFileIfPresent } from "../fs/user-file.js";
import { reasonOf } from "./failure.js";
import { checkHostKey, keyTypeOf, knownHostsName } from "./known-hosts.js";
import { sshHttpAgent } from "./ssh-agent.js";
import { newRunId, type Identity } from "./labels.js";

export const START_ENGINE_HINT = "start one with scripts/ensure-docker.sh (or set DOCKER_HOST)";

export interface EngineVersion {
  version: string;
  apiVersion: string;
  os: string;
  arch: string;
}

/** Where an engine is reached: its URL and, for `tcp://` with TLS, the directory holding ca.pem, cert.pem, key.pem. */
export interface Endpoint {
  url: string;
  tlsDir?: string;
  /** `ssh://` only: a private key file to log in with (else the ssh agent of SSH_AUTH_SOCK). */
  identityFile?: string;
  /** `ssh://` only: the known_hosts files the host key must be in (default ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts). */
  knownHostsFiles?: string[];
  /** `tcp://` without TLS to a host other than this one, as the settings allow it explicitly (`insecure_plain_tcp`). */
  insecurePlainTcp?: boolean;
}

/** Whether a host name or address is this machine's loopback. */
export function isLoopbackHost(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/**
 * Why `tcp://host` without TLS is refused, or undefined (loopback). A Docker API on plain TCP is root on that host
 * for anyone who can reach its port, and what crosses the network (credentials files, signing keys) is readable.
 */
export function plainTcpProblem(host: string): string | undefined {
  if (isLoopbackHost(host)) return undefined;
  return `tcp://${host} without TLS: a Docker API on plain TCP gives root on that host to anyone who reaches its port, and everything sent to it crosses the network in clear; give tls: (ca.pem, cert.pem, key.pem), or set insecure_plain_tcp: true on this engine in the factory settings to accept that`;
}

/** A URL as messages may show it: control characters escaped, a password replaced by ***. Pure. */
export function shownUrl(url: string): string {
  const redacted = url.replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/[^/@?#]*?):[^/?#]*@/, "$1:***@");
  return JSON.stringify(redacted);
}

/** The known_hosts files ssh reads by default. */
export function defaultKnownHostsFiles(): string[] {
  return [join(homedir(), ".ssh", "known_hosts"), "/etc/ssh/ssh_known_hosts"];
}

/**
 * DOCKER_HOST, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH as the docker CLI reads them, as an endpoint that goes through
 * the same checks as `--engine` (known_hosts for ssh, TLS files for tcp); undefined without DOCKER_HOST.
 */
export function endpointFromEnvironment(env: NodeJS.ProcessEnv = process.env): Endpoint | undefined {
  const url = env["DOCKER_HOST"];
  if (url === undefined || url === "") return undefined;
  let parsed: ParsedEndpoint;
  try {
    parsed = parseEndpoint(url);
  } catch (error) {
    throw new InputError(`DOCKER_HOST: ${(error as Error).message}`);
  }
  const tls = (env["DOCKER_TLS_VERIFY"] ?? "") !== "";
  if (parsed.kind !== "tcp") return { url };
  if (!tls) return { url };
  const certPath = env["DOCKER_CERT_PATH"];
  return { url, tlsDir: certPath === undefined || certPath === "" ? join(homedir(), ".docker") : certPath };
}

/** An endpoint URL taken apart: what dockerode needs, except the TLS files (read when connecting). */
export type ParsedEndpoint =
  | { kind: "unix"; socketPath: string }
  | { kind: "tcp"; host: string; port: number }
  | { kind: "ssh"; host: string; port: number; username: string | undefined };

export const ENDPOINT_FORMS = "unix:///path/to/docker.sock, tcp://host:port or ssh://user@host[:port]";

/** Parse `unix:///var/run/docker.sock`, `tcp://host:2376`, `ssh://user@host[:22]`. Pure; throws InputError. */
export function parseEndpoint(url: string): ParsedEndpoint {
  const bad = (why: string): InputError =>
    new InputError(`engine ${shownUrl(url)}: ${why} (expected ${ENDPOINT_FORMS})`);
  // Before the URL parser, which drops tabs and newlines silently.
  const control = /[\u0000-\u001f\u007f-\u009f\s]/u.exec(url);
  if (control !== null) {
    const code = `U+${control[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}`;
    throw bad(`contains ${code}; an engine URL has no spaces or control characters`);
  }
  if (url.startsWith("unix://")) {
    const socketPath = url.slice("unix://".length);
    if (!socketPath.startsWith("/")) throw bad("a unix socket needs an absolute path");
    return { kind: "unix", socketPath };
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw bad("not a URL");
  }
  const host = parsed.hostname.replace(/^\[|\]$/g, "");
  if (host === "") throw bad("no host");
  if (parsed.pathname !== "" && parsed.pathname !== "/") throw bad(`unexpected path ${parsed.pathname}`);
  if (parsed.search !== "" || parsed.hash !== "") throw bad("unexpected query or fragment");
  if (parsed.protocol === "tcp:") {
    if (parsed.port === "") throw bad("a tcp endpoint needs a port (2376 with TLS, 2375 without)");
    if (parsed.password !== "")
      throw bad("no passwords in engine URLs (it is not shown here); tcp uses tls: certificates");
    if (parsed.username !== "") throw bad("a tcp endpoint takes no user; use tls: for authentication");
    return { kind: "tcp", host, port: Number(parsed.port) };
  }
  if (parsed.protocol === "ssh:") {
    if (parsed.password !== "")
      throw bad(
        "no passwords in engine URLs (it is not shown here); ssh uses a key: identity: or the ssh agent (SSH_AUTH_SOCK)",
      );
    return {
      kind: "ssh",
      host,
      port: parsed.port === "" ? 22 : Number(parsed.port),
      username: parsed.username === "" ? undefined : decodeURIComponent(parsed.username),
    };
  }
  throw bad(`unsupported scheme ${parsed.protocol.replace(/:$/, "")}`);
}

/** A short name for an engine when none is given: the socket's file name or the host (with a port that is not the default). */
export function defaultEngineName(url: string): string {
  const p = parseEndpoint(url);
  if (p.kind === "unix")
    return p.socketPath === "/var/run/docker.sock" ? "local" : basename(p.socketPath).replace(/\.sock$/, "");
  return p.kind === "ssh" && p.port === 22 ? p.host : `${p.host}:${p.port}`;
}

/** Whether the engine runs on this machine (a unix socket): its cache root is then a path of this host too. */
export function isLocalEndpoint(endpoint: Endpoint | undefined): boolean {
  return endpoint === undefined || parseEndpoint(endpoint.url).kind === "unix";
}

/** Why an ssh engine's host was refused, when it was: set by the host key check, read when the ping fails. */
interface Refusal {
  reason?: string;
  hint?: string;
}

async function dockerOptions(endpoint: Endpoint, refusal: Refusal, timeoutMs: number): Promise<Docker.DockerOptions> {
  const p = parseEndpoint(endpoint.url);
  if (p.kind !== "ssh" && (endpoint.identityFile !== undefined || endpoint.knownHostsFiles !== undefined))
    throw new InputError(`engine ${endpoint.url}: identity and known_hosts apply to ssh:// engines only`);
  if (p.kind === "unix") {
    if (endpoint.tlsDir !== undefined)
      throw new InputError(`engine ${endpoint.url}: tls applies to tcp:// engines only`);
    return { socketPath: p.socketPath };
  }
  if (p.kind === "ssh") {
    if (endpoint.tlsDir !== undefined)
      throw new InputError(`engine ${endpoint.url}: tls applies to tcp:// engines only`);
    return sshOptions(endpoint, p, refusal, timeoutMs);
  }
  if (endpoint.tlsDir === undefined) {
    const problem = endpoint.insecurePlainTcp === true ? undefined : plainTcpProblem(p.host);
    if (problem !== undefined) throw new InputError(`engine ${endpoint.url}: ${problem}`);
    return { protocol: "http", host: p.host, port: p.port };
  }
  const dir = endpoint.tlsDir;
  const read = (file: string, secret: boolean): Promise<Buffer> =>
    readUserFile(join(dir, file), {
      what: "",
      prefix: `engine ${endpoint.url}: `,
      hint: "tls: names a directory with ca.pem, cert.pem and key.pem (as `docker --tlsverify` uses)",
      private: secret,
      maxBytes: 1024 * 1024,
    });
  // One after the other: the first missing file is the one named, every time.
  const ca = await read("ca.pem", false);
  const cert = await read("cert.pem", false);
  const key = await read("key.pem", true);
  try {
    createPrivateKey(key);
  } catch {
    throw new InputError(`engine ${endpoint.url}: the TLS file ${join(dir, "key.pem")} is not a PEM private key`, {
      hint: "tls: names a directory with ca.pem, cert.pem and key.pem (as `docker --tlsverify` uses)",
    });
  }
  return { protocol: "https", host: p.host, port: p.port, ca, cert, key };
}

/**
 * An ssh identity file: private (mode 0600), and a private key ssh2 can use as it is. A public key, an encrypted key
 * (the factory takes no passphrase: use the ssh agent) or anything else is bad input, said before connecting.
 */
async function readIdentity(url: string, file: string): Promise<Buffer> {
  const bytes = await readUserFile(file, {
    what: "the identity file",
    prefix: `engine ${url}: `,
    private: true,
    maxBytes: 1024 * 1024,
  });
  const parsed = ssh2.utils.parseKey(bytes);
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (key instanceof Error || key === undefined) {
    const encrypted = key instanceof Error && /passphrase|encrypted/i.test(key.message);
    throw new InputError(
      encrypted
        ? `engine ${url}: the identity file ${file} is encrypted; the factory takes no passphrase`
        : `engine ${url}: the identity file ${file} is not an ssh private key`,
      {
        hint: encrypted
          ? "load the key into your ssh agent (ssh-add) and leave identity: out"
          : "identity: names a private key file such as ~/.ssh/id_ed25519, not its .pub",
      },
    );
  }
  if (!key.isPrivateKey())
    throw new InputError(`engine ${url}: the identity file ${file} holds a public key, not a private one`, {
      hint: "identity: names the private key (id_ed25519), not its .pub",
    });
  return bytes;
}

/**
 * ssh: the login user (the URL's, else this process's), the key (a file, else the agent), and the host key checked
 * against known_hosts the way `ssh` does with StrictHostKeyChecking=yes: never accepted on first sight.
 */
async function sshOptions(
  endpoint: Endpoint,
  p: Extract<ParsedEndpoint, { kind: "ssh" }>,
  refusal: Refusal,
  timeoutMs: number,
): Promise<Docker.DockerOptions> {
  const explicit = endpoint.knownHostsFiles !== undefined;
  const files = endpoint.knownHostsFiles ?? defaultKnownHostsFiles();
  const texts: Record<string, string> = {};
  for (const file of files) {
    const named = { what: "known_hosts file", prefix: `engine ${endpoint.url}: ` };
    const bytes = explicit ? await readUserFile(file, named) : await readUserFileIfPresent(file, named);
    if (bytes !== undefined) texts[file] = bytes.toString("utf8");
  }
  const privateKey =
    endpoint.identityFile === undefined ? undefined : await readIdentity(endpoint.url, endpoint.identityFile);
  const agent = process.env["SSH_AUTH_SOCK"];
  const name = knownHostsName(p.host, p.port);
  const hostVerifier = (key: Buffer): boolean => {
    const verdict = checkHostKey(texts, p.host, p.port, key);
    if (verdict.kind === "known") return true;
    const fingerprint = `${keyTypeOf(key)} SHA256:${createHash("sha256").update(key).digest("base64").replace(/=+$/, "")}`;
    if (verdict.kind === "unknown") {
      refusal.reason = `the host key of ${name} (${fingerprint}) is in none of ${files.join(", ")}`;
      refusal.hint = `check that fingerprint with the host's administrator, then add the key: ssh-keyscan ${p.port === 22 ? "" : `-p ${p.port} `}${p.host} >> ~/.ssh/known_hosts (or name a file with known_hosts: in the factory settings)`;
    } else if (verdict.kind === "changed") {
      refusal.reason = `the host key of ${name} has changed: ${verdict.where} holds another ${keyTypeOf(key)} key, and the host now presents ${fingerprint}`;
      refusal.hint =
        "someone may be intercepting the connection, or the host was reinstalled: ask its administrator before you replace that line";
    } else {
      refusal.reason = `the host key of ${name} (${fingerprint}) is revoked (${verdict.where})`;
    }
    return false;
  };
  // Plain HTTP for the modem, carried over one ssh session (ssh-agent.ts) rather than dockerode's connection per call.
  return {
    protocol: "http",
    host: p.host,
    port: p.port,
    agent: sshHttpAgent({
      host: p.host,
      port: p.port,
      username: p.username ?? userInfo().username,
      hostVerifier,
      // A host that never completes the handshake fails like an engine that does not answer, not after ssh2's 20 s.
      readyTimeout: Math.max(timeoutMs, 1000),
      ...(privateKey === undefined ? {} : { privateKey }),
      ...(privateKey === undefined && agent !== undefined ? { agent } : {}),
    }),
  } as Docker.DockerOptions;
}

/**
 * A connection to a Docker engine plus the identity its resources are labelled with.
 * `docker` is the dockerode client; only src/docker uses it.
 */
export class Engine {
  constructor(
    readonly docker: Docker,
    readonly identity: Identity,
    /** Where the engine was reached, for messages (`DOCKER_HOST`, the default socket or the endpoint URL). */
    readonly where: string,
    /** The engine's name in reports and messages. */
    readonly name: string = "local",
    /** The engine runs on this machine (reached over a unix socket). */
    readonly local: boolean = true,
    /** Docker network of the factory's containers and image builds on this engine; the engine's default when unset. */
    readonly network?: string,
    /** `tcp://` with TLS: the directory of ca.pem, cert.pem and key.pem (for the hints that name the engine). */
    readonly tlsDir?: string,
  ) {}

  get runId(): string {
    return this.identity.runId;
  }

  /** Undefined while the engine answers a ping within `timeoutMs`, else why not. */
  async unreachable(timeoutMs = 3000): Promise<string | undefined> {
    try {
      await (this.docker.ping as (opts: { abortSignal: AbortSignal }) => Promise<unknown>).call(this.docker, {
        abortSignal: AbortSignal.timeout(timeoutMs),
      });
      return undefined;
    } catch (error) {
      return `stopped answering at ${this.where} (${reasonOf(error)})`;
    }
  }

  /** The engine host's processors and memory, as the engine reports them. */
  async resources(): Promise<{ cpus: number; memoryBytes: number }> {
    try {
      const info = (await this.docker.info()) as { NCPU?: number; MemTotal?: number };
      return { cpus: Math.max(1, info.NCPU ?? 1), memoryBytes: info.MemTotal ?? 0 };
    } catch (error) {
      throw new DockerError(`the Docker engine at ${this.where} did not report its resources: ${reasonOf(error)}`, {
        cause: error,
      });
    }
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
  /** The engine to reach; without one, DOCKER_HOST or the local socket, as dockerode finds them. */
  endpoint?: Endpoint;
  /** Its name in reports; default from the endpoint (`local` without one). */
  name?: string;
  /** Network of build containers and image builds (`host` to reach a registry on the engine host's loopback). */
  network?: string;
}

/** The hint of an engine reached by URL that does not answer (no refusal of its own to tell). */
export function unreachableHint(url: string): string {
  return `check that the engine at ${url} is running and reachable from this host`;
}

/**
 * How the default engine (DOCKER_HOST, else the local socket) is named in messages and plans, and whether it runs on
 * this host: known without reaching it.
 */
export function defaultEngineWhere(): { where: string; local: boolean } {
  const fromEnvironment = endpointFromEnvironment();
  return {
    where: fromEnvironment === undefined ? "/var/run/docker.sock" : `DOCKER_HOST=${fromEnvironment.url}`,
    local: isLocalEndpoint(fromEnvironment),
  };
}

/** Connects to the engine at `endpoint` (default: DOCKER_HOST, else the local socket) and checks that it answers. */
export async function connectEngine(options: ConnectOptions = {}): Promise<Engine> {
  const fromEnvironment = options.endpoint === undefined ? endpointFromEnvironment() : undefined;
  const endpoint = options.endpoint ?? fromEnvironment;
  const where =
    options.endpoint !== undefined
      ? options.endpoint.url
      : fromEnvironment !== undefined
        ? `DOCKER_HOST=${fromEnvironment.url}`
        : "/var/run/docker.sock";
  const hint = options.endpoint === undefined ? START_ENGINE_HINT : unreachableHint(options.endpoint.url);
  let docker: Docker;
  const refusal: Refusal = {};
  try {
    docker =
      endpoint === undefined
        ? new Docker()
        : new Docker(await dockerOptions(endpoint, refusal, options.timeoutMs ?? 5000));
  } catch (error) {
    if (error instanceof InputError) throw error;
    throw new DockerError(`cannot use ${where}: ${reasonOf(error)}`, { cause: error, hint });
  }
  try {
    await (docker.ping as (opts: { abortSignal: AbortSignal }) => Promise<unknown>).call(docker, {
      abortSignal: AbortSignal.timeout(options.timeoutMs ?? 5000),
    });
  } catch (error) {
    // An ssh session still connecting (a host that never answers) would hold the process.
    (docker.modem as { agent?: { close?: () => void } }).agent?.close?.();
    if (refusal.reason !== undefined)
      throw new DockerError(`refused ${where}: ${refusal.reason}`, {
        cause: error,
        ...(refusal.hint === undefined ? {} : { hint: refusal.hint }),
      });
    throw new DockerError(`no Docker engine answers at ${where}: ${reasonOf(error)}`, { cause: error, hint });
  }
  const identity: Identity = {
    runId: options.runId ?? newRunId(),
    pid: options.pid ?? process.pid,
    host: options.host ?? hostname(),
  };
  const name = options.name ?? (options.endpoint === undefined ? "local" : defaultEngineName(options.endpoint.url));
  return new Engine(docker, identity, where, name, isLocalEndpoint(endpoint), options.network, endpoint?.tlsDir);
}
