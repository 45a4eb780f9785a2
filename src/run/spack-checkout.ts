import { access, mkdir, rename, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { readUserFile } from "../fs/user-file.js";
import { execa } from "execa";
import { isAllowedGitUrl } from "../config/schema.js";
import { BuildError, CancelledError, InputError } from "../errors.js";

/**
 * The transports a clone may use, pinned for every git the factory runs: an inherited `GIT_ALLOW_PROTOCOL` (or
 * `protocol.*.allow` in a git config) cannot reopen `ext::`, `fd::` or a remote helper.
 */
export const GIT_PROTOCOLS = "https:ssh:git:file";
// No credential prompt either: a clone in the middle of a run must fail, not wait for a terminal.
const GIT_ENV = { GIT_ALLOW_PROTOCOL: GIT_PROTOCOLS, GIT_TERMINAL_PROMPT: "0" };

export interface Checkout {
  path: string;
  commit: string;
  /** False when an earlier run's clone was reused. */
  cloned: boolean;
}

/**
 * Clone Spack once into the cache at the pinned ref, reusing the clone afterwards. The clone is made under a
 * temporary name and renamed into place, so a half-finished clone is never used; of two concurrent clones the
 * second one's rename fails harmlessly and the first one is used.
 */
export async function ensureSpackCheckout(
  dir: string,
  url: string,
  ref: string,
  signal?: AbortSignal,
  /** A file every good checkout has (relative to it): `bin/spack`, or builtin's repo.yaml for spack-packages. */
  marker: string = join("bin", "spack"),
  what = "a Spack checkout",
): Promise<Checkout> {
  if (await exists(join(dir, marker))) return { path: dir, commit: await headOf(dir), cloned: false };
  // The stack file's schema refuses these already; a caller that skipped it must not reach git with one.
  if (!isAllowedGitUrl(url)) {
    throw new InputError(
      `${JSON.stringify(url)} is not a git URL the factory clones: use https://, ssh://, git://, file:// or user@host:path`,
    );
  }
  await mkdir(dirname(dir), { recursive: true });
  const tmp = `${dir}.tmp-${process.pid}-${Date.now()}`;
  try {
    // `--` and `--end-of-options`: the URL and the ref are data, never options of git.
    const shallow = await execa("git", ["clone", "--quiet", "--depth", "1", `--branch=${ref}`, "--", url, tmp], {
      reject: false,
      env: GIT_ENV,
      ...cancel(signal),
    });
    if (signal?.aborted) throw new CancelledError();
    if (shallow.exitCode !== 0) {
      // A commit rather than a branch or tag: full clone, then check it out.
      await rm(tmp, { recursive: true, force: true });
      await git(["clone", "--quiet", "--", url, tmp], `clone ${url}`, signal);
      await git(
        ["-C", tmp, "checkout", "--quiet", "--detach", "--end-of-options", ref],
        `check out ${ref} of ${url}`,
        signal,
      );
    }
    try {
      await rename(tmp, dir);
    } catch (error) {
      if (!(await exists(join(dir, marker)))) throw error;
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  if (!(await exists(join(dir, marker)))) {
    throw new BuildError(`${url} at ${ref} is not ${what}: no ${marker}`);
  }
  return { path: dir, commit: await headOf(dir), cloned: true };
}

/** A plain tree (a kit's Spack or spack-packages) names the commit it was copied from in this file. */
export const RECORDED_COMMIT = ".stack-factory-commit";

/**
 * The commit of a checkout; of a plain tree, the commit its RECORDED_COMMIT file names; else "unknown" (a plain
 * local copy).
 */
export async function headOf(dir: string): Promise<string> {
  const result = await execa("git", ["-C", dir, "rev-parse", "HEAD"], { reject: false, env: GIT_ENV });
  if (result.exitCode === 0) return String(result.stdout).trim();
  // A FIFO or device put there would hang a plain read: the guarded reader refuses it (then the commit is unknown).
  const recorded = await readUserFile(join(dir, RECORDED_COMMIT), { what: "", maxBytes: 1024 })
    .then((b) => b.toString("utf8"))
    .catch(() => "");
  return /^[0-9a-f]{7,64}\n?$/.test(recorded) ? recorded.trim() : "unknown";
}

async function git(args: string[], what: string, signal: AbortSignal | undefined): Promise<void> {
  const result = await execa("git", args, { reject: false, env: GIT_ENV, ...cancel(signal) });
  if (signal?.aborted) throw new CancelledError();
  if (result.exitCode !== 0) {
    throw new BuildError(`cannot ${what}: git exited with ${result.exitCode}\n${String(result.stderr).trim()}`, {
      hint: "check spack.url and spack.ref in the stack file",
    });
  }
}

function cancel(signal: AbortSignal | undefined): { cancelSignal?: AbortSignal } {
  return signal === undefined ? {} : { cancelSignal: signal };
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}
