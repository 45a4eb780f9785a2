/**
 * kit.json: what a kit holds, from where, at which commits, with a checksum of every file. Pure: types, the
 * validating parser (a kit crosses an air gap by hand: every field is checked before use) and serialisation.
 */
import * as v from "valibot";
import { InputError } from "../errors.js";

export const KIT_FORMAT_VERSION = 1;

/** One concrete spec of a target, and the source archive it needs (absent: no code, e.g. gcc-runtime). */
export interface KitSpec {
  name: string;
  version: string;
  hash: string;
  /** Path of its source archive in the kit (`mirror/_source-cache/archive/…`). */
  source?: string;
}

export interface KitManifest {
  format_version: number;
  created_at: string;
  stack: { name: string; version: string; file: string; sha256: string };
  targets: string[];
  generation: "v0" | "v1";
  spack: { path: string; origin: string; commit: string };
  spack_packages?: { path: string; origin: string; commit: string; builtin: string };
  /** Concrete specs per target, from the targets' concretizations. */
  specs: Record<string, KitSpec[]>;
  /** Builder images, one per architecture family. */
  images: { family: string; tag: string; file: string }[];
  repos: { namespace: string; path: string }[];
  mirrors: { name: string; path: string }[];
  bootstrap?: string;
  buildcache?: string;
  public_key?: string;
  /** Every file of the kit but kit.json and its signature: relative path → sha256 (hex). */
  files: Record<string, string>;
}

const SHA256 = /^[0-9a-f]{64}$/;
/** A relative path inside the kit: no absolute path, no `..`, nothing a shell or tar could read otherwise. */
const KIT_PATH = /^(?!\/)(?!.*(^|\/)\.\.(\/|$))[A-Za-z0-9._+@=,/-]+$/;
const name = v.pipe(v.string(), v.regex(/^[A-Za-z0-9_+][A-Za-z0-9._+-]*$/, "a safe name"));
const path = v.pipe(v.string(), v.regex(KIT_PATH, "a relative path inside the kit"));
const text = v.pipe(v.string(), v.maxLength(4096));

const schema = v.strictObject({
  format_version: v.literal(KIT_FORMAT_VERSION),
  created_at: text,
  stack: v.strictObject({ name, version: text, file: text, sha256: v.pipe(v.string(), v.regex(SHA256)) }),
  targets: v.array(name),
  generation: v.picklist(["v0", "v1"]),
  spack: v.strictObject({ path, origin: text, commit: text }),
  spack_packages: v.optional(v.strictObject({ path, origin: text, commit: text, builtin: path })),
  specs: v.record(
    name,
    v.array(
      v.strictObject({
        name,
        version: text,
        hash: v.pipe(v.string(), v.regex(/^[a-z0-9]{7,64}$/)),
        source: v.optional(path),
      }),
    ),
  ),
  images: v.array(v.strictObject({ family: name, tag: v.pipe(v.string(), v.regex(/^[a-z0-9./_:-]+$/)), file: path })),
  repos: v.array(v.strictObject({ namespace: name, path })),
  mirrors: v.array(v.strictObject({ name, path })),
  bootstrap: v.optional(path),
  buildcache: v.optional(path),
  public_key: v.optional(path),
  files: v.record(path, v.pipe(v.string(), v.regex(SHA256))),
});

/** Parse and check kit.json (`where` names it in errors). Throws InputError naming every bad field. */
export function parseKitManifest(json: string, where: string): KitManifest {
  let data: unknown;
  try {
    data = JSON.parse(json);
  } catch (error) {
    throw new InputError(`${where}: not JSON (${error instanceof Error ? error.message : String(error)})`);
  }
  const result = v.safeParse(schema, data);
  if (!result.success) {
    const issues = result.issues.map((i) => `  ${v.getDotPath(i) ?? "(top)"}: ${i.message}`);
    throw new InputError(`${where}: not a kit manifest this factory reads\n${issues.join("\n")}`, {
      hint: "make the kit again with `stack-factory kit create` of this version",
    });
  }
  return result.output as KitManifest;
}

/** kit.json's bytes: keys in a fixed order, files sorted, so the same kit gives the same manifest. */
export function serializeKitManifest(m: KitManifest): string {
  const files = Object.fromEntries(Object.entries(m.files).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return `${JSON.stringify({ ...m, files }, null, 2)}\n`;
}
