/**
 * A file the user names (a settings file, a credentials file, a TLS file, an ssh identity, known_hosts, a signing
 * key, a passphrase file, a keyring): one check for all of them, before a byte is read. It is opened without
 * blocking and checked through that descriptor: a regular file (a FIFO would block the read forever, a device
 * would never end it, a directory is a mistake), at most `maxBytes` long, and, for a private key or a password,
 * neither group- nor world-readable (as ssh refuses such key files). Every refusal is bad input (exit 2) and names
 * the file and what was expected, never its content.
 */
import { constants } from "node:fs";
import { access, open, stat } from "node:fs/promises";
import { InputError } from "../errors.js";
import { kindOf } from "./kind.js";

/** Larger than any key, certificate, known_hosts or settings file a site keeps. */
export const MAX_USER_FILE_BYTES = 4 * 1024 * 1024;

export interface UserFileOptions {
  /** What the file is, for messages: `--sign-key`, `the registry credentials file`, ...; may be empty. */
  what: string;
  /** Put before every message (`engine tcp://b:2376: `). */
  prefix?: string;
  /** Added to refusals other than the mode's (what the file should be). */
  hint?: string;
  /** Refuse a file readable by group or others (a private key, a password). */
  private?: boolean;
  /** Refuse a longer file; default MAX_USER_FILE_BYTES. */
  maxBytes?: number;
}

function openFailure(code: string | undefined): string {
  if (code === "ENOENT") return "no such file";
  if (code === "EACCES" || code === "EPERM") return "permission denied";
  if (code === "ENXIO") return "it is a socket, not a regular file";
  if (code === "ELOOP") return "too many levels of symbolic links";
  if (code === "ENOTDIR") return "a component of the path is not a directory";
  return code ?? "cannot open it";
}

/** Why a private file's mode is refused, or undefined. */
export function privateModeProblem(mode: number): string | undefined {
  if ((mode & 0o077) === 0) return undefined;
  const who = (mode & 0o044) !== 0 ? "readable" : "accessible";
  return `is ${who} by others (mode ${(mode & 0o777).toString(8)}); a private key or password file must be 0600 or 0400`;
}

/** The bytes of a file the user names, after the kind, size and (for private files) mode checks. */
export async function readUserFile(path: string, options: UserFileOptions): Promise<Buffer> {
  const named = `${options.prefix ?? ""}${options.what === "" ? "" : `${options.what} `}${path}`;
  const refuse = (problem: string, hint = options.hint): InputError =>
    new InputError(`${named} ${problem}`, hint === undefined ? {} : { hint });
  const cannot = (error: unknown): InputError => {
    const reason = openFailure((error as NodeJS.ErrnoException).code);
    return new InputError(
      `${options.prefix ?? ""}cannot read ${options.what === "" ? "" : `${options.what} `}${path}: ${reason}`,
      options.hint === undefined ? {} : { hint: options.hint },
    );
  };
  if (path === "") throw new InputError(`${options.prefix ?? ""}${options.what}: the path is empty`);
  let handle;
  try {
    // O_NONBLOCK: opening a FIFO for reading would wait for a writer; O_NOCTTY: a terminal never becomes ours.
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (error) {
    throw cannot(error);
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw refuse(`is ${kindOf(info)}, not a regular file`);
    const max = options.maxBytes ?? MAX_USER_FILE_BYTES;
    if (info.size > max) throw refuse(`is ${info.size} bytes; expected at most ${max} (is it the right file?)`);
    if (options.private === true) {
      const problem = privateModeProblem(info.mode);
      if (problem !== undefined) throw refuse(problem, `chmod 600 ${path}`);
    }
    const bytes = await handle.readFile();
    if (bytes.length > max) throw refuse(`grew past ${max} bytes while being read`);
    return bytes;
  } catch (error) {
    if (error instanceof InputError) throw error;
    throw cannot(error);
  } finally {
    await handle.close();
  }
}

/** Refuse `path` when group or others may read it (its mode now); for a file read with readUserFile first. */
export async function checkPrivateMode(path: string, what: string): Promise<void> {
  const problem = privateModeProblem((await stat(path)).mode);
  if (problem !== undefined) throw new InputError(`${what} ${path} ${problem}`, { hint: `chmod 600 ${path}` });
}

/**
 * The kind check alone, for a file read later (the credentials when a build needs them, an identity when an
 * engine connects): refused at once when it exists and is not a regular file; a missing file is left to the read.
 */
export async function checkUserFileKind(path: string, options: UserFileOptions): Promise<void> {
  const info = await stat(path).catch(() => undefined);
  if (info !== undefined && !info.isFile())
    throw new InputError(`${options.prefix ?? ""}${options.what} ${path} is ${kindOf(info)}, not a regular file`);
}

/** As readUserFile, but undefined when there is no such file (a default location the user did not name). */
export async function readUserFileIfPresent(path: string, options: UserFileOptions): Promise<Buffer | undefined> {
  try {
    await access(path, constants.F_OK);
  } catch {
    return undefined;
  }
  return readUserFile(path, options);
}
