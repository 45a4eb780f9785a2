/** One CycloneDX SBOM for a bundle: the components and dependencies of every target's SBOM (pure, deterministic). */
import { createHash } from "node:crypto";

type Sbom = { serialNumber?: unknown; components?: unknown; dependencies?: unknown };

export function mergeSboms(
  sboms: ReadonlyMap<string, Buffer>,
  subject: { name: string; version: string; targets: string[] },
): Record<string, unknown> {
  const components = new Map<string, unknown>();
  const dependencies = new Map<string, unknown>();
  const serials: string[] = [];
  for (const target of subject.targets) {
    const raw = sboms.get(target);
    if (raw === undefined) continue;
    const sbom = JSON.parse(raw.toString("utf8")) as Sbom;
    serials.push(`${target}:${String(sbom.serialNumber)}`);
    for (const c of Array.isArray(sbom.components) ? sbom.components : []) {
      const ref = String((c as Record<string, unknown>)["bom-ref"]);
      if (!components.has(ref)) components.set(ref, c);
    }
    for (const d of Array.isArray(sbom.dependencies) ? sbom.dependencies : []) {
      const ref = String((d as Record<string, unknown>)["ref"]);
      if (!dependencies.has(ref)) dependencies.set(ref, d);
    }
  }
  const digest = createHash("sha256")
    .update(JSON.stringify([subject, serials]))
    .digest("hex");
  const variant = ((Number.parseInt(digest[16] as string, 16) & 0x3) | 0x8).toString(16);
  return {
    bomFormat: "CycloneDX",
    specVersion: "1.5",
    serialNumber: `urn:uuid:${digest.slice(0, 8)}-${digest.slice(8, 12)}-5${digest.slice(13, 16)}-${variant}${digest.slice(17, 20)}-${digest.slice(20, 32)}`,
    version: 1,
    metadata: {
      tools: { components: [{ type: "application", name: "stack-factory" }] },
      component: {
        type: "application",
        "bom-ref": `stack:${subject.name}@${subject.version}`,
        name: subject.name,
        version: subject.version,
      },
      properties: subject.targets.map((t) => ({ name: "stack-factory:target", value: t })),
    },
    components: [...components.values()],
    dependencies: [...dependencies.values()],
  };
}
