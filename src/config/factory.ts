/**
 * The factory settings file (`--factory FILE`): what belongs to the factory host rather than to a stack, namely the
 * Docker engines that build, and where the shared buildcache lives. Errors name file:line:col and the dotted path,
 * all at once, like stack files.
 *
 *   engines:
 *     - url: unix:///var/run/docker.sock      # unix://, tcp://host:port (tls: DIR) or ssh://user@host
 *       name: x86-a                            # optional; default from the URL
 *       cache: /srv/stack-factory/cache        # cache root on that engine's host; default --cache-dir
 *       concurrency: 4                         # containers at once on it; default from its host's cores and memory
 *       network: host                          # optional network of its build containers
 *     - url: tcp://grace01:2376
 *       tls: certs/grace01                     # ca.pem, cert.pem, key.pem (relative to this file)
 *       cache: /scratch/stack-factory
 *     - url: ssh://builder@grace02              # runs `docker system dial-stdio` there
 *       identity: keys/builder                 # optional private key file (else the ssh agent)
 *       known_hosts: known_hosts               # optional (else ~/.ssh/known_hosts, /etc/ssh/ssh_known_hosts)
 *   buildcache: oci://registry.example:5000/site/buildcache   # or a path every engine's host sees
 *   credentials: registry.yaml                 # username/password for the registry (a file, never a flag; https only)
 *   buildcache_ca: certs/registry-ca.pem       # the CA the registry's certificate is signed by (optional)
 */
import path from "node:path";
import * as v from "valibot";
import { isPlainHostPath } from "../docker/container-spec.js";
import { defaultEngineName, ENDPOINT_FORMS, parseEndpoint, plainTcpProblem, type Endpoint } from "../docker/engine.js";
import { ConfigError, InputError } from "../errors.js";
import { checkUserFileKind, readUserFile } from "../fs/user-file.js";
import { cacheRootProblem } from "./cache-root.js";
import { locateIssues, readMapDocument, type Anchor, type Segment } from "./load.js";
import { utf8Text } from "./utf8.js";

/** One engine the factory dispatches targets to. */
export interface EngineSetting {
  name: string;
  /** Where it is reached; undefined: DOCKER_HOST or the local socket, as without any settings. */
  endpoint?: Endpoint;
  /** Cache root on the engine's host; undefined: the factory's own cache root (`--cache-dir`). */
  cacheRoot?: string;
  /** Containers at once on this engine; undefined: chosen from its host's cores and memory (docker info for engines of other hosts; their install -j too). */
  concurrency?: number;
  /** Docker network of its build containers (`host` when the registry is on the engine host's loopback). */
  network?: string;
}

/** Where the buildcache every engine shares lives. */
export type BuildcacheLocation =
  | { kind: "oci"; url: string; registry: string; repository: string; plainHttp: boolean }
  | { kind: "path"; path: string };

export interface FactorySettings {
  /** The settings file, absolute; undefined when none was given. */
  file?: string;
  /** Empty when the file names none: the local engine, as without settings (see chooseEngines). */
  engines: EngineSetting[];
  buildcache?: BuildcacheLocation;
  /** The registry's credentials file (`username:`/`password:`), absolute. Read only when a build needs it. */
  credentials?: string;
  /** The CA file (PEM) the registry's certificate is signed by, absolute; build containers and this host trust it. */
  buildcacheCa?: string;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,62}$/;
const OCI =
  /^oci(\+http)?:\/\/([A-Za-z0-9.-]+(?::\d{1,5})?|\[[0-9a-fA-F:]+\](?::\d{1,5})?)\/([a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)$/;

const engineUrl = v.pipe(
  v.string("an engine URL"),
  v.check(
    (url) => {
      try {
        parseEndpoint(url);
        return true;
      } catch {
        return false;
      }
    },
    // The parser's own reason, which shows the URL on one line and without its password.
    (issue) => {
      try {
        parseEndpoint(issue.input as string);
      } catch (error) {
        return `not an engine URL: ${(error as Error).message.replace(/^engine /, "")}`;
      }
      return `not an engine URL (expected ${ENDPOINT_FORMS})`;
    },
  ),
);

const EngineSchema = v.strictObject({
  url: engineUrl,
  name: v.optional(v.pipe(v.string(), v.regex(NAME, "a name of letters, digits, '.', '_', ':' and '-'"))),
  cache: v.optional(
    v.pipe(
      v.string(),
      v.check((p) => p.startsWith("/"), "the cache root on the engine's host must be an absolute path"),
      v.check(
        (p) => !p.startsWith("/") || isPlainHostPath(p),
        "a cache root of letters, digits and '/ . _ + -' only, without '..' (it is handed to the engine as a mount)",
      ),
      v.check(
        (p) => cacheRootProblem(p) === undefined,
        (issue) => cacheRootProblem(issue.input as string) ?? "",
      ),
    ),
  ),
  concurrency: v.optional(
    v.pipe(v.number("a positive integer"), v.integer("a positive integer"), v.minValue(1, "a positive integer")),
  ),
  tls: v.optional(v.pipe(v.string(), v.minLength(1, "a directory with ca.pem, cert.pem and key.pem"))),
  identity: v.optional(v.pipe(v.string(), v.minLength(1, "a private key file (mode 0600)"))),
  known_hosts: v.optional(
    v.union(
      [v.pipe(v.string(), v.minLength(1)), v.pipe(v.array(v.pipe(v.string(), v.minLength(1))), v.minLength(1))],
      "a known_hosts file, or a list of them",
    ),
  ),
  network: v.optional(v.pipe(v.string(), v.regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, "a Docker network name (e.g. host)"))),
  insecure_plain_tcp: v.optional(v.literal(true, "true, or leave it out")),
});

