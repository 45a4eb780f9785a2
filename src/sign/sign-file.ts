/** Detached, armored signatures over files the factory writes (tarballs): `<file>.asc` beside the file. */
import { rename, rm } from "node:fs/promises";
import { FactoryError } from "../errors.js";
import { gpgOrThrow, indent, runGpg, withGpgHome } from "./gpg.js";
import { passphraseArgs, type SigningKey } from "./key.js";

export const SIGNATURE_SUFFIX = ".asc";

/**
 * Writes `<file>.asc`, a detached armored signature over `file`, and returns its path. A key from files is imported
 * into a throwaway gpg home for this one signature (the passphrase on gpg's stdin); a key of the user's keyring is
 * used by their own gpg and agent.
 */
export async function signFile(key: SigningKey, file: string): Promise<string> {
  const out = `${file}${SIGNATURE_SUFFIX}`;
  const partial = `${out}.partial`;
  await rm(partial, { force: true });
  const args = (extra: string[]) => [
    ...extra,
    "--local-user",
    key.fingerprint,
    "--armor",
    "--detach-sign",
    "--output",
    partial,
    "--",
    file,
  ];
  try {
    if (key.kind === "file") {
      await withGpgHome(async (home) => {
        await gpgOrThrow(`signing ${file}: importing the key of ${key.source}`, ["--import"], {
          home,
          input: key.secretKey,
        });
        await gpgOrThrow(`signing ${file} with ${key.fingerprint}`, args(passphraseArgs(key.passphrase)), {
          home,
          ...(key.passphrase === undefined ? {} : { input: key.passphrase }),
        });
      });
    } else {
      const result = await runGpg(args([]), { interactive: true });
      if (result.exitCode !== 0) {
        throw new FactoryError(
          `signing ${file} with ${key.fingerprint} (your gpg keyring): gpg failed with exit code ${result.exitCode}\n${indent(result.stderr)}`,
        );
      }
    }
    await rename(partial, out);
    return out;
  } finally {
    await rm(partial, { force: true });
  }
}
