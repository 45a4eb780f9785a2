/**
 * What a stack file may reach on the factory host. The factory settings belong to the site; a stack file is data a
 * colleague may hand over, so the paths it names are held to a boundary, checked when the stack is loaded:
 *
 * - `assets` are shipped inside every tarball as they are: each must be a file under the stack file's own directory
 *   (by its real path, so neither `../`, an absolute path elsewhere nor a symlinked directory leads out of it).
 * - No path the stack names (assets, the Spack and spack-packages checkouts, repositories, mirrors) may be, or
 *   contain, a file the factory treats as secret: the settings file, the registry credentials, ssh identities, TLS
 *   directories, the signing key and its passphrase. Those never become part of a build.
 */
import { realpath } from "node:fs/promises";
import path from "node:path";
import type { Stack } from "./types.js";
import type { Segment } from "./load.js";

export interface BoundaryInput {
  stack: Stack;
  stackFile: string;
  /** Files (or directories) the factory keeps secret, as the settings and flags name them. */
  secrets: readonly string[];
  issueAt: (segments: readonly Segment[], message: string) => string;
  /** Where a path of the input is in the file, to report in file order. */
  offsetAt: (segments: readonly Segment[]) => number;
}

const realOr = async (p: string): Promise<string> => realpath(p).catch(() => path.resolve(p));

/** `inner` is `outer` or below it (both real, absolute). */
export function isWithin(inner: string, outer: string): boolean {
  const rel = path.relative(outer, inner);
  return rel === "" || (!rel.startsWith("..") && !path.isAbsolute(rel));
}

/** The stack's local paths with where they are in the file. */
function stackPaths(stack: Stack): { segments: Segment[]; where: string; what: string }[] {
  const out: { segments: Segment[]; where: string; what: string }[] = [];
  for (const [i, where] of stack.assets.entries()) out.push({ segments: ["assets", i], where, what: "asset" });
  if (stack.spack.origin.kind === "local")
    out.push({ segments: ["spack", "source"], where: stack.spack.origin.path, what: "Spack checkout" });
  if (stack.spack.builtin?.kind === "local")
    out.push({
      segments: ["spack", "builtin", "source"],
      where: stack.spack.builtin.path,
      what: "spack-packages checkout",
    });
  for (const [i, { path: where }] of stack.spack.repos.entries())
    out.push({ segments: ["spack", "repos", i], where, what: "package repository" });
  for (const [name, where] of Object.entries(stack.spack.mirrors)) {
    if (where.startsWith("/")) out.push({ segments: ["spack", "mirrors", name], where, what: "mirror" });
  }
  return out;
}

/** Every path of the stack that crosses the boundary, as located issues. */
export async function boundaryIssues(input: BoundaryInput): Promise<string[]> {
  const home = await realOr(path.dirname(path.resolve(input.stackFile)));
  const secrets = await Promise.all(input.secrets.map(async (s) => ({ given: s, real: await realOr(s) })));
  const issues: string[] = [];
  const paths = stackPaths(input.stack).sort((a, b) => input.offsetAt(a.segments) - input.offsetAt(b.segments));
  for (const { segments, where, what } of paths) {
    const real = await realOr(where);
    if (what === "asset" && !isWithin(real, home)) {
      issues.push(
        input.issueAt(
          segments,
          `asset ${where} is outside the stack file's directory ${home}; a stack ships only files under its own directory (copy the file there)`,
        ),
      );
      continue;
    }
    const secret = secrets.find((s) => isWithin(s.real, real));
    if (secret !== undefined) {
      const how = secret.real === real ? "is" : "contains";
      issues.push(
        input.issueAt(
          segments,
          `${what} ${where} ${how} ${secret.given}, which the factory keeps secret (settings, credentials, keys); it never becomes part of a build`,
        ),
      );
    }
  }
  return issues;
}
