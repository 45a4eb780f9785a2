/**
 * Reading a stack file: YAML → valibot validation → `Stack` with defaults applied and paths made absolute.
 * Every problem is collected and reported at once, each as `<file>:<line>:<col> <path>: <message>`.
 */
import { lstat, readFile, realpath, stat } from "node:fs/promises";
import path from "node:path";
import * as v from "valibot";
import { type Document, isAlias, isMap, isScalar, isSeq, LineCounter, type Node, parseDocument, Scalar } from "yaml";
import { ConfigError, InputError } from "../errors.js";
import { documentIssues, documentValues, nestingIssue, specialKind, stackIssues } from "./guards.js";
import { inspectSpackSources } from "./inspect.js";
import { boundaryIssues } from "./stack-boundary.js";
import { utf8Text } from "./utf8.js";
import type { CompilerChoice, Origin, Stack } from "./types.js";
import {
  COMPILER_SPEC,
  DEFAULT_BASE_IMAGE,
  DEFAULT_OS_COMPILER_PACKAGES,
  DEFAULT_SPACK_PACKAGES_URL,
  DEFAULT_SPACK_REF,
  DEFAULT_SPACK_URL,
  describeValue,
  MODULE_SYSTEM_NAMES,
  isUrl,
  type StackInput,
  StackSchema,
  TEXT_FIELDS,
} from "./schema.js";

export type Segment = string | number;
/** What an issue points at: the value at a path, the key naming it, or the map a missing key is missing from. */
export type Anchor = "value" | "key" | "parent";

/** Read and validate a stack file. Local paths it names (assets, Spack checkout, repos, mirrors) must exist. */
export async function loadStack(file: string, options: { secrets?: readonly string[] } = {}): Promise<Stack> {
  let text: string;
  // A FIFO (or a device) would block the read, or never end it.
  const special = await specialKind(file);
  if (special !== undefined)
    throw new InputError(`cannot read stack file ${file}: it is ${special}, not a regular file`);
  try {
    text = utf8Text(await readFile(file), file);
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    throw new InputError(`cannot read stack file ${file}: ${readFailure(error)}`, { cause: error });
  }
  const parsed = parseWithPositions(text, file);
  const issues = await missingPaths(parsed.stack, parsed.issueAt, parsed.offsetAt);
  if (issues.length > 0) throw new ConfigError(file, issues);
  const crossing = await boundaryIssues({
    stack: parsed.stack,
    stackFile: file,
    secrets: options.secrets ?? [],
    issueAt: parsed.issueAt,
    offsetAt: parsed.offsetAt,
  });
  if (crossing.length > 0) throw new ConfigError(file, crossing);
  const inspected = await inspectSpackSources(parsed.stack, parsed.builtinGiven, parsed.issueAt);
  if (inspected.issues.length > 0) throw new ConfigError(file, inspected.issues);
  return inspected.stack;
}

/** Validate a stack file's text. Pure: `file` names the file in messages and anchors relative paths. */
export function parseStack(text: string, file: string): Stack {
  return parseWithPositions(text, file).stack;
}

export function readFailure(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === "ENOENT") return "no such file";
  if (code === "EISDIR") return "it is a directory, not a file";
  if (code === "EACCES" || code === "EPERM") return "permission denied";
  return error instanceof Error ? error.message : String(error);
}

interface Parsed {
  stack: Stack;
  /** Format an issue for a path of the input document. */
  issueAt: (segments: readonly Segment[], message: string, anchor?: Anchor) => string;
  /** Offset in the text of the node at a path of the input document (for ordering issues). */
  offsetAt: (segments: readonly Segment[], anchor?: Anchor) => number;
  /** Whether the stack file names `spack.builtin` itself (rather than taking the default). */
  builtinGiven: boolean;
}

