/**
 * Concrete specs as `spack find --json` prints them: a JSON array of node dictionaries, or (other Spack versions
 * and `spack.lock`-like dumps) elements that nest their nodes under `spec.nodes`. Extra keys are ignored.
 */
import { InputError } from "../errors.js";

export interface SpecRecord {
  name: string;
  version: string;
  hash: string;
  variants: Record<string, unknown>;
  arch?: { platform?: string; target?: string };
  /** The package repository the recipe came from (`builtin`, or a site's namespace). */
  namespace?: string;
  prefix?: string;
  dependencies: { name: string; hash: string }[];
}

/** Compiler-flag parameters Spack stores beside the variants; dropped when empty. */
const FLAG_KEYS = new Set(["cflags", "cxxflags", "fflags", "ldflags", "ldlibs", "cppflags"]);

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

function text(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (typeof value === "number") return String(value);
  return undefined;
}

function variantsOf(node: Record<string, unknown>): Record<string, unknown> {
  const source = isObject(node["variants"]) ? node["variants"] : isObject(node["parameters"]) ? node["parameters"] : {};
  const variants: Record<string, unknown> = {};
  for (const key of Object.keys(source).sort()) {
    const value = source[key];
    if (FLAG_KEYS.has(key) && Array.isArray(value) && value.length === 0) continue;
    variants[key] = value;
  }
  return variants;
}

function archOf(node: Record<string, unknown>): SpecRecord["arch"] {
  const arch = node["arch"];
  if (!isObject(arch)) return undefined;
  const platform = text(arch["platform"]);
  const rawTarget = arch["target"];
  const target = isObject(rawTarget) ? text(rawTarget["name"]) : text(rawTarget);
  return { ...(platform !== undefined ? { platform } : {}), ...(target !== undefined ? { target } : {}) };
}

function dependenciesOf(node: Record<string, unknown>): SpecRecord["dependencies"] {
  const deps = node["dependencies"];
  const out: SpecRecord["dependencies"] = [];
  if (Array.isArray(deps)) {
    for (const dep of deps) {
      if (!isObject(dep)) continue;
      const name = text(dep["name"]);
      const hash = text(dep["hash"]);
      if (name !== undefined && hash !== undefined) out.push({ name, hash });
    }
  } else if (isObject(deps)) {
    // Older spec format: {name: {hash, type}}.
    for (const [name, dep] of Object.entries(deps)) {
      const hash = isObject(dep) ? text(dep["hash"]) : undefined;
      if (hash !== undefined) out.push({ name, hash });
    }
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function recordOf(node: Record<string, unknown>, where: string): SpecRecord {
  const name = text(node["name"]);
  const version = text(node["version"]);
  const hash = text(node["hash"]);
  const missing = [name === undefined && "name", version === undefined && "version", hash === undefined && "hash"];
  const absent = missing.filter((m): m is string => typeof m === "string");
  if (absent.length > 0 || name === undefined || version === undefined || hash === undefined) {
    throw new InputError(`spec ${where} has no ${absent.join(", ")} (each spec needs name, version and hash)`);
  }
  const arch = archOf(node);
  const prefix = text(node["prefix"]);
  const namespace = text(node["namespace"]);
  return {
    name,
    version,
    hash,
    variants: variantsOf(node),
    ...(arch !== undefined ? { arch } : {}),
    ...(namespace !== undefined ? { namespace } : {}),
    ...(prefix !== undefined ? { prefix } : {}),
    dependencies: dependenciesOf(node),
  };
}

/** The concrete specs of a `spack find --json` output (parsed JSON or its text), one per hash, in input order. */
export function parseSpecs(input: unknown): SpecRecord[] {
  let data = input;
  if (typeof input === "string") {
    try {
      data = JSON.parse(input);
    } catch (error) {
      throw new InputError(`spack find --json output is not JSON: ${(error as Error).message}`, { cause: error });
    }
  }
  if (!Array.isArray(data)) {
    throw new InputError(
      `spack find --json output must be a JSON array of specs, got ${data === null ? "null" : typeof data}`,
    );
  }
  const seen = new Set<string>();
  const records: SpecRecord[] = [];
  data.forEach((element: unknown, index) => {
    if (!isObject(element)) throw new InputError(`spec #${index} is not an object`);
    const spec = element["spec"];
    const nodes = isObject(spec) && Array.isArray(spec["nodes"]) ? (spec["nodes"] as unknown[]) : [element];
    nodes.forEach((node, n) => {
      if (!isObject(node)) throw new InputError(`spec #${index} node #${n} is not an object`);
      const record = recordOf(node, nodes.length > 1 ? `#${index} node #${n}` : `#${index}`);
      if (seen.has(record.hash)) return;
      seen.add(record.hash);
      records.push(record);
    });
  });
  return records;
}
