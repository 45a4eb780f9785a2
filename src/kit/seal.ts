import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { SigningKey } from "../sign/key.js";
import { signFile } from "../sign/sign-file.js";
import { inventory } from "./files.js";
import { KIT_LAYOUT } from "./layout.js";
import { serializeKitManifest, type KitManifest } from "./manifest.js";

/**
 * The last step of a kit: every file's checksum into kit.json, written, and signed when a key is given
 * (`kit.json.asc`, detached and armored). Returns the manifest as written and the kit's size.
 */
export async function sealKit(
  kitDir: string,
  manifest: KitManifest,
  signing?: SigningKey,
): Promise<{ manifest: KitManifest; bytes: number }> {
  const inv = await inventory(kitDir);
  if (inv.escapingLinks.length > 0)
    throw new Error(`kit ${kitDir}: links leave the kit: ${inv.escapingLinks.join(", ")}`);
  const sealed = { ...manifest, files: inv.files };
  const path = join(kitDir, KIT_LAYOUT.manifest);
  await writeFile(path, serializeKitManifest(sealed));
  if (signing !== undefined) await signFile(signing, path);
  return { manifest: sealed, bytes: inv.bytes };
}