function parseWithPositions(text: string, file: string): Parsed {
  // Before the parser, which recurses: nesting deep enough to exhaust its stack is reported with its field.
  const deep = nestingIssue(text, file);
  if (deep !== undefined) throw new ConfigError(file, [deep]);
  const { doc, issueAt, values } = readMapDocument(text, file, {
    empty: "the stack file is empty; it needs at least name, version, specs and targets",
    notMap: (got) => `the stack file must be a map of keys (name, version, specs, targets, ...), got ${got}`,
    prepare: keepSourceText,
  });
  const result = v.safeParse(StackSchema, values);
  if (!result.success) throw new ConfigError(file, locateIssues(doc, result.issues, issueAt));
  // What install.sh, the module, Docker and file names would refuse later, across fields.
  const offsetOfIssue = (issue: { segments: Segment[]; anchor?: Anchor }) =>
    offsetOf(doc, issue.segments, issue.anchor ?? "value");
  const across = stackIssues(result.output).sort((a, b) => offsetOfIssue(a) - offsetOfIssue(b));
  if (across.length > 0)
    throw new ConfigError(
      file,
      across.map((i) => issueAt(i.segments, i.message, i.anchor)),
    );
  const offsetAt = (segments: readonly Segment[], anchor: Anchor = "value"): number => offsetOf(doc, segments, anchor);
  const stack = toStack(result.output, file);
  const builtinGiven = result.output.spack?.builtin !== undefined;
  if (builtinGiven && stack.spack.generation === "v0") {
    throw new ConfigError(file, [issueAt(["spack", "builtin"], V0_BUILTIN_MESSAGE, "key")]);
  }
  return { stack, issueAt, offsetAt, builtinGiven };
}

/**
 * Valibot issues as located messages, in file order (so a user can fix them from top to bottom). An unknown key
 * points at the key, a missing one at the map it is missing from, anything else at the value.
 */
export function locateIssues(
  doc: Document,
  issues: readonly v.BaseIssue<unknown>[],
  issueAt: (segments: readonly Segment[], message: string, anchor?: Anchor) => string,
): string[] {
  const located = issues.map((issue) => {
    const segments = (issue.path ?? []).map((item) => item.key as Segment);
    const last = issue.path?.[issue.path.length - 1];
    let anchor: Anchor = "value";
    if (issue.type === "strict_object" && issue.expected === "never") anchor = "key";
    else if (issue.type === "strict_object" && issue.received === "undefined") anchor = "parent";
    else if (last?.origin === "key") anchor = "key";
    return { text: issueAt(segments, issue.message, anchor), offset: offsetOf(doc, segments, anchor) };
  });
  located.sort((a, b) => a.offset - b.offset);
  return located.map((l) => l.text);
}

/**
 * Parse a YAML file that must hold one map, keeping positions. Everything wrong with the text itself is thrown here
 * as a ConfigError, each problem at its place: syntax, an empty file, a top level that is not a map, recursive
 * aliases, alias bombs and control characters. `prepare` may adjust the document before its values are built.
 */
export function readMapDocument(
  text: string,
  file: string,
  what: {
    empty: string;
    notMap: (got: string) => string;
    prepare?: (doc: Document) => void;
    /** A file of secrets: syntax errors say where and what kind, never the text around them. */
    secret?: boolean;
  },
): {
  doc: Document;
  at: (offset: number) => string;
  issueAt: (segments: readonly Segment[], message: string, anchor?: Anchor) => string;
  values: unknown;
} {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, merge: true });
  const at = (offset: number): string => {
    const { line, col } = lines.linePos(offset);
    return `${file}:${line}:${col}`;
  };
  if (doc.errors.length > 0)
    throw new ConfigError(
      file,
      doc.errors.map((e) => `${at(e.pos[0])}: ${what.secret === true ? `not valid YAML (${e.code})` : e.message}`),
    );
  if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) {
    throw new ConfigError(file, [`${at(0)}: ${what.empty}`]);
  }
  if (!isMap(doc.contents)) {
    // Described from the node, not its values: expanding a top-level alias bomb would throw.
    const top = doc.contents;
    const got =
      what.secret === true ? "" : isSeq(top) ? "a list" : isScalar(top) ? describeValue(top.value) : "an alias";
    throw new ConfigError(file, [`${at(doc.contents.range?.[0] ?? 0)}: ${what.notMap(got)}`]);
  }
  what.prepare?.(doc);
  const issueAt = (segments: readonly Segment[], message: string, anchor: Anchor = "value"): string => {
    const where = at(offsetOf(doc, segments, anchor));
    const dotted = dottedPath(segments);
    return dotted === "" ? `${where}: ${message}` : `${where} ${dotted}: ${message}`;
  };
  // Recursive aliases, alias bombs and control characters, each at its place, before the values are built.
  const shape = documentIssues(doc, at);
  if (shape.length > 0) throw new ConfigError(file, shape);
  const values = documentValues(doc, at);
  if ("issue" in values) throw new ConfigError(file, [values.issue]);
  return { doc, at, issueAt, values: values.value };
}

/**
 * For the fields in TEXT_FIELDS, a plain scalar YAML reads as a number or boolean is replaced by the text as
 * written: `version: 25.05` gives "25.05" and `version: 1.10` gives "1.10", not 25.5 and 1.1.
 */
