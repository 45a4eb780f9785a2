/**
 * The site's signing key, as the user gave it: an armored secret key file (with an optional passphrase file), or
 * the id of a key in the invoking user's own gpg keyring and agent. Keys are files, never values: nothing here puts
 * key material on a command line, in the environment or in a message.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { InputError } from "../errors.js";
import { checkPrivateMode, readUserFile } from "../fs/user-file.js";
import { gpgOrThrow, primaryFingerprints, runGpg, withGpgHome } from "./gpg.js";

export const SECRET_KEY_HEADER = "-----BEGIN PGP PRIVATE KEY BLOCK-----";
export const PUBLIC_KEY_HEADER = "-----BEGIN PGP PUBLIC KEY BLOCK-----";

/** What the plan may know of a key: nothing secret. */
export interface PublicSigningKey {
  /** Primary key fingerprint, upper-case hex. */
  fingerprint: string;
  /** The armored public key. */
  publicKey: string;
}

/** A key from files: its secret bytes stay in memory and travel to gpg on stdin only. */
export interface FileSigningKey extends PublicSigningKey {
  kind: "file";
  /** The armored secret key, as read from --sign-key. */
  secretKey: Buffer;
  /** The passphrase (first line of --sign-passphrase-file), when the key has one. */
  passphrase?: Buffer;
  /** For messages: the file it came from. */
  source: string;
}

/** A key of the invoking user's own keyring: their gpg and agent sign, the secret part never leaves them. */
export interface AgentSigningKey extends PublicSigningKey {
  kind: "agent";
  keyId: string;
}

export type SigningKey = FileSigningKey | AgentSigningKey;

export interface SigningFlags {
  signKey?: string;
  signPassphraseFile?: string;
  signKeyId?: string;
}

/** The key the flags name, checked (it parses, it is one secret key, the passphrase unlocks it), or undefined. */
export async function loadSigningKey(flags: SigningFlags): Promise<SigningKey | undefined> {
  if (flags.signKey !== undefined && flags.signKeyId !== undefined) {
    throw new InputError(
      "--sign-key and --sign-key-id: give one of them (a key file, or a key of your own gpg keyring)",
    );
  }
  if (flags.signPassphraseFile !== undefined && flags.signKey === undefined) {
    throw new InputError(
      "--sign-passphrase-file goes with --sign-key (a key of your own keyring asks your gpg agent instead)",
    );
  }
  if (flags.signKey !== undefined) return loadKeyFile(flags.signKey, flags.signPassphraseFile);
  if (flags.signKeyId !== undefined) return loadAgentKey(flags.signKeyId);
  return undefined;
}

async function loadKeyFile(path: string, passphraseFile: string | undefined): Promise<FileSigningKey> {
  // An armored secret key is a few kilobytes; 1 MiB leaves room for many subkeys and refuses noise at once.
  const secretKey = await readUserFile(path, { what: "--sign-key", maxBytes: 1024 * 1024 });
  if (!secretKey.toString("latin1").includes(SECRET_KEY_HEADER)) {
    throw new InputError(`--sign-key ${path}: not an armored OpenPGP secret key (no "${SECRET_KEY_HEADER}" line)`, {
      hint: "export one with: gpg --armor --export-secret-keys KEYID > site-signing.asc, or make one with stack-factory keys init DIR",
    });
  }
  await checkPrivateMode(path, "--sign-key");
  let passphrase: Buffer | undefined;
  if (passphraseFile !== undefined) {
    const text = await readUserFile(passphraseFile, {
      what: "--sign-passphrase-file",
      maxBytes: 64 * 1024,
      private: true,
    });
    passphrase = firstLine(text);
  }
  const checked = await withGpgHome(async (home) => {
    const imported = await runGpg(["--import"], { home, input: secretKey });
    // What gpg cannot import (garbage after the armor header) is a bad file, not a failure of the machine.
    if (imported.exitCode !== 0)
      throw new InputError(
        `--sign-key ${path}: gpg cannot import it (exit code ${imported.exitCode}): not a usable OpenPGP secret key`,
      );
    const listing = await gpgOrThrow(`--sign-key ${path}: listing it`, ["--with-colons", "--list-secret-keys"], {
      home,
    });
    const fingerprints = primaryFingerprints(listing.stdout);
    if (fingerprints.length !== 1) {
      throw new InputError(
        `--sign-key ${path}: holds ${fingerprints.length} secret keys; give a file with exactly one`,
      );
    }
    const fingerprint = fingerprints[0] as string;
    // The passphrase is checked now, not after an hour of building.
    const probeFile = join(home, "probe");
    await writeFile(probeFile, "probe\n");
    const probe = await runGpg(
      [...passphraseArgs(passphrase), "--local-user", fingerprint, "--detach-sign", "--output", "-", probeFile],
      { home, ...(passphrase === undefined ? {} : { input: passphrase }) },
    );
    if (probe.exitCode !== 0) {
      throw new InputError(
        passphrase === undefined
          ? `--sign-key ${path}: cannot sign with it (it may need a passphrase: give --sign-passphrase-file FILE)`
          : `--sign-key ${path}: cannot sign with it: the passphrase of --sign-passphrase-file ${passphraseFile} does not unlock it`,
      );
    }
    const publicKey = (
      await gpgOrThrow(`--sign-key ${path}: exporting its public part`, ["--armor", "--export", fingerprint], { home })
    ).stdout;
    return { fingerprint, publicKey };
  });
  return { kind: "file", source: path, secretKey, ...(passphrase === undefined ? {} : { passphrase }), ...checked };
}

async function loadAgentKey(keyId: string): Promise<AgentSigningKey> {
  if (!/^[\w@.<>+ -]{1,200}$/.test(keyId) || keyId.startsWith("-")) {
    throw new InputError(`--sign-key-id ${JSON.stringify(keyId)}: not a key id, fingerprint, or user id`);
  }
  const listing = await runGpg(["--with-colons", "--list-secret-keys", "--", keyId]);
  const fingerprints = primaryFingerprints(listing.stdout);
  if (listing.exitCode !== 0 || fingerprints.length === 0) {
    throw new InputError(
      `--sign-key-id ${keyId}: no such secret key in your gpg keyring (gpg --list-secret-keys shows yours)`,
    );
  }
  if (fingerprints.length > 1) {
    throw new InputError(
      `--sign-key-id ${keyId}: names ${fingerprints.length} secret keys (${fingerprints.join(", ")}); give a fingerprint`,
    );
  }
  const fingerprint = fingerprints[0] as string;
  const publicKey = (
    await gpgOrThrow(`--sign-key-id ${keyId}: exporting its public part`, ["--armor", "--export", fingerprint])
  ).stdout;
  return { kind: "agent", keyId, fingerprint, publicKey };
}

/** gpg options that read the passphrase from stdin (its first line), before any data on stdin. */
export function passphraseArgs(passphrase: Buffer | undefined): string[] {
  return passphrase === undefined ? [] : ["--pinentry-mode", "loopback", "--passphrase-fd", "0"];
}

/** The first line of a passphrase file, without its line ending. */
export function firstLine(bytes: Buffer): Buffer {
  let end = bytes.indexOf(0x0a);
  if (end < 0) end = bytes.length;
  if (end > 0 && bytes[end - 1] === 0x0d) end -= 1;
  return Buffer.from(bytes.subarray(0, end));
}

/** Only what is safe to show or plan with. */
export function publicPart(key: SigningKey): PublicSigningKey {
  return { fingerprint: key.fingerprint, publicKey: key.publicKey };
}
