/**
 * The stack file's shape, as valibot schemas. Validation only: defaults that depend on other fields
 * (prefix, module name) and paths relative to the stack file are settled by `toStack` in load.ts.
 * Every message names the bad value and, where there is a closed set, the allowed ones.
 */
import { basename } from "node:path";
import * as v from "valibot";
import { BUILDCACHE_MIRROR } from "../spack/contract.js";
import { getMicroarch, suggestMicroarch } from "../targets/index.js";

/** Spack release the factory pins when a stack names no Spack. */
export const DEFAULT_SPACK_URL = "https://github.com/spack/spack.git";
export const DEFAULT_SPACK_REF = "v1.1.0";
/** Spack v1.x keeps its builtin packages in this repository, pinned per Spack release. */
export const DEFAULT_SPACK_PACKAGES_URL = "https://github.com/spack/spack-packages.git";
export const DEFAULT_BASE_IMAGE = "ubuntu:24.04";
/** OS packages of the base image's own compiler. */
export const DEFAULT_OS_COMPILER_PACKAGES: readonly string[] = ["gcc", "g++", "gfortran"];
/** The factory's own buildcache mirror: a stack's mirror may not take its name. */
const RESERVED_MIRROR = BUILDCACHE_MIRROR;

/** Describe a value the way the user wrote it in YAML. */
export function describeValue(value: unknown): string {
  if (value === null || value === undefined) return "an empty value";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a map";
  if (typeof value === "string") return JSON.stringify(value);
  return `${typeof value} ${String(value)}`;
}

const isMap = (x: unknown): x is Record<string, unknown> => x !== null && typeof x === "object" && !Array.isArray(x);

/** `v.strictObject` with messages that say which key is unknown or missing and list the allowed ones. */
function strict<const E extends v.ObjectEntries>(entries: E) {
  const allowed = Object.keys(entries);
  const notMap = (input: unknown) => `expected a map with keys ${allowed.join(", ")}; got ${describeValue(input)}`;
  // valibot takes a list for an object with keys "0", "1", ...: refuse it first.
  return v.pipe(
    v.custom<Record<string, unknown>>(isMap, (issue) => notMap(issue.input)),
    v.strictObject(entries, (issue) => {
      const key = issue.path?.[issue.path.length - 1]?.key;
      if (issue.expected === "never") return `unknown key "${String(key)}" (allowed keys: ${allowed.join(", ")})`;
      if (issue.received === "undefined" && typeof key === "string") return `missing required key "${key}"`;
      return notMap(issue.input);
    }),
  );
}

/** `v.record` that refuses lists (which valibot would take as maps with keys "0", "1", ...). */
function map<K extends v.GenericSchema<string, string | number | symbol>, V extends v.GenericSchema<unknown, unknown>>(
  key: K,
  value: V,
  message: (input: unknown) => string,
) {
  return v.pipe(
    v.custom<Record<string, unknown>>(isMap, (issue) => message(issue.input)),
    v.record(key, value, (issue) => message(issue.input)),
  );
}

const string = (what = "a string") => v.string((issue) => `expected ${what}, got ${describeValue(issue.input)}`);

const nonEmptyString = (what = "a string") =>
  v.pipe(
    string(what),
    v.check((s) => s.trim() !== "", `expected ${what}, got an empty string`),
  );

/** A Debian/Ubuntu package name (optionally `=version`): it becomes an argument of `apt-get install` in the image. */
const osPackageName = v.pipe(
  nonEmptyString("an OS package name"),
  v.regex(
    /^[a-z0-9][a-z0-9+.-]*(=[A-Za-z0-9.+~:-]+)?$/,
    (issue) => `${describeValue(issue.input)} is not a Debian package name such as g++-13`,
  ),
);

/** A value handed to a tool as an argument must not read as one of its options. */
const notAnOption = <T extends v.GenericSchema<unknown, string>>(schema: T) =>
  v.pipe(
    schema,
    v.check((s: string) => !s.startsWith("-"), "must not start with '-'"),
  );

function list<T extends v.GenericSchema<unknown, unknown>>(item: T, what: string) {
  return v.array(item, (issue) => `expected a list of ${what}, got ${describeValue(issue.input)}`);
}

const nonEmptyList = <T extends v.GenericSchema<unknown, unknown>>(item: T, what: string) =>
  v.pipe(list(item, what), v.nonEmpty(`expected at least one of ${what}, got an empty list`));

/**
 * A list whose entries must be distinct (by `keyOf`, the value itself by default): the second occurrence is
 * reported at its own index.
 */
function distinct(what: string, keyOf: (value: string) => string = (value) => value) {
  return v.rawCheck<string[]>(({ dataset, addIssue }) => {
    if (!dataset.typed) return;
    const seen = new Map<string, number>();
    dataset.value.forEach((value, index) => {
      const key = keyOf(value);
      const first = seen.get(key);
      if (first === undefined) {
        seen.set(key, index);
        return;
      }
      addIssue({
        message: `duplicate ${what} "${key}" (already at index ${first})`,
        path: [{ type: "array", origin: "value", input: dataset.value, key: index, value }],
      });
    });
  });
}

