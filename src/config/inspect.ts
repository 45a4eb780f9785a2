/**
 * What a stack's local Spack sources are, read from their files before anything runs: whether a Spack checkout is
 * one (bin/spack) and of which generation, which spack-packages ref it pins, where a spack-packages checkout keeps
 * its builtin repository, and the namespace of every extra repository (its repo.yaml).
 */
import { stat } from "node:fs/promises";
import path from "node:path";
import { parse } from "yaml";
import { InputError } from "../errors.js";
import { readUserFile } from "../fs/user-file.js";
import { DEFAULT_SPACK_PACKAGES_URL } from "./schema.js";
import type { Origin, Stack } from "./types.js";

type IssueAt = (segments: readonly (string | number)[], message: string, anchor?: "value" | "key" | "parent") => string;

/** A Spack namespace: a Python identifier (Package API v2 imports `spack_repo.<namespace>`). */
const NAMESPACE = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Where spack-packages keeps its builtin repository, relative to the checkout. */
export const BUILTIN_IN_CHECKOUT = path.join("repos", "spack_repo", "builtin");

const isFile = async (p: string): Promise<boolean> => (await stat(p).catch(() => undefined))?.isFile() === true;

export async function inspectSpackSources(
  stack: Stack,
  builtinGiven: boolean,
  issueAt: IssueAt,
): Promise<{ stack: Stack; issues: string[] }> {
  const issues: string[] = [];
  const spack = { ...stack.spack, repos: [...stack.spack.repos] };
  if (spack.origin.kind === "local") await inspectCheckout(spack, spack.origin.path, builtinGiven, issueAt, issues);
  if (spack.builtin?.kind === "local") await inspectBuiltin(spack, spack.builtin.path, issueAt, issues);
  await inspectRepos(spack, issueAt, issues);
  return { stack: { ...stack, spack }, issues };
}

type SpackSources = Stack["spack"];

/** A local Spack checkout: Spack 0.2x (builtin inside) or 1.x (builtin beside, pinned by the checkout when not given). */
async function inspectCheckout(
  spack: SpackSources,
  root: string,
  builtinGiven: boolean,
  issueAt: IssueAt,
  issues: string[],
): Promise<void> {
  if (!(await isFile(path.join(root, "bin", "spack")))) {
    issues.push(issueAt(["spack", "source"], `${root} is not a Spack checkout: it has no bin/spack`));
  } else if (await isFile(path.join(root, "var", "spack", "repos", "builtin", "repo.yaml"))) {
    spack.generation = "v0";
    delete spack.builtin;
    if (builtinGiven) {
      issues.push(
        issueAt(
          ["spack", "builtin"],
          `${root} is Spack 0.2x, which keeps its builtin packages inside the checkout: remove spack.builtin`,
          "key",
        ),
      );
    }
  } else {
    spack.generation = "v1";
    if (!builtinGiven) {
      const pinned = await pinOfCheckout(root);
      if (pinned !== undefined) spack.builtin = pinned;
    }
  }
}

/** A local spack-packages: the checkout's builtin repository, or the repository itself. */
async function inspectBuiltin(spack: SpackSources, given: string, issueAt: IssueAt, issues: string[]): Promise<void> {
  const inCheckout = path.join(given, BUILTIN_IN_CHECKOUT);
  if (await isFile(path.join(inCheckout, "repo.yaml"))) spack.builtin = { kind: "local", path: inCheckout };
  else if (!(await isFile(path.join(given, "repo.yaml")))) {
    issues.push(
      issueAt(
        ["spack", "builtin", "source"],
        `${given} is not a spack-packages checkout: it has neither ${BUILTIN_IN_CHECKOUT}/repo.yaml nor repo.yaml`,
      ),
    );
  }
}

/** Each site repository: its repo.yaml read (guarded), its namespace valid, not builtin, not taken twice. */
async function inspectRepos(spack: SpackSources, issueAt: IssueAt, issues: string[]): Promise<void> {
  const seen = new Map<string, number>();
  for (const [i, repo] of spack.repos.entries()) {
    const where = ["spack", "repos", i] as const;
    const descriptor = path.join(repo.path, "repo.yaml");
    let text: string;
    try {
      // A file in a directory the user names: a FIFO there would block loading the stack forever.
      text = (await readUserFile(descriptor, { what: "repo.yaml", maxBytes: 1024 * 1024 })).toString("utf8");
    } catch (error) {
      const missing = !(error instanceof InputError) || error.message.endsWith(": no such file");
      const why = missing ? "it has no repo.yaml" : error.message;
      issues.push(issueAt(where, `${repo.path} is not a Spack package repository: ${why}`));
      continue;
    }
    const namespace = namespaceOf(text);
    const problem =
      namespace === undefined || !NAMESPACE.test(namespace)
        ? `${descriptor} declares no valid repo.namespace (a name such as my_site)`
        : namespace === "builtin"
          ? `${repo.path} has namespace builtin: give Spack's builtin packages as spack.builtin.source`
          : seen.has(namespace)
            ? `namespace "${namespace}" is already taken by spack.repos[${seen.get(namespace)}]`
            : undefined;
    if (problem !== undefined || namespace === undefined) {
      issues.push(issueAt(where, problem ?? ""));
      continue;
    }
    seen.set(namespace, i);
    spack.repos[i] = { path: repo.path, namespace };
  }
}

/** `repo: { namespace: x }` of a repo.yaml, or undefined. */
export function namespaceOf(repoYaml: string): string | undefined {
  try {
    const doc = parse(repoYaml) as { repo?: { namespace?: unknown } } | null;
    const ns = doc?.repo?.namespace;
    return typeof ns === "string" ? ns : undefined;
  } catch {
    return undefined;
  }
}

/** The spack-packages origin a Spack v1.x checkout's defaults name (`repos: builtin: {git, branch|tag|commit}`). */
export async function pinOfCheckout(root: string): Promise<Origin | undefined> {
  for (const rel of ["etc/spack/defaults/repos.yaml", "etc/spack/defaults/base/repos.yaml"]) {
    // Through readUserFile: a FIFO in the checkout is passed over, never waited on.
    const text = await readUserFile(path.join(root, rel), { what: "", maxBytes: 1024 * 1024 })
      .then((bytes) => bytes.toString("utf8"))
      .catch(() => undefined);
    if (text === undefined) continue;
    const pin = pinOfReposYaml(text);
    if (pin !== undefined) return pin;
  }
  return undefined;
}

export function pinOfReposYaml(text: string): Origin | undefined {
  try {
    const doc = parse(text) as { repos?: { builtin?: Record<string, unknown> } } | null;
    const b = doc?.repos?.builtin;
    if (b === undefined || b === null || typeof b !== "object") return undefined;
    const url = typeof b["git"] === "string" ? b["git"] : DEFAULT_SPACK_PACKAGES_URL;
    const ref = [b["commit"], b["tag"], b["branch"]].find((x): x is string => typeof x === "string");
    return ref === undefined ? undefined : { kind: "git", url, ref };
  } catch {
    return undefined;
  }
}
