/**
 * The concrete specs a kept spack.lock names, as the buildcache must hold them: every node that is not an external
 * (externals such as the OS compiler and glibc are never pushed). Pure.
 */

/** One concrete spec: what Spack names its buildcache entries by. */
export interface ConcreteSpec {
  name: string;
  version: string;
  /** The 32-character DAG hash. */
  hash: string;
}

const HASH = /^[a-z0-9]{32}$/;
const NAME = /^[a-z0-9][a-z0-9_-]*$/;
const VERSION = /^[A-Za-z0-9][A-Za-z0-9._+=~-]*$/;

/** The non-external specs of a lock, sorted by name and hash; throws with what is wrong when the lock is malformed. */
export function lockSpecs(lockText: string): ConcreteSpec[] {
  const lock = JSON.parse(lockText) as { concrete_specs?: unknown };
  const nodes = lock.concrete_specs;
  if (typeof nodes !== "object" || nodes === null || Array.isArray(nodes))
    throw new Error("spack.lock has no concrete_specs object");
  const specs: ConcreteSpec[] = [];
  for (const [hash, node] of Object.entries(nodes as Record<string, unknown>)) {
    if (typeof node !== "object" || node === null) throw new Error(`spack.lock: concrete_specs.${hash} is no object`);
    const n = node as { name?: unknown; version?: unknown; external?: unknown };
    if (n.external !== undefined && n.external !== null) continue;
    // Values that end up in file names and URLs: only what Spack itself writes is accepted.
    if (!HASH.test(hash)) throw new Error(`spack.lock: ${JSON.stringify(hash)} is not a Spack hash`);
    if (typeof n.name !== "string" || !NAME.test(n.name))
      throw new Error(`spack.lock: concrete_specs.${hash}.name is not a package name`);
    if (typeof n.version !== "string" || !VERSION.test(n.version))
      throw new Error(`spack.lock: concrete_specs.${hash}.version is not a version`);
    specs.push({ name: n.name, version: n.version, hash });
  }
  return specs.sort((a, b) => a.name.localeCompare(b.name) || a.hash.localeCompare(b.hash));
}

/** `<name>-<version>-<hash>`, as Spack names a spec's buildcache entries. */
export function specFileStem(spec: ConcreteSpec): string {
  return `${spec.name}-${spec.version}-${spec.hash}`;
}

/** `<name>@<version>/<first 7 of the hash>`, for messages. */
export function shortSpec(spec: ConcreteSpec): string {
  return `${spec.name}@${spec.version}/${spec.hash.slice(0, 7)}`;
}