export const FactorySchema = v.strictObject({
  engines: v.optional(v.pipe(v.array(EngineSchema, "a list of engines"), v.minLength(1, "at least one engine"))),
  buildcache: v.optional(
    v.pipe(
      v.string(),
      v.check(
        (b) => b.startsWith("/") || OCI.test(b),
        "oci://host[:port]/repository (oci+http:// for a registry without TLS) or an absolute path every engine's host sees",
      ),
    ),
  ),
  credentials: v.optional(v.pipe(v.string(), v.minLength(1))),
  buildcache_ca: v.optional(v.pipe(v.string(), v.minLength(1, "a CA certificate file (PEM)"))),
});

type FactoryInput = v.InferOutput<typeof FactorySchema>;

/** Read and validate a factory settings file. */
export async function loadFactorySettings(file: string): Promise<FactorySettings> {
  const bytes = await readUserFile(file, { what: "factory settings file" });
  const settings = parseFactorySettings(utf8Text(bytes, file), file);
  // Every file it names, before any command reads one: a FIFO, a device or a directory is refused now.
  const named: [string, string][] = [];
  if (settings.credentials !== undefined) named.push([settings.credentials, "credentials file"]);
  for (const e of settings.engines) {
    if (e.endpoint?.identityFile !== undefined) named.push([e.endpoint.identityFile, "identity file"]);
    for (const kh of e.endpoint?.knownHostsFiles ?? []) named.push([kh, "known_hosts file"]);
  }
  for (const [p, what] of named) await checkUserFileKind(p, { what, prefix: `${file}: ` });
  return settings;
}

/** Validate a factory settings file's text. Pure: `file` names it in messages and anchors relative paths. */
export function parseFactorySettings(text: string, file: string): FactorySettings {
  const { doc, issueAt, values } = readMapDocument(text, file, {
    empty: "the factory settings file is empty; it needs engines and/or buildcache",
    notMap: () => "the factory settings file must be a map (engines, buildcache, credentials)",
  });
  const result = v.safeParse(FactorySchema, values);
  if (!result.success) throw new ConfigError(file, locateIssues(doc, result.issues, issueAt));

  const input = result.output;
  const problems: string[] = [];
  const seen = new Map<string, number>();
  (input.engines ?? []).forEach((e, i) => {
    const name = e.name ?? defaultEngineName(e.url);
    const before = seen.get(name);
    if (before !== undefined) {
      problems.push(
        issueAt(
          ["engines", i, e.name === undefined ? "url" : "name"],
          `engine name "${name}" is taken by engines[${before}]; give each engine its own name`,
        ),
      );
    }
    seen.set(name, i);
    const endpoint = parseEndpoint(e.url);
    if (e.tls !== undefined && endpoint.kind !== "tcp")
      problems.push(issueAt(["engines", i, "tls"], "tls applies to tcp:// engines only", "key"));
    if (e.insecure_plain_tcp !== undefined && (endpoint.kind !== "tcp" || e.tls !== undefined))
      problems.push(issueAt(["engines", i, "insecure_plain_tcp"], "applies to tcp:// engines without tls only", "key"));
    if (endpoint.kind === "tcp" && e.tls === undefined && e.insecure_plain_tcp === undefined) {
      const problem = plainTcpProblem(endpoint.host);
      if (problem !== undefined) problems.push(issueAt(["engines", i, "url"], problem));
    }
    for (const key of ["identity", "known_hosts"] as const) {
      if (e[key] !== undefined && parseEndpoint(e.url).kind !== "ssh")
        problems.push(issueAt(["engines", i, key], `${key} applies to ssh:// engines only`, "key"));
    }
  });
  if (input.credentials !== undefined && !(input.buildcache ?? "").startsWith("oci")) {
    problems.push(issueAt(["credentials"], "credentials are for an oci:// buildcache, and there is none", "key"));
  }
  problems.push(...registryProblems(input, issueAt));
  if (problems.length > 0) throw new ConfigError(file, problems);
  return toSettings(input, file);
}

