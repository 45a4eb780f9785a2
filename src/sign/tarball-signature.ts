/** `verify --keyring`: a tarball's detached signature (`<tarball>.asc`) checked against the site's public key. */
import { stat } from "node:fs/promises";
import { basename } from "node:path";
import { InputError } from "../errors.js";
import { SIGNATURE_SUFFIX } from "./sign-file.js";
import { verifyDetached } from "./verify-signature.js";

export interface SignatureCheck {
  ok: boolean;
  /** What was found: "good signature by …", or the problem. */
  message: string;
  fingerprint?: string;
}

/**
 * Checks `<tarball>.asc` against `keyring`. `expected`, the fingerprint the tarball's manifest records, must be the
 * signer's when given (a tarball re-signed by another key of the keyring is still refused).
 */
export async function checkTarballSignature(
  tarball: string,
  keyring: string,
  expected?: string,
): Promise<SignatureCheck> {
  if (!(await isFile(keyring))) throw new InputError(`--keyring ${keyring}: no such file`);
  const signature = `${tarball}${SIGNATURE_SUFFIX}`;
  const name = basename(tarball);
  if (!(await isFile(signature))) {
    return {
      ok: false,
      message: `${name}: no signature: ${basename(signature)} is missing (the tarball was built without --sign-key, or the signature was not copied with it)`,
    };
  }
  const verdict = await verifyDetached(tarball, signature, keyring);
  if (!verdict.ok)
    return { ok: false, message: `${name}: signature ${basename(signature)} refused: ${verdict.problem}` };
  if (expected !== undefined && expected !== verdict.primaryFingerprint) {
    return {
      ok: false,
      message: `${name}: signed by ${verdict.primaryFingerprint}, but its manifest names the signing key ${expected}`,
      fingerprint: verdict.primaryFingerprint,
    };
  }
  return {
    ok: true,
    message: `good signature by ${verdict.primaryFingerprint} (${basename(keyring)})`,
    fingerprint: verdict.primaryFingerprint,
  };
}

async function isFile(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isFile(),
    () => false,
  );
}
