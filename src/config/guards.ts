/**
 * Checks of a stack file that must run before the YAML is turned into values or validated, because that step
 * is what a hostile file attacks: nesting deep enough to exhaust the parser's stack, aliases that refer to
 * themselves or expand to millions of nodes, and control characters that would reach manifests, modules and
 * logs. Each problem is reported at its place in the file; none reaches Docker or ends in a stack trace.
 */
import type { Stats } from "node:fs";
import { stat } from "node:fs/promises";
import {
  type Alias,
  type Document,
  isAlias,
  isMap,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  type Pair,
  Parser,
  type CST,
} from "yaml";
import type { Segment } from "./load.js";

/** Deeper than any stack file needs (packages.<name>.require[0].spec is five levels); far below what a recursive parser survives. */
export const MAX_NESTING = 64;
/** What the aliases of one stack file may expand to, in nodes. */
export const MAX_ALIAS_NODES = 10_000;

/** C0 controls but tab and newline, DEL and the C1 controls: nothing a stack file's text needs. */
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/u;

export type Where = (offset: number) => string;

function pathText(segments: readonly Segment[]): string {
  let out = "";
  for (const segment of segments) {
    if (typeof segment === "number") out += `[${segment}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(segment)) out += out === "" ? segment : `.${segment}`;
    else out += `[${JSON.stringify(segment.length > 40 ? `${segment.slice(0, 40)}…` : segment)}]`;
  }
  return out;
}

/** The key a CST item names, as the user wrote it (quotes dropped), or undefined. */
function keyOf(key: CST.Token | null | undefined): string | undefined {
  if (key === null || key === undefined) return undefined;
  if (key.type === "scalar") return key.source;
  if (key.type === "single-quoted-scalar" || key.type === "double-quoted-scalar") return key.source.slice(1, -1);
  return undefined;
}

/**
 * The first place the text nests collections deeper than MAX_NESTING, found on the parser's token tree without
 * recursion (the document composer would exhaust the stack first). Returns `<file:line:col> <field>: <message>`.
 */
export function nestingIssue(text: string, file: string): string | undefined {
  const lines = new LineCounter();
  const where: Where = (offset) => {
    const { line, col } = lines.linePos(offset);
    return `${file}:${line}:${col}`;
  };
  const parser = new Parser(lines.addNewLine);
  const todo: { token: CST.Token; depth: number; path: Segment[] }[] = [];
  for (const token of parser.parse(text)) {
    if (token.type === "document" && token.value !== undefined) todo.push({ token: token.value, depth: 0, path: [] });
  }
  while (todo.length > 0) {
    const { token, depth, path } = todo.pop()!;
    if (token.type !== "block-map" && token.type !== "block-seq" && token.type !== "flow-collection") continue;
    if (depth >= MAX_NESTING) {
      const field = pathText(path.slice(0, 4));
      return `${where(token.offset)} ${field}${path.length > 4 ? "…" : ""}: nested more than ${MAX_NESTING} levels deep; no stack file field needs that`;
    }
    const isSeqLike = token.type === "block-seq" || (token.type === "flow-collection" && token.start.source === "[");
    token.items.forEach((item, index) => {
      const name = isSeqLike ? index : (keyOf(item.key) ?? index);
      if (item.key !== undefined && item.key !== null)
        todo.push({ token: item.key, depth: depth + 1, path: [...path, name] });
      if (item.value !== undefined) todo.push({ token: item.value, depth: depth + 1, path: [...path, name] });
    });
  }
  return undefined;
}

/**
 * Recursive aliases (an alias inside the node its anchor names), aliases that expand to more than
 * MAX_ALIAS_NODES nodes, and control characters in keys and values, each at its place. The document is at most
 * MAX_NESTING deep here, so walking it recursively is safe.
 */
export function documentIssues(doc: Document, where: Where): string[] {
  const walk = new DocumentWalk(doc, where);
  walk.visit(doc.contents, [], new Set());
  return walk.issues;
}

/** One walk of a document, in document order, collecting its issues. */
class DocumentWalk {
  readonly issues: string[] = [];
  private readonly size: ExpandedSize;
  /** Nodes the aliases met so far expand to. */
  private expanded = 0;
  private bombReported = false;

  constructor(
    private readonly doc: Document,
    private readonly where: Where,
  ) {
    this.size = expandedSize(doc);
  }

  visit(node: unknown, path: Segment[], ancestors: Set<unknown>): void {
    if (isAlias(node)) {
      this.alias(node, path, ancestors);
      return;
    }
    if (isScalar(node)) {
      if (typeof node.value === "string" && CONTROL.test(node.value)) this.at(node, path, controlMessage(node.value));
      return;
    }
    if (isMap(node) || isSeq(node)) {
      ancestors.add(node);
      (node.items as unknown[]).forEach((item, index) => {
        if (isPair(item)) this.pair(item, index, path, ancestors);
        else this.visit(item, [...path, index], ancestors);
      });
      ancestors.delete(node);
    }
  }

  private alias(node: Alias, path: Segment[], ancestors: Set<unknown>): void {
    const target = node.resolve(this.doc);
    if (target !== undefined && ancestors.has(target)) {
      this.at(
        node,
        path,
        `the alias *${node.source} refers to the map or list that contains it (a recursive alias); write the value out`,
      );
      return;
    }
    const nodes = target === undefined ? 1 : this.size(target, new Set());
    this.expanded += nodes;
    if (nodes === Infinity) {
      this.at(
        node,
        path,
        `the alias *${node.source} names a value that contains itself (a recursive alias); write the value out`,
      );
    } else if (this.expanded > MAX_ALIAS_NODES && !this.bombReported) {
      this.bombReported = true;
      this.at(
        node,
        path,
        `the aliases up to here expand to more than ${MAX_ALIAS_NODES} values (an alias bomb?); write the values out`,
      );
    }
  }

  /** A key and its value: a key with a control character or named `__proto__` is refused, a collection key walked. */
  private pair(item: Pair, index: number, path: Segment[], ancestors: Set<unknown>): void {
    const key = isScalar(item.key) ? item.key.value : item.key;
    const segment: Segment = typeof key === "string" || typeof key === "number" ? key : index;
    if (isScalar(item.key) && typeof item.key.value === "string" && CONTROL.test(item.key.value)) {
      this.at(item.key, [...path, segment], `the key ${controlMessage(item.key.value)}`);
    } else if (isScalar(item.key) && item.key.value === "__proto__") {
      // Turned into values, it would set the map's prototype instead of a key: dropped without a word.
      this.at(item.key, path, 'the key "__proto__" is not allowed (no field or variable may have that name)');
    } else if (!isScalar(item.key)) this.visit(item.key, [...path, segment], ancestors);
    this.visit(item.value, [...path, segment], ancestors);
  }

  private at(node: unknown, path: readonly Segment[], message: string): void {
    const offset = (node as Node | null | undefined)?.range?.[0] ?? 0;
    const field = pathText(path);
    this.issues.push(field === "" ? `${this.where(offset)}: ${message}` : `${this.where(offset)} ${field}: ${message}`);
  }
}

type ExpandedSize = (node: unknown, ancestors: Set<unknown>) => number;

/**
 * Nodes a node stands for once its aliases are expanded; Infinity when, expanding it, an alias leads back to a
 * node being expanded. Depends on the node alone (`ancestors` is one walk's own), so it is remembered per document.
 */
function expandedSize(doc: Document): ExpandedSize {
  const sizes = new Map<Node, number>();
  const size: ExpandedSize = (node, ancestors) => {
    if (isAlias(node)) {
      const target = node.resolve(doc);
      if (target === undefined) return 1;
      if (ancestors.has(target)) return Infinity;
      return size(target, ancestors);
    }
    if (node === null || typeof node !== "object") return 1;
    const known = sizes.get(node as Node);
    if (known !== undefined) return known;
    let total = 1;
    if (isMap(node) || isSeq(node)) {
      ancestors.add(node);
      for (const item of node.items as unknown[]) {
        if (isPair(item)) total += size(item.key, ancestors) + size(item.value, ancestors);
        else total += size(item, ancestors);
      }
      ancestors.delete(node);
    }
    sizes.set(node as Node, total);
    return total;
  };
  return size;
}

function controlMessage(text: string): string {
  const found = CONTROL.exec(text)![0];
  const code = `U+${found.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}`;
  return `contains the control character ${code}${found === "\0" ? " (NUL)" : ""}; only tab and newline are allowed in text`;
}

/**
 * The document's values (`toJS`), or the located issue when YAML's own alias limit refuses it (the count it
 * keeps differs from the one above, so either may trip first).
 */
export function documentValues(doc: Document, where: Where): { value: unknown } | { issue: string } {
  try {
    return { value: doc.toJS({ maxAliasCount: 1000 }) };
  } catch (error) {
    if (!(error instanceof ReferenceError)) throw error;
    let first: Node | undefined;
    const find = (node: unknown): void => {
      if (first !== undefined) return;
      if (isAlias(node)) first = node;
      else if (isMap(node) || isSeq(node)) {
        for (const item of node.items as unknown[]) {
          if (isPair(item)) {
            find(item.key);
            find(item.value);
          } else find(item);
        }
      }
    };
    find(doc.contents);
    return {
      issue: `${where(first?.range?.[0] ?? 0)}: the aliases in this file expand to too many values (an alias bomb?); write the values out`,
    };
  }
}

/** A finding about the validated stack: where (a path of the input) and what. */
export interface StackIssue {
  segments: Segment[];
  message: string;
  anchor?: "value" | "key";
}

/** The longest prefix install.sh takes (characters, after normalising). */
export const MAX_INSTALL_PREFIX = 200;
/**
 * The longest file name a tarball's directory name may make: `<name>-<version>-<target>` + `.tar.zst.sha256` +
 * the temporary suffix of an atomic write (`.tmp-<pid>-<6>`), within the 255 bytes a file name may have.
 */
export const MAX_TOP_BYTES = 255 - ".tar.zst.sha256".length - ".tmp-4194304-xxxxxx".length;

/** The upper-case stem of the module's own variables (`hello-world` → `HELLO_WORLD_ROOT`); render/module.ts uses it. */
export function moduleStem(stackName: string): string {
  const stem = stackName.toUpperCase().replace(/[^A-Z0-9]/g, "_");
  return /^[0-9]/.test(stem) ? `_${stem}` : stem;
}

/** Variables the module sets or prepends itself, and the loader's: a stack's modules.env may not set them. */
const MODULE_OWN = ["PATH", "MANPATH", "PKG_CONFIG_PATH", "CMAKE_PREFIX_PATH", "MODULEPATH"];

export function moduleEnvProblem(name: string, stackName: string): string | undefined {
  const stem = moduleStem(stackName);
  if (name.startsWith("LD_"))
    return `${name} is for the dynamic linker (LD_*); the view's RPATHs make it unnecessary and it breaks other software`;
  if (MODULE_OWN.includes(name))
    return `${name} is set by the module itself (${MODULE_OWN.join(", ")} cannot be set by a stack)`;
  if (name === `${stem}_ROOT` || name === `${stem}_INSTALL_PREFIX`)
    return `${name} is the module's own prefix variable (${stem}_ROOT and ${stem}_INSTALL_PREFIX are reserved)`;
  return undefined;
}

/** Why install.sh would refuse `prefix` (its normalize_dir and length rules), or undefined. */
export function installPrefixProblem(prefix: string): string | undefined {
  const bad = [...prefix].find((c) => !/^[A-Za-z0-9/._+,=-]$/.test(c));
  if (bad !== undefined) {
    const shown = /[\p{Cc}\s]/u.test(bad)
      ? `U+${bad.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}`
      : `"${bad}"`;
    return `must not contain ${shown}: install.sh takes letters, digits and / . _ + , = - only`;
  }
  if (prefix.split("/").some((part) => part === "." || part === "..")) return 'must not contain "." or ".." components';
  const normal = prefix.replace(/\/+/g, "/").replace(/\/$/, "");
  if (normal === "") return "must not be /: install.sh refuses to install over the root directory";
  if (normal.length > MAX_INSTALL_PREFIX)
    return `is ${normal.length} characters; install.sh takes at most ${MAX_INSTALL_PREFIX}`;
  return undefined;
}

/*
 * An image reference as the engine parses it (distribution/reference): [registry[:port]/]path[:tag][@digest],
 * the whole name at most 255 characters. The engine also wants path components in lowercase; upper case is let
 * through here (the plan's tests name such images), the engine's own message covers it.
 */
const DOMAIN_PART = "(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])";
const DOMAIN = `(?:${DOMAIN_PART}(?:\\.${DOMAIN_PART})*|\\[[0-9A-Fa-f:]+\\])(?::[0-9]+)?`;
const COMPONENT = "[A-Za-z0-9]+(?:(?:[._]|__|-+)[A-Za-z0-9]+)*";
const IMAGE_REFERENCE = new RegExp(
  `^((?:${DOMAIN}/)?${COMPONENT}(?:/${COMPONENT})*)(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Fa-f]{32,})?$`,
);

export function imageReferenceProblem(reference: string): string | undefined {
  const match = IMAGE_REFERENCE.exec(reference);
  if (match === null) {
    return `${JSON.stringify(reference)} is not an image reference such as ubuntu:24.04 or registry.example:5000/hpc/base:1.0@sha256:...`;
  }
  if (match[1]!.length > 255) return `the image name is ${match[1]!.length} characters; an image name has at most 255`;
  return undefined;
}

/** `text`, cut to `length` characters with an ellipsis when longer (long values in messages). */
function short(text: string, length = 48): string {
  return text.length > length ? `${text.slice(0, length)}…` : text;
}

interface StackFields {
  name: string;
  version: string;
  targets: readonly string[];
  base_image?: string | undefined;
  prefix?: string | undefined;
  modules?: { env?: Record<string, string> | undefined } | undefined;
}

/** Checks across fields of a stack that passed the schema: what install.sh, the module and file names would refuse. */
export function stackIssues(stack: StackFields): StackIssue[] {
  const issues: StackIssue[] = [];
  const longest = [...stack.targets].sort((a, b) => Buffer.byteLength(b) - Buffer.byteLength(a))[0] ?? "";
  const top = `${stack.name}-${stack.version}-${longest}`;
  if (Buffer.byteLength(top) > MAX_TOP_BYTES) {
    issues.push({
      segments: ["name"],
      message: `name, version and target ${longest} make the tarball directory ${short(top)} ${Buffer.byteLength(top)} bytes long; at most ${MAX_TOP_BYTES} fit, so that <directory>.tar.zst.sha256 and its temporary names stay within the 255 bytes of a file name`,
    });
  }
  if (stack.base_image !== undefined) {
    const problem = imageReferenceProblem(stack.base_image);
    if (problem !== undefined) issues.push({ segments: ["base_image"], message: problem });
  }
  if (stack.prefix !== undefined) {
    const problem = installPrefixProblem(stack.prefix);
    if (problem !== undefined) issues.push({ segments: ["prefix"], message: problem });
  } else {
    const prefix = `/opt/${stack.name}/${stack.version}`;
    const problem = installPrefixProblem(prefix);
    if (problem !== undefined)
      issues.push({ segments: ["name"], message: `the default prefix ${short(prefix)} ${problem}; set prefix` });
  }
  for (const name of Object.keys(stack.modules?.env ?? {})) {
    const problem = moduleEnvProblem(name, stack.name);
    if (problem !== undefined) issues.push({ segments: ["modules", "env", name], message: problem, anchor: "key" });
  }
  return issues;
}

/**
 * What a path is when it is neither a regular file nor a directory (a FIFO, a socket, a device), for refusing it
 * before reading: reading a FIFO blocks until something writes to it. Undefined otherwise, also when it is missing.
 */
export async function specialKind(path: string): Promise<string | undefined> {
  let info: Stats;
  try {
    info = await stat(path);
  } catch {
    return undefined;
  }
  if (info.isFIFO()) return "a FIFO";
  if (info.isSocket()) return "a socket";
  if (info.isCharacterDevice()) return "a character device";
  if (info.isBlockDevice()) return "a block device";
  return undefined;
}