/**
 * Credentials go over TLS only: basic authentication over plain http sends the password in clear, and Spack's OCI
 * client does not send a login over http ahead of a request, so every upload is refused and its retry loses the
 * body (pushes fail with "Broken pipe"). A registry CA is for an https registry.
 */
function registryProblems(
  input: FactoryInput,
  issueAt: (path: Segment[], message: string, anchor?: Anchor) => string,
): string[] {
  const problems: string[] = [];
  const buildcache = input.buildcache ?? "";
  if (input.credentials !== undefined && buildcache.startsWith("oci+http://"))
    problems.push(
      issueAt(
        ["credentials"],
        "credentials need an https registry (oci://): over oci+http:// the password would cross the network in clear, and Spack's OCI client cannot push with credentials over plain http",
        "key",
      ),
    );
  if (input.buildcache_ca !== undefined && !buildcache.startsWith("oci://"))
    problems.push(
      issueAt(
        ["buildcache_ca"],
        "buildcache_ca is the CA of an https registry (buildcache: oci://...), and there is none",
        "key",
      ),
    );
  return problems;
}

function toSettings(input: FactoryInput, file: string): FactorySettings {
  const absFile = path.resolve(file);
  const resolve = (p: string): string => path.resolve(path.dirname(absFile), p);
  return {
    file: absFile,
    engines: (input.engines ?? []).map((e) => ({
      name: e.name ?? defaultEngineName(e.url),
      endpoint: {
        url: e.url,
        ...(e.tls === undefined ? {} : { tlsDir: resolve(e.tls) }),
        ...(e.insecure_plain_tcp === undefined ? {} : { insecurePlainTcp: true }),
        ...(e.identity === undefined ? {} : { identityFile: resolve(e.identity) }),
        ...(e.known_hosts === undefined
          ? {}
          : { knownHostsFiles: (typeof e.known_hosts === "string" ? [e.known_hosts] : e.known_hosts).map(resolve) }),
      },
      ...(e.cache === undefined ? {} : { cacheRoot: e.cache }),
      ...(e.concurrency === undefined ? {} : { concurrency: e.concurrency }),
      ...(e.network === undefined ? {} : { network: e.network }),
    })),
    ...(input.buildcache === undefined ? {} : { buildcache: buildcacheLocation(input.buildcache) }),
    ...(input.credentials === undefined ? {} : { credentials: resolve(input.credentials) }),
    ...(input.buildcache_ca === undefined ? {} : { buildcacheCa: resolve(input.buildcache_ca) }),
  };
}

/** The files the settings name that the factory keeps secret (itself, credentials, identities, TLS directories). */
export function secretFiles(settings: FactorySettings | undefined): string[] {
  if (settings === undefined) return [];
  const out = [settings.file, settings.credentials];
  for (const e of settings.engines) out.push(e.endpoint?.identityFile, e.endpoint?.tlsDir);
  return out.filter((f): f is string => f !== undefined);
}

/** `oci://host:5000/site/buildcache` or an absolute path. The schema has checked the form. */
export function buildcacheLocation(text: string): BuildcacheLocation {
  const m = OCI.exec(text);
  if (m === null) return { kind: "path", path: path.posix.normalize(text) };
  return {
    kind: "oci",
    url: text,
    registry: m[2] as string,
    repository: m[3] as string,
    plainHttp: m[1] !== undefined,
  };
}

/**
 * The engines a command runs on, one choice for build, warm, clean and doctor: `--engine` URLs, else the settings'
 * engines, else the local engine. `given` is false when neither a flag nor a settings file was given: the local
 * engine alone, as without any settings (DOCKER_HOST or the local socket).
 */
export function engineChoice(
  settings: FactorySettings | undefined,
  urls: readonly string[],
): { engines: EngineSetting[]; given: boolean } {
  return { engines: chooseEngines(settings, urls), given: settings !== undefined || urls.length > 0 };
}

/**
 * The engines of a build: `--engine URL` (repeatable) when given, else the settings file's, else the local engine
 * as without settings (DOCKER_HOST or the local socket: no endpoint).
 */
export function chooseEngines(settings: FactorySettings | undefined, flags: readonly string[]): EngineSetting[] {
  if (flags.length > 0) {
    const engines: EngineSetting[] = [];
    const names = new Set<string>();
    for (const url of flags) {
      const endpoint = parseEndpoint(url);
      const plain = endpoint.kind === "tcp" ? plainTcpProblem(endpoint.host) : undefined;
      if (plain !== undefined) throw new InputError(`--engine ${url}: ${plain}`);
      let name = defaultEngineName(url);
      for (let n = 2; names.has(name); n++) name = `${defaultEngineName(url)}-${n}`;
      names.add(name);
      engines.push({ name, endpoint: { url } });
    }
    return engines;
  }
  if (settings !== undefined && settings.engines.length > 0) return settings.engines;
  return [{ name: "local" }];
}

export { loadRegistryCredentials } from "./credentials.js";