function keepSourceText(doc: Document): void {
  const visit = (node: unknown, pattern: readonly string[]): void => {
    if (isAlias(node)) return;
    if (pattern.length === 0) {
      const typed = isScalar(node) && node.value !== null && typeof node.value !== "string";
      if (typed && node.type === Scalar.PLAIN && typeof node.source === "string") node.value = node.source;
      return;
    }
    if (!isMap(node)) return;
    const [head, ...rest] = pattern;
    for (const pair of node.items) {
      const key = isScalar(pair.key) ? pair.key.value : pair.key;
      if (head === "*" || key === head) visit(pair.value, rest);
    }
  };
  for (const pattern of TEXT_FIELDS) visit(doc.contents, pattern);
}

/** Offset of the node an issue points at; falls back to the nearest enclosing node the document has. */
export function offsetOf(doc: Document, segments: readonly Segment[], anchor: Anchor): number {
  const steps = anchor === "parent" ? segments.slice(0, -1) : segments;
  let node: unknown = doc.contents;
  let offset = (doc.contents as Node | null)?.range?.[0] ?? 0;
  for (const [i, segment] of steps.entries()) {
    if (isAlias(node)) node = node.resolve(doc);
    let next: unknown;
    let keyNode: unknown;
    if (isMap(node)) {
      const pair = node.items.find((p) => String(isScalar(p.key) ? p.key.value : p.key) === String(segment));
      next = pair?.value;
      keyNode = pair?.key;
    } else if (isSeq(node) && typeof segment === "number") {
      next = node.items[segment];
    }
    const target = anchor === "key" && i === steps.length - 1 && keyNode !== undefined ? keyNode : next;
    const range = (target as Node | null | undefined)?.range;
    if (range === undefined || range === null) break;
    offset = range[0];
    node = next;
  }
  return offset;
}

