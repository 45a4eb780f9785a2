/**
 * The host's GnuPG, run with an argument vector (never a shell) in a throwaway home. Secrets reach gpg on stdin or
 * as a path to a file, never on a command line or in the environment.
 */
import { access, mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { FactoryError } from "../errors.js";

export interface GpgResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface GpgRun {
  /** Bytes for gpg's stdin (a key to import, a passphrase for `--passphrase-fd 0`). */
  input?: Buffer;
  /** GnuPG home; undefined: the invoking user's own (their agent and keyring). */
  home?: string;
  /** Let gpg ask the user (their pinentry), for the user's own keyring; otherwise `--batch`. */
  interactive?: boolean;
}

/** Runs `gpg ARGS` (or gpgv, gpgconf), resolving with its exit code and output; throws only when it cannot start. */
export async function runGpg(args: string[], options: GpgRun = {}, program = "gpg"): Promise<GpgResult> {
  const home = options.home === undefined ? [] : ["--homedir", options.home];
  const batch = program === "gpg" && options.interactive !== true ? ["--batch", "--no-tty"] : [];
  try {
    const result = await execa(program, [...home, ...batch, ...args], {
      reject: false,
      ...(options.input === undefined ? { stdin: "ignore" } : { input: options.input }),
      stripFinalNewline: false,
      ...(options.interactive === true ? { stderr: "inherit" } : {}),
    });
    if (result.failed && result.exitCode === undefined) throw result;
    return { exitCode: result.exitCode ?? 1, stdout: String(result.stdout ?? ""), stderr: String(result.stderr ?? "") };
  } catch (error) {
    const code = (error as { code?: string }).code;
    throw new FactoryError(
      code === "ENOENT"
        ? `${program} is not installed on this machine: signing and signature checks need GnuPG`
        : `${program} could not run: ${(error as Error).message}`,
      { hint: "install GnuPG (Debian/Ubuntu: apt-get install gnupg; RHEL: dnf install gnupg2)", cause: error },
    );
  }
}

/** Like runGpg, but a non-zero exit is an error naming what failed and gpg's own words. */
export async function gpgOrThrow(what: string, args: string[], options: GpgRun = {}): Promise<GpgResult> {
  const result = await runGpg(args, options);
  if (result.exitCode !== 0) {
    throw new FactoryError(`${what}: gpg failed with exit code ${result.exitCode}\n${indent(result.stderr)}`);
  }
  return result;
}

/**
 * Runs `fn` with a fresh, private GnuPG home (mode 0700) on a memory file system where the host has one
 * ($XDG_RUNTIME_DIR or /dev/shm), else in the temporary directory; its agent is stopped and the home removed after.
 * The path is short: gpg-agent's socket lives in it.
 */
export async function withGpgHome<T>(fn: (home: string) => Promise<T>): Promise<T> {
  const home = await mkdtemp(join(await privateTempRoot(), "sf-gpg-"));
  try {
    return await fn(home);
  } finally {
    await runGpg(["--homedir", home, "--kill", "all"], {}, "gpgconf").catch(() => {});
    await rm(home, { recursive: true, force: true });
  }
}

async function privateTempRoot(): Promise<string> {
  for (const dir of [process.env["XDG_RUNTIME_DIR"], "/dev/shm"]) {
    if (dir === undefined || dir === "" || dir.length > 40) continue;
    try {
      if ((await stat(dir)).isDirectory()) {
        await access(dir, 2 /* W_OK */);
        return dir;
      }
    } catch {
      // not usable
    }
  }
  return tmpdir();
}

/** Colon-listing records (`--with-colons`) as field arrays. */
export function colonRecords(text: string): string[][] {
  return text
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => l.split(":"));
}

/** The primary key fingerprints of a `--with-colons` listing, in order (the `fpr` right after each `pub`/`sec`). */
export function primaryFingerprints(listing: string): string[] {
  const out: string[] = [];
  let afterPrimary = false;
  for (const record of colonRecords(listing)) {
    const kind = record[0];
    if (kind === "pub" || kind === "sec") afterPrimary = true;
    else if (kind === "fpr" && afterPrimary) {
      out.push(record[9] ?? "");
      afterPrimary = false;
    } else if (kind === "sub" || kind === "ssb") afterPrimary = false;
  }
  return out.filter((f) => /^[0-9A-F]{40,64}$/.test(f));
}

export function indent(text: string): string {
  return text
    .trim()
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => `    ${l}`)
    .join("\n");
}
