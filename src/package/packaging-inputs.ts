/** What a target's tarball depends on besides its concretization, by name, as kept records compare them. */
import { createHash } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join, relative } from "node:path";
import type { BuildPlan, TargetPlan } from "../plan/types.js";
import { projectRoot } from "../project-root.js";
import { digestOf } from "../run/up-to-date.js";
import { assetFiles } from "./generated-files.js";

export interface PackagingChoices {
  compression: string;
  /** The fingerprint of the key that signs tarballs, if any. */
  signingFingerprint?: string;
}

/** What a target's tarball depends on besides its concretization: templates, prefix, module, assets, ... */
export async function packagingInputs(
  plan: BuildPlan,
  target: TargetPlan,
  choices: PackagingChoices,
): Promise<Record<string, string>> {
  const pkg = plan.package;
  const assets = pkg === undefined ? {} : await assetFiles(plan.stack.name, pkg.assets);
  const assetDigests: [string, string][] = [];
  for (const [rel, file] of Object.entries(assets).sort(([a], [b]) => a.localeCompare(b))) {
    const bytes =
      typeof file === "string" || Buffer.isBuffer(file)
        ? Buffer.from(file)
        : "source" in file
          ? await readFile(file.source)
          : Buffer.from(file.content);
    assetDigests.push([rel, createHash("sha256").update(bytes).digest("hex")]);
  }
  return {
    templates: await templatesDigest(),
    "install script and module": digestOf(JSON.stringify(target.packageFiles ?? null)),
    prefix: pkg?.prefix ?? "",
    module: JSON.stringify([pkg?.moduleName ?? "", sortedEntries(pkg?.moduleEnv ?? {})]),
    assets: digestOf(JSON.stringify(assetDigests)),
    compression: choices.compression,
    "signing key": choices.signingFingerprint ?? "none",
    "stack-factory": await factoryVersion(),
    "tarball name": target.outputs.dirName,
  };
}

let templates: Promise<string> | undefined;
/** Every template and script a tarball is made with (read once per process). */
function templatesDigest(): Promise<string> {
  templates ??= templatesDigestOf(projectRoot);
  return templates;
}

/** The folders of the project whose files make a builder image or a tarball: every file of them counts. */
const TEMPLATE_FOLDERS = ["docker", "templates", "modules-templates"] as const;

/**
 * A digest of every file under the template folders, by path and content: a template or script added, changed or
 * removed changes it, with no list here to keep up to date.
 */
export async function templatesDigestOf(root: string): Promise<string> {
  const files: string[] = [];
  for (const folder of TEMPLATE_FOLDERS) {
    const entries = await readdir(join(root, folder), { recursive: true, withFileTypes: true });
    for (const e of entries) if (e.isFile()) files.push(relative(root, join(e.parentPath, e.name)));
  }
  files.sort();
  const contents = await Promise.all(files.map((f) => readFile(join(root, f), "utf8")));
  return digestOf(JSON.stringify(files.map((f, i) => [f, contents[i]])));
}

let version: Promise<string> | undefined;
function factoryVersion(): Promise<string> {
  version ??= readFile(join(projectRoot, "package.json"), "utf8").then(
    (text) => (JSON.parse(text) as { version: string }).version,
  );
  return version;
}

function sortedEntries(record: Record<string, string>): [string, string][] {
  return Object.entries(record).sort(([a], [b]) => a.localeCompare(b));
}