/** `targets[2]`, `spack.mirrors.local`, `packages["weird key"]`. */
export function dottedPath(segments: readonly Segment[]): string {
  let out = "";
  for (const segment of segments) {
    if (typeof segment === "number") out += `[${segment}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(segment)) out += out === "" ? segment : `.${segment}`;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out;
}

export const V0_BUILTIN_MESSAGE =
  "Spack 0.2x keeps its builtin packages inside the checkout (var/spack/repos/builtin): remove spack.builtin, or use Spack v1.x";

/** Spack 0.2x by its release tag or branch (`v0.23.1`, `releases/v0.23`); anything else is taken as v1.x. */
export function generationOfRef(ref: string): "v0" | "v1" {
  return /^(?:releases\/)?v?0\.\d+/.test(ref) ? "v0" : "v1";
}

/**
 * The spack-packages branch a Spack v1.x release pins in its defaults (etc/spack/defaults/repos.yaml): v1.0.x
 * pins releases/v2025.07, v1.1.x releases/v2025.11; any other ref (develop, a commit) follows spack-packages'
 * develop. A local checkout's own defaults are read by `inspectSpackSources` instead.
 */
export function pinnedSpackPackagesRef(spackRef: string): string {
  const m = /^(?:releases\/)?v?1\.(\d+)/.exec(spackRef);
  if (m?.[1] === "0") return "releases/v2025.07";
  if (m?.[1] === "1") return "releases/v2025.11";
  return "develop";
}

/** Apply defaults and make paths absolute (relative ones are relative to the stack file's directory). */
function toStack(input: StackInput, file: string): Stack {
  const absFile = path.resolve(file);
  const dir = path.dirname(absFile);
  const resolve = (p: string): string => path.resolve(dir, p);
  const spack = input.spack ?? {};
  const origin: Origin =
    spack.source !== undefined
      ? { kind: "local", path: resolve(spack.source) }
      : { kind: "git", url: spack.url ?? DEFAULT_SPACK_URL, ref: spack.ref ?? DEFAULT_SPACK_REF };
  // A local checkout's generation and pin are read from its files by inspectSpackSources.
  const generation = origin.kind === "git" ? generationOfRef(origin.ref) : "v1";
  const given = spack.builtin;
  const builtin: Origin | undefined =
    generation === "v0"
      ? undefined
      : given?.source !== undefined
        ? { kind: "local", path: resolve(given.source) }
        : {
            kind: "git",
            url: given?.url ?? DEFAULT_SPACK_PACKAGES_URL,
            ref: given?.ref ?? (origin.kind === "git" ? pinnedSpackPackagesRef(origin.ref) : "develop"),
          };
  return {
    file: absFile,
    dir,
    name: input.name,
    version: input.version,
    description: input.description ?? "",
    specs: [...input.specs],
    targets: [...input.targets],
    base_image: input.base_image ?? DEFAULT_BASE_IMAGE,
    compiler: compilerChoice(input.compiler),
    spack: {
      origin,
      generation,
      ...(builtin === undefined ? {} : { builtin }),
      // The namespace is read from each repo.yaml by inspectSpackSources; until then, the directory's name.
      repos: (spack.repos ?? []).map((p) => ({ path: resolve(p), namespace: path.basename(resolve(p)) })),
      mirrors: Object.fromEntries(
        Object.entries(spack.mirrors ?? {}).map(([name, where]) => [name, isUrl(where) ? where : resolve(where)]),
      ),
    },
    packages: structuredClone(input.packages ?? {}),
    externals: [...(input.externals ?? [])],
    prefix: normalisePrefix(input.prefix ?? `/opt/${input.name}/${input.version}`),
    modules: {
      name: input.modules?.name ?? input.name,
      env: { ...(input.modules?.env ?? {}) },
      systems: [...new Set(input.modules?.systems ?? MODULE_SYSTEM_NAMES)],
    },
    assets: (input.assets ?? []).map(resolve),
  };
}

function normalisePrefix(prefix: string): string {
  const normal = path.posix.normalize(prefix);
  return normal.length > 1 && normal.endsWith("/") ? normal.slice(0, -1) : normal;
}

function compilerChoice(input: StackInput["compiler"]): CompilerChoice {
  if (input === undefined || input === "os") return { kind: "os", packages: [...DEFAULT_OS_COMPILER_PACKAGES] };
  if (typeof input === "string") return spackCompiler(input);
  if (input.spec !== undefined) return spackCompiler(input.spec);
  return { kind: "os", packages: [...(input.os?.packages ?? DEFAULT_OS_COMPILER_PACKAGES)] };
}

function spackCompiler(spec: string): CompilerChoice {
  const match = COMPILER_SPEC.exec(spec);
  // The schema has already checked the form; the fallback only satisfies the type checker.
  const name = match?.[1] ?? spec;
  const version = (match?.[2] ?? "").replace(/^=/, "");
  return { kind: "spack", spec, name, version };
}

/** Local paths the stack names that are missing on this host, as located issues. */
async function missingPaths(stack: Stack, issueAt: Parsed["issueAt"], offsetAt: Parsed["offsetAt"]): Promise<string[]> {
  const checks: { segments: Segment[]; where: string; kind: "file" | "directory"; what: string }[] = [];
  for (const [i, where] of stack.assets.entries())
    checks.push({ segments: ["assets", i], where, kind: "file", what: "asset" });
  if (stack.spack.origin.kind === "local") {
    const where = stack.spack.origin.path;
    checks.push({ segments: ["spack", "source"], where, kind: "directory", what: "Spack checkout" });
  }
  const builtin = stack.spack.builtin;
  if (builtin?.kind === "local") {
    checks.push({
      segments: ["spack", "builtin", "source"],
      where: builtin.path,
      kind: "directory",
      what: "spack-packages checkout",
    });
  }
  for (const [i, { path: where }] of stack.spack.repos.entries()) {
    checks.push({ segments: ["spack", "repos", i], where, kind: "directory", what: "package repository" });
  }
  for (const [name, where] of Object.entries(stack.spack.mirrors)) {
    if (isUrl(where)) continue;
    checks.push({ segments: ["spack", "mirrors", name], where, kind: "directory", what: "mirror" });
  }
  checks.sort((a, b) => offsetAt(a.segments) - offsetAt(b.segments));
  const issues = await Promise.all(
    checks.map(async ({ segments, where, kind, what }) => {
      // An asset is shipped as the file it names: a symlink would ship whatever it points to when packed.
      if (kind === "file" && (await lstat(where).catch(() => undefined))?.isSymbolicLink() === true) {
        const target = await realpath(where).catch(() => undefined);
        return issueAt(
          segments,
          `${what} ${where} is a symlink; name the file itself${target !== undefined ? ` (${target})` : ""}`,
        );
      }
      const info = await stat(where).catch(() => undefined);
      if (info === undefined) return issueAt(segments, `${what} ${where} does not exist`);
      const isKind = kind === "file" ? info.isFile() : info.isDirectory();
      return isKind ? undefined : issueAt(segments, `${what} ${where} is not a ${kind}`);
    }),
  );
  return issues.filter((i): i is string => i !== undefined);
}
