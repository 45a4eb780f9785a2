/**
 * The CA a site's registry certificate is signed by (factory settings `buildcache_ca:`): PEM certificates only,
 * each parsed here, so that a build container and this host are handed certificates and nothing else.
 */
import { X509Certificate } from "node:crypto";
import { InputError } from "../errors.js";
import { readUserFile } from "../fs/user-file.js";

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+?-----END CERTIFICATE-----/g;

/** The file's certificates as PEM text (one or more, nothing else). */
export async function loadRegistryCa(file: string): Promise<string> {
  // A FIFO, a device or a directory is refused at once, as every file a user names is.
  const text = (await readUserFile(file, { what: "the registry CA file (buildcache_ca)" })).toString("utf8");
  const pems = text.match(PEM_CERTIFICATE) ?? [];
  const rest = text.replace(PEM_CERTIFICATE, "").trim();
  if (pems.length === 0 || rest !== "")
    throw new InputError(
      `the registry CA file ${file} (buildcache_ca) must hold PEM certificates ("-----BEGIN CERTIFICATE-----") and nothing else`,
    );
  for (const [i, pem] of pems.entries()) {
    try {
      new X509Certificate(pem);
    } catch (error) {
      throw new InputError(
        `the registry CA file ${file} (buildcache_ca): certificate ${i + 1} is not a valid X.509 certificate (${(error as Error).message})`,
      );
    }
  }
  return `${pems.map((p) => p.replace(/\r\n/g, "\n")).join("\n")}\n`;
}
