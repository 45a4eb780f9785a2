/**
 * Checks a detached signature against a public key file, with gpgv where the machine has it (the key dearmored into
 * a keyring of its own, which gpgv trusts as a whole) and gpg in a throwaway home otherwise. Only the keys of that
 * file count: nothing of the user's own keyring is consulted.
 */
import { access, constants, writeFile } from "node:fs/promises";
import { delimiter, join } from "node:path";
import { readUserFile } from "../fs/user-file.js";
import { runGpg, withGpgHome } from "./gpg.js";
import { PUBLIC_KEY_HEADER } from "./key.js";

export type SignatureVerdict =
  | { ok: true; fingerprint: string; primaryFingerprint: string }
  | { ok: false; problem: string };

/** Binary OpenPGP packets of an armored block (or the bytes as they are, when they are binary already). */
export function dearmor(bytes: Buffer): Buffer | undefined {
  const text = bytes.toString("latin1");
  const begin = text.indexOf("-----BEGIN PGP ");
  if (begin < 0) return bytes.length > 0 && (bytes[0] as number) & 0x80 ? bytes : undefined;
  const blocks: Buffer[] = [];
  const pattern = /-----BEGIN PGP ([A-Z ]+)-----\r?\n([\s\S]*?)-----END PGP \1-----/g;
  for (const m of text.matchAll(pattern)) {
    const body = (m[2] as string).split(/\r?\n/);
    // Armor headers ("Comment: …") end at the first empty line; the checksum line starts with "=".
    const blank = body.findIndex((l) => l.trim() === "");
    const lines = (blank >= 0 && body.slice(0, blank).every((l) => /^[\w-]+: /.test(l)) ? body.slice(blank + 1) : body)
      .map((l) => l.trim())
      .filter((l) => l !== "" && !l.startsWith("="));
    blocks.push(Buffer.from(lines.join(""), "base64"));
  }
  return blocks.length > 0 ? Buffer.concat(blocks) : undefined;
}

/** Is `file`'s detached signature `signature` good and made by a key of `keyring` (an armored or binary public key file)? */
export async function verifyDetached(file: string, signature: string, keyring: string): Promise<SignatureVerdict> {
  // A keyring is a user-named file like any other: a regular file of sane size (a FIFO would block gpgv's read).
  const keyBytes = await readUserFile(keyring, { what: "--keyring" });
  if (keyBytes.toString("latin1").includes("-----BEGIN PGP PRIVATE KEY BLOCK-----")) {
    return {
      ok: false,
      problem: `${keyring} holds a secret key: give the public key (keys init writes it as public.asc)`,
    };
  }
  const binary = dearmor(keyBytes);
  if (binary === undefined || binary.length === 0) {
    return { ok: false, problem: `${keyring} is not an OpenPGP public key (armored "${PUBLIC_KEY_HEADER}" or binary)` };
  }
  return withGpgHome(async (home) => {
    const gpgv = await onPath("gpgv");
    let status: string;
    let stderr: string;
    if (gpgv !== undefined) {
      const ring = join(home, "keyring.gpg");
      await writeFile(ring, binary);
      const result = await runGpg(
        ["--homedir", home, "--status-fd", "1", "--keyring", ring, "--", signature, file],
        {},
        "gpgv",
      );
      status = result.stdout;
      stderr = result.stderr;
    } else {
      const imported = await runGpg(["--import"], { home, input: binary });
      if (imported.exitCode !== 0)
        return { ok: false, problem: `${keyring}: gpg cannot import it: ${imported.stderr.trim()}` };
      const result = await runGpg(["--status-fd", "1", "--verify", "--", signature, file], { home });
      status = result.stdout;
      stderr = result.stderr;
    }
    return verdictOf(status, stderr, keyring);
  });
}

/** The verdict from gpg's status lines (`[GNUPG:] VALIDSIG …`); only a VALIDSIG and no BADSIG/ERRSIG is good. */
export function verdictOf(status: string, stderr: string, keyring: string): SignatureVerdict {
  const lines = status
    .split("\n")
    .filter((l) => l.startsWith("[GNUPG:] "))
    .map((l) => l.slice(9).split(" "));
  const find = (kind: string) => lines.find((l) => l[0] === kind);
  const bad = find("BADSIG");
  if (bad !== undefined)
    return { ok: false, problem: `BAD signature (key ${bad[1] ?? "?"}): the file is not what was signed` };
  const err = find("ERRSIG");
  if (err !== undefined) {
    return err[6] === "9" || find("NO_PUBKEY") !== undefined
      ? { ok: false, problem: `signed by key ${err[1] ?? "?"}, which is not in ${keyring}` }
      : {
          ok: false,
          problem: `the signature cannot be checked (gpg error ${err[6] ?? "?"}): ${stderr.trim().split("\n").pop() ?? ""}`,
        };
  }
  const valid = find("VALIDSIG");
  if (valid === undefined || find("GOODSIG") === undefined) {
    const last = stderr.trim().split("\n").pop() ?? "";
    return { ok: false, problem: `no good signature${last === "" ? "" : `: ${last}`}` };
  }
  const fingerprint = valid[1] ?? "";
  return { ok: true, fingerprint, primaryFingerprint: valid[10] ?? fingerprint };
}

async function onPath(name: string): Promise<string | undefined> {
  for (const dir of (process.env["PATH"] ?? "").split(delimiter)) {
    if (dir === "") continue;
    try {
      await access(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {
      // not here
    }
  }
  return undefined;
}
