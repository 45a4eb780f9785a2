/**
 * `stack-factory keys init DIR`: a new signing key pair for a site. DIR gets `secret.asc` (mode 0600: for the
 * factory's --sign-key, nowhere else), `public.asc` (for `verify --keyring`, install.sh --verify-signature and
 * Spack's `gpg trust`), `public.gpg` (the same key unarmored, the keyring gpgv reads) and `fingerprint`.
 */
import { constants } from "node:fs";
import { mkdir, open, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { InputError } from "../errors.js";
import { gpgOrThrow, primaryFingerprints, withGpgHome } from "./gpg.js";
import { firstLine, passphraseArgs } from "./key.js";
import { dearmor } from "./verify-signature.js";

export const KEY_FILES = {
  secret: "secret.asc",
  public: "public.asc",
  publicBinary: "public.gpg",
  fingerprint: "fingerprint",
} as const;

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
  await mkdir(dir, { recursive: true, mode: 0o700 }).catch((error: NodeJS.ErrnoException) => {
    throw new InputError(`keys init ${dir}: cannot create it (${error.code ?? error.message})`);
  });
  if (!(await stat(dir)).isDirectory()) throw new InputError(`keys init ${dir}: not a directory`);
  const files = Object.fromEntries(
    Object.entries(KEY_FILES).map(([k, name]) => [k, join(dir, name)]),
  ) as KeysInitResult["files"];
  for (const path of Object.values(files)) {
    if (
      await stat(path).then(
        () => true,
        () => false,
      )
    ) {
      throw new InputError(
        `keys init ${dir}: ${path} exists already; a key pair is never overwritten (choose another directory)`,
      );
    }
  }
  const passphrase =
    options.passphraseFile === undefined ? undefined : firstLine(await readFile(options.passphraseFile));
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
    return { fingerprint, files };
  });
}

/** Creates a file that must not exist yet, with its mode from the start (no moment readable by others). */
async function writeNew(path: string, content: string | Buffer, mode: number): Promise<void> {
  const handle = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode);
  try {
    await handle.writeFile(content);
  } finally {
    await handle.close();
  }
}
