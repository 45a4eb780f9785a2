/**
 * `stack-factory keys init DIR`: a new signing key pair for a site. DIR gets `secret.asc` (mode 0600: for the
 * factory's --sign-key, nowhere else), `public.asc` (for `verify --keyring` and Spack's `gpg trust`), `public.gpg`
 * (the same key unarmored, the keyring gpgv reads), `fingerprint`, and `verify-tarball.sh` (templates/: the
 * check a cluster runs on a tarball before unpacking it, pinned to this key). Nothing that exists is overwritten,
 * and nothing is written through a symlink, dangling or not.
 */
import { constants } from "node:fs";
import { lstat, mkdir, open, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { InputError } from "../errors.js";
import { readUserFile } from "../fs/user-file.js";
import { projectRoot } from "../project-root.js";
import { gpgOrThrow, primaryFingerprints, withGpgHome } from "./gpg.js";
import { firstLine, passphraseArgs } from "./key.js";
import { dearmor } from "./verify-signature.js";

export const KEY_FILES = {
  secret: "secret.asc",
  public: "public.asc",
  publicBinary: "public.gpg",
  fingerprint: "fingerprint",
  verifier: "verify-tarball.sh",
} as const;

/** The verifier's template; `@FINGERPRINT@` becomes the key's fingerprint. */
export const VERIFIER_TEMPLATE = "templates/verify-tarball.sh";

export interface KeysInitOptions {
  /** User id of the key, e.g. `HPC Site Builds <hpc@example.org>`. */
  userId: string;
  /** Protect the secret key with the first line of this file. */
  passphraseFile?: string;
  /** RSA keys by default: the gpg of older clusters (RHEL 7's 2.0) checks no EdDSA signature. */
  algorithm?: string;
}

export interface KeysInitResult {
  fingerprint: string;
  files: Record<keyof typeof KEY_FILES, string>;
}

export async function initKeys(dir: string, options: KeysInitOptions): Promise<KeysInitResult> {
  if (!/^[^\n\r:]{1,200}$/.test(options.userId) || options.userId.startsWith("-")) {
    throw new InputError(`--name: ${JSON.stringify(options.userId)} is not a usable user id (one line, no colon)`);
  }
  // Read as --sign-passphrase-file is: a regular file, small, 0600 or 0400; before anything is made.
  const passphrase =
    options.passphraseFile === undefined
      ? undefined
      : firstLine(
          await readUserFile(options.passphraseFile, {
            what: "--passphrase-file",
            maxBytes: 64 * 1024,
            private: true,
          }),
        );
  const files = await freshFiles(dir);
  return withGpgHome(async (home) => {
    // An empty passphrase is no secret; a real one reaches gpg on stdin.
    const protect = passphrase === undefined ? ["--passphrase", ""] : passphraseArgs(passphrase);
    await gpgOrThrow(
      "keys init: making the key",
      [
        ...(passphrase === undefined ? ["--pinentry-mode", "loopback"] : []),
        ...protect,
        "--quick-generate-key",
        options.userId,
        options.algorithm ?? "rsa3072",
        "sign",
        "never",
      ],
      { home, ...(passphrase === undefined ? {} : { input: passphrase }) },
    );
    const listing = await gpgOrThrow("keys init: listing the key", ["--with-colons", "--list-secret-keys"], { home });
    const fingerprint = primaryFingerprints(listing.stdout)[0];
    if (fingerprint === undefined) throw new InputError("keys init: gpg made no key");
    const secret = await gpgOrThrow(
      "keys init: exporting the secret key",
      [
        ...(passphrase === undefined
          ? ["--pinentry-mode", "loopback", "--passphrase", ""]
          : passphraseArgs(passphrase)),
        "--armor",
        "--export-secret-keys",
        fingerprint,
      ],
      { home, ...(passphrase === undefined ? {} : { input: passphrase }) },
    );
    const pub = await gpgOrThrow("keys init: exporting the public key", ["--armor", "--export", fingerprint], { home });
    await writeNew(files.secret, secret.stdout, 0o600);
    await writeNew(files.public, pub.stdout, 0o644);
    await writeNew(files.publicBinary, dearmor(Buffer.from(pub.stdout)) ?? Buffer.alloc(0), 0o644);
    await writeNew(files.fingerprint, `${fingerprint}\n`, 0o644);
    await writeNew(files.verifier, await verifierScript(fingerprint), 0o755);
    return { fingerprint, files };
  });
}

/** DIR made when missing; the paths of the files to write, none of which may exist (a dangling symlink included). */
async function freshFiles(dir: string): Promise<KeysInitResult["files"]> {
  const dirStat = await lstat(dir).catch(() => undefined);
  if (dirStat?.isSymbolicLink() === true) {
    const target = await stat(dir).catch(() => undefined);
    if (target === undefined) throw new InputError(`keys init ${dir}: a symlink to nothing; give a directory`);
  }
  await mkdir(dir, { recursive: true, mode: 0o700 }).catch((error: NodeJS.ErrnoException) => {
    throw new InputError(`keys init ${dir}: cannot create it (${error.code ?? error.message})`);
  });
  const made = await stat(dir).catch(() => undefined);
  if (made?.isDirectory() !== true) throw new InputError(`keys init ${dir}: not a directory`);
  const files = Object.fromEntries(
    Object.entries(KEY_FILES).map(([k, name]) => [k, join(dir, name)]),
  ) as KeysInitResult["files"];
  for (const path of Object.values(files)) {
    const found = await lstat(path).catch(() => undefined);
    if (found === undefined) continue;
    const what = found.isSymbolicLink() ? "is a symlink" : "exists already";
    throw new InputError(
      `keys init ${dir}: ${path} ${what}; a key pair is never written over anything (choose an empty directory)`,
    );
  }
  return files;
}

async function verifierScript(fingerprint: string): Promise<string> {
  if (!/^[0-9A-F]{40}$/.test(fingerprint)) throw new Error(`keys init: gpg gave an unexpected fingerprint`);
  const template = await readFile(join(projectRoot, VERIFIER_TEMPLATE), "utf8");
  if (!template.includes("SITE_FINGERPRINT=@FINGERPRINT@\n"))
    throw new Error(`${VERIFIER_TEMPLATE}: no fingerprint line`);
  return template.replace("SITE_FINGERPRINT=@FINGERPRINT@\n", `SITE_FINGERPRINT=${fingerprint}\n`);
}

/**
 * Creates a file that must not exist yet, with its mode from the start (no moment readable by others). O_EXCL
 * refuses any existing name, a symlink too, so nothing is ever written through one.
 */
async function writeNew(path: string, content: string | Buffer, mode: number): Promise<void> {
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
  const handle = await open(path, flags, mode).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== "EEXIST") throw error;
    throw new InputError(`keys init: ${path} appeared while the key was made; nothing is written over it`);
  });
  try {
    await handle.writeFile(content);
  } finally {
    await handle.close();
  }
}
