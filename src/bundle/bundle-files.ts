/** The files at a bundle's top: install.sh, the modules, manifest.json and SHA256SUMS (pure, given the templates). */
import { createHash } from "node:crypto";
import type { Stack } from "../config/types.js";
import { formatSums } from "../package/checksums.js";
import { CHECKSUMS_FILE, INSTALL_SCRIPT, MANIFEST_FILE, SBOM_FILE } from "../package/layout.js";
import { MANIFEST_KEYS } from "../package/manifest.js";
import { loadBundleInstallTemplate, renderBundleInstall } from "../render/bundle-install.js";
import { loadBundleModuleTemplates, renderBundleModule } from "../render/bundle-module.js";
import { modulePath } from "../render/module.js";
import type { BundleEntry } from "./plan.js";
import { mergeSboms } from "./sbom.js";

export interface BundleFilesInput {
  stack: Stack;
  targets: string[];
  family: string;
  entries: BundleEntry[];
  /** Each target's manifest.json, as its tarball holds it. */
  manifests: Map<string, Buffer>;
  /** Each target's sbom.cdx.json (absent for a target without one). */
  sboms: Map<string, Buffer>;
}

const sha256 = (data: Buffer) => createHash("sha256").update(data).digest("hex");

/**
 * The bundle's manifest: the keys every manifest has (so `verify` checks it as any tarball's), `target` listing the
 * targets, and `bundle` with each target's manifest digest and portability record (what a node needs to run it).
 */
function bundleManifest(input: BundleFilesInput, files: Record<string, string>): Buffer {
  const per = input.targets.map((target) => {
    const raw = input.manifests.get(target) as Buffer;
    const m = JSON.parse(raw.toString("utf8")) as Record<string, unknown>;
    return { target, manifest: m, digest: sha256(raw) };
  });
  const first = per[0]?.manifest ?? {};
  const manifest: Record<string, unknown> = {
    format_version: 1,
    stack: first["stack"],
    target: input.targets.join(","),
    compiler: first["compiler"],
    base_image: first["base_image"],
    image_id: first["image_id"] ?? null,
    spack_commit: first["spack_commit"] ?? null,
    specs: [],
    build_prefix: "",
    relocate: [],
    bundle: {
      family: input.family,
      targets: per.map((p) => ({
        target: p.target,
        manifest: `targets/${p.target}/${MANIFEST_FILE}`,
        manifest_sha256: p.digest,
        compiler: p.manifest["compiler"],
        base_image: p.manifest["base_image"],
        portability: p.manifest["portability"] ?? null,
      })),
    },
    files,
    created_by: "stack-factory bundle",
  };
  for (const key of MANIFEST_KEYS) if (!(key in manifest)) throw new Error(`bundle manifest lacks ${key}`);
  return Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`);
}

export async function bundleFiles(input: BundleFilesInput): Promise<Map<string, Buffer>> {
  const { stack, targets } = input;
  const out = new Map<string, Buffer>();
  const install = renderBundleInstall(
    {
      stackName: stack.name,
      version: stack.version,
      moduleName: stack.modules.name,
      defaultPrefix: stack.prefix,
      targets,
      moduleSystems: stack.modules.systems,
    },
    await loadBundleInstallTemplate(),
  );
  out.set(INSTALL_SCRIPT, Buffer.from(install));
  for (const system of stack.modules.systems) {
    const text = renderBundleModule(
      {
        stackName: stack.name,
        version: stack.version,
        moduleName: stack.modules.name,
        targets,
        defaultPrefix: stack.prefix,
        envVars: { ...stack.modules.env },
        description: stack.description,
        specs: [...stack.specs],
      },
      await loadBundleModuleTemplates(system),
      system,
    );
    out.set(modulePath(system, stack.modules.name, stack.version), Buffer.from(text));
  }
  const sbom = mergeSboms(input.sboms, { name: stack.name, version: stack.version, targets });
  out.set(SBOM_FILE, Buffer.from(`${JSON.stringify(sbom, null, 2)}\n`));
  const files: Record<string, string> = {};
  for (const [name, content] of out) files[name] = sha256(content);
  for (const e of input.entries) {
    if (e.kind === "link") files[e.name] = e.sha256;
    else if (e.type === "file" && e.sha256 !== undefined) files[e.name] = e.sha256;
  }
  const sorted = Object.fromEntries(Object.entries(files).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  const manifest = bundleManifest(input, sorted);
  out.set(MANIFEST_FILE, manifest);
  out.set(CHECKSUMS_FILE, Buffer.from(formatSums({ ...sorted, [MANIFEST_FILE]: sha256(manifest) })));
  return out;
}
