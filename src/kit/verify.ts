/**
 * `kit verify` on the far side: kit.json readable and sane, every file present with its checksum and nothing
 * else there, no link leaving the kit, the signature (with `--keyring`), and, given the stack, that the kit covers
 * it.
 */
import { existsSync } from "node:fs";
import { lstat } from "node:fs/promises";
import { join } from "node:path";
import type { Stack } from "../config/types.js";
import { sha256Of } from "../fs/sha256.js";
import { readUserFile } from "../fs/user-file.js";
import { verifyDetached } from "../sign/verify-signature.js";
import { kitGaps } from "./coverage.js";
import { inventory } from "./files.js";
import { KIT_LAYOUT } from "./layout.js";
import { parseKitManifest, type KitManifest } from "./manifest.js";

/** kit.json lists every file of the kit, a Spack checkout's and spack-packages' tens of thousands included. */
export const MAX_KIT_MANIFEST_BYTES = 64 * 1024 * 1024;

/** kit.json, read as any file the user names (a FIFO or a device on the disk that carried it never blocks). */
export async function readKit(kitDir: string): Promise<KitManifest> {
  const path = join(kitDir, KIT_LAYOUT.manifest);
  const bytes = await readUserFile(path, {
    what: "the kit's manifest",
    maxBytes: MAX_KIT_MANIFEST_BYTES,
    hint: "give the directory `stack-factory kit create` made",
  });
  return parseKitManifest(bytes.toString("utf8"), path);
}

export interface KitVerdict {
  manifest: KitManifest;
  problems: string[];
  notes: string[];
  /** kit.json.asc: absent, present but not checked (no keyring given), or checked (good or not: see problems). */
  signature: "absent" | "unchecked" | "checked";
}

export async function verifyKit(
  kitDir: string,
  options: { stack?: Stack; keyring?: string; targets?: readonly string[] } = {},
): Promise<KitVerdict> {
  const manifest = await readKit(kitDir);
  const problems: string[] = [];
  const notes: string[] = [];
  const inv = await inventory(kitDir);
  for (const [path, sha] of Object.entries(manifest.files)) {
    const actual = inv.files[path];
    if (actual === undefined) problems.push(`missing: ${path}`);
    else if (actual !== sha) problems.push(`checksum differs: ${path} (sha256 ${actual}, kit.json says ${sha})`);
  }
  for (const path of Object.keys(inv.files)) if (!(path in manifest.files)) problems.push(`not in kit.json: ${path}`);
  for (const link of inv.escapingLinks) problems.push(`a link leaves the kit: ${link}`);
  problems.push(...(await signatureProblems(kitDir, options.keyring, notes)));
  const signature = !existsSync(join(kitDir, KIT_LAYOUT.signature))
    ? "absent"
    : options.keyring === undefined
      ? "unchecked"
      : "checked";
  if (options.stack !== undefined) {
    const stackSha256 = await sha256Of(options.stack.file);
    problems.push(
      ...kitGaps({
        kit: manifest,
        stack: options.stack,
        stackSha256,
        ...(options.targets === undefined ? {} : { targets: options.targets }),
        present: (rel) => rel in manifest.files && existsSync(join(kitDir, rel)),
      }),
    );
  }
  return { manifest, problems, notes, signature };
}

async function signatureProblems(kitDir: string, keyring: string | undefined, notes: string[]): Promise<string[]> {
  const manifest = join(kitDir, KIT_LAYOUT.manifest);
  const signature = join(kitDir, KIT_LAYOUT.signature);
  const signed = existsSync(signature);
  if (keyring === undefined) {
    notes.push(signed ? "kit.json is signed; give --keyring PUBKEY to check it" : "kit.json is not signed");
    return [];
  }
  if (!signed) return [`kit.json has no signature (${KIT_LAYOUT.signature}), and --keyring asks for one`];
  // gpgv reads it by name: a FIFO there would block it forever.
  if (!(await lstat(signature)).isFile()) return [`${KIT_LAYOUT.signature} is not a regular file`];
  const verdict = await verifyDetached(manifest, signature, keyring);
  if (!verdict.ok) return [`kit.json's signature: ${verdict.problem}`];
  notes.push(`kit.json signed by ${verdict.primaryFingerprint}`);
  return [];
}