/**
 * A name that ends up in file names, image tags and module paths: letters, digits, `.`, `_`, `+`, `-`;
 * not starting with `.` or `-`; no `..`, no `/`, no whitespace.
 */
const SAFE_NAME = /^[A-Za-z0-9_+][A-Za-z0-9._+-]*$/;
export function isSafeName(name: string): boolean {
  return SAFE_NAME.test(name) && !name.includes("..");
}
const safeName = (what: string) =>
  v.pipe(
    string(`${what} as a string`),
    v.check(
      isSafeName,
      (issue) =>
        `${describeValue(issue.input)} is not a safe ${what}: use letters, digits, ".", "_", "+" and "-", ` +
        `not starting with "." or "-" and without ".."`,
    ),
  );

const targetName = v.pipe(
  nonEmptyString("a microarchitecture name"),
  v.check(
    (name) => getMicroarch(name) !== undefined,
    (issue) => {
      const name = String(issue.input);
      const close = suggestMicroarch(name);
      return `unknown microarchitecture "${name}"${close.length > 0 ? ` (did you mean ${close.join(", ")}?)` : ""}`;
    },
  ),
);

/** Spack package names: lowercase letters, digits and dashes (`py-numpy`, `pkgconf`). */
const packageName = v.pipe(
  string("a Spack package name"),
  v.regex(
    /^[a-z0-9][a-z0-9_-]*$/,
    (issue) => `${describeValue(issue.input)} is not a Spack package name (lowercase letters, digits, "-")`,
  ),
);

/** `gcc@13.3.0`: a compiler package name and an exact version. */
export const COMPILER_SPEC = /^([a-z][a-z0-9_-]*)@(=?[0-9][A-Za-z0-9._-]*)$/;
const compilerSpec = v.pipe(
  string("a compiler spec such as gcc@13.3.0"),
  v.regex(
    COMPILER_SPEC,
    (issue) =>
      `${describeValue(issue.input)} is not a compiler: use "os" or a Spack compiler spec name@version ` +
      `such as "gcc@13.3.0"`,
  ),
);

const compilerObject = v.pipe(
  strict({
    spec: v.optional(compilerSpec),
    os: v.optional(
      strict({
        packages: v.optional(v.pipe(nonEmptyList(osPackageName, "OS package names"), distinct("package"))),
      }),
    ),
  }),
  v.check((c) => (c.spec === undefined) !== (c.os === undefined), 'takes exactly one of "spec" or "os"'),
);

/** `os`, `gcc@13.3.0`, `{ spec: gcc@13.3.0 }` or `{ os: { packages: [...] } }`: the value's shape picks the schema. */
const compiler = v.lazy((input: unknown) => {
  if (typeof input === "string") {
    if (input === "os") return v.literal("os");
    return compilerSpec;
  }
  if (input !== null && typeof input === "object" && !Array.isArray(input)) return compilerObject;
  return v.custom<never>(
    () => false,
    (issue) => `expected "os", a compiler spec such as "gcc@13.3.0" or a map; got ${describeValue(issue.input)}`,
  );
});

/** `scheme://...` is a URL; anything else is a host path. */
export const isUrl = (s: string): boolean => /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(s);

const mirrorName = v.pipe(
  v.string(),
  v.regex(/^[A-Za-z0-9_][A-Za-z0-9._-]*$/, (issue) => `${describeValue(issue.input)} is not a valid mirror name`),
  v.check(
    (name) => name !== RESERVED_MIRROR,
    `mirror name "${RESERVED_MIRROR}" is reserved for the factory's buildcache`,
  ),
);

/**
 * Git transports a clone may use: https, ssh, git, file, and scp-like `host:path`. Command transports (`ext::`,
 * `fd::`) and anything else git would hand to a helper are refused here; the clone pins GIT_ALLOW_PROTOCOL too.
 */
export const GIT_URL =
  /^(?:(?:https|ssh|git|file):\/\/[^\s]+|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s:][^\s]*|[A-Za-z0-9.-]+\.[A-Za-z]{2,}:[^\s:][^\s]*)$/;
export function isAllowedGitUrl(url: string): boolean {
  return GIT_URL.test(url) && !url.includes("::") && !/[\x00-\x1f\x7f]/.test(url);
}
const gitUrl = v.pipe(
  notAnOption(nonEmptyString("a git URL")),
  v.check(
    isAllowedGitUrl,
    (issue) =>
      `${describeValue(issue.input)} is not a git URL the factory clones: use https://, ssh://, git://, file:// or user@host:path`,
  ),
);
const gitRef = notAnOption(nonEmptyString("a git branch, tag or commit"));

/** Either a git `url` (with an optional `ref`) or a local checkout `source`, not both. */
function originChecks<T extends { url?: string; ref?: string; source?: string }>(what: string) {
  return v.rawCheck<T>(({ dataset, addIssue }) => {
    if (!dataset.typed) return;
    const { url, ref, source } = dataset.value;
    if (source !== undefined && url !== undefined) {
      addIssue({ message: `takes either "url" (with "ref") or "source" (${what}), not both` });
    } else if (source !== undefined && ref !== undefined) {
      addIssue({ message: '"ref" applies to a git "url"; a local "source" checkout is used as it is' });
    }
  });
}

/** Spack v1.x's builtin package repository (spack-packages): a local checkout or a git origin. */
const builtinObject = strict({
  url: v.optional(gitUrl),
  ref: v.optional(gitRef),
  source: v.optional(nonEmptyString("a path to a spack-packages checkout")),
});
const builtin = v.pipe(builtinObject, originChecks<v.InferOutput<typeof builtinObject>>("a spack-packages checkout"));

const spackObject = strict({
  url: v.optional(gitUrl),
  ref: v.optional(gitRef),
  source: v.optional(nonEmptyString("a path to a Spack checkout")),
  builtin: v.optional(builtin),
  repos: v.optional(v.pipe(list(nonEmptyString("a path"), "repository paths"), distinct("repository"))),
  mirrors: v.optional(
    map(
      mirrorName,
      nonEmptyString("a mirror URL or path"),
      (input) => `expected a map of mirror name to URL or path, got ${describeValue(input)}`,
    ),
  ),
});
const spack = v.pipe(spackObject, originChecks<v.InferOutput<typeof spackObject>>("a Spack checkout"));

const packages = map(
  v.string(),
  v.custom<Record<string, unknown>>(
    isMap,
    (issue) => `expected a map of Spack package settings, got ${describeValue(issue.input)}`,
  ),
  (input) => `expected a map of package name to settings, got ${describeValue(input)}`,
);

/** An environment variable name (module environment, `--env NAME=VALUE`). */
export const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const envName = v.pipe(
  v.string(),
  v.regex(ENV_NAME, (issue) => `${describeValue(issue.input)} is not a valid environment variable name`),
);
/** The module systems a stack's modules are written for (src/render/module.ts renders both). */
export const MODULE_SYSTEM_NAMES = ["lmod", "tcl"] as const;
const moduleSystem = v.picklist(
  MODULE_SYSTEM_NAMES,
  (issue) => `${describeValue(issue.input)} is not a module system (allowed: ${MODULE_SYSTEM_NAMES.join(", ")})`,
);
const modules = strict({
  name: v.optional(safeName("module name")),
  env: v.optional(
    map(
      envName,
      string("a string value"),
      (input) => `expected a map of variable name to value, got ${describeValue(input)}`,
    ),
  ),
  systems: v.optional(nonEmptyList(moduleSystem, "module systems")),
});

const prefix = v.pipe(
  nonEmptyString("an absolute path"),
  v.check(
    (p) => p.startsWith("/"),
    (issue) => `expected an absolute path starting with "/", got ${describeValue(issue.input)}`,
  ),
  v.check((p) => !/\s/.test(p), "must not contain whitespace"),
  v.check((p) => !p.split("/").includes(".."), 'must not contain ".."'),
  // The install script and the Lua module carry the prefix as a quoted string.
  v.check((p) => !/["'\\$`\x00-\x1f]/.test(p), "must not contain quotes, backslashes, $, ` or control characters"),
);

/** Top-level keys, in the order of the documentation (examples/slurm.yaml). */
export const StackSchema = strict({
  name: safeName("name"),
  version: safeName("version"),
  description: v.optional(string()),
  specs: nonEmptyList(nonEmptyString("a Spack spec"), "Spack specs"),
  targets: v.pipe(nonEmptyList(targetName, "microarchitecture names"), distinct("target")),
  base_image: v.optional(
    v.pipe(
      nonEmptyString("an image reference such as ubuntu:24.04"),
      v.check((s) => !/\s/.test(s), "must not contain whitespace"),
    ),
  ),
  compiler: v.optional(compiler),
  spack: v.optional(spack),
  packages: v.optional(packages),
  externals: v.optional(v.pipe(list(packageName, "Spack package names"), distinct("external"))),
  prefix: v.optional(prefix),
  modules: v.optional(modules),
  // Assets are shipped side by side under data/<name>_assets/: two with one file name would collide.
  assets: v.optional(
    v.pipe(
      list(nonEmptyString("a file path"), "file paths"),
      distinct("asset file name", (p) => basename(p)),
    ),
  ),
});

export type StackInput = v.InferOutput<typeof StackSchema>;

/**
 * Fields whose YAML scalars are taken as the text the user wrote even when YAML reads them as numbers or
 * booleans: `version: 25.05` means "25.05", not 25.5. Paths use "*" for any map key.
 */
export const TEXT_FIELDS: readonly (readonly string[])[] = [
  ["name"],
  ["version"],
  ["description"],
  ["spack", "ref"],
  ["spack", "builtin", "ref"],
  ["modules", "name"],
  ["modules", "env", "*"],
];
