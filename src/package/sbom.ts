/** A CycloneDX 1.5 SBOM (JSON) of a stack's concrete specs. Deterministic: no timestamp, a serial from the hashes. */
import { createHash } from "node:crypto";
import type { SpecRecord } from "./specs.js";

export interface SbomSubject {
  name: string;
  version: string;
}

function purl(spec: SpecRecord): string {
  return `pkg:generic/${encodeURIComponent(spec.name)}@${encodeURIComponent(spec.version)}?spack_hash=${encodeURIComponent(spec.hash)}`;
}

function serialNumber(specs: SpecRecord[], subject: SbomSubject | undefined): string {
  const digest = createHash("sha256")
    .update(JSON.stringify([subject ?? null, specs.map((s) => s.hash).sort()]))
    .digest("hex");
  // Shaped as a version-5-style UUID: the schema requires urn:uuid.
  const variant = ((parseInt(digest[16]!, 16) & 0x3) | 0x8).toString(16);
  return `urn:uuid:${digest.slice(0, 8)}-${digest.slice(8, 12)}-5${digest.slice(13, 16)}-${variant}${digest.slice(17, 20)}-${digest.slice(20, 32)}`;
}

function properties(spec: SpecRecord): { name: string; value: string }[] {
  const props: { name: string; value: string }[] = [];
  for (const [key, value] of Object.entries(spec.variants)) {
    props.push({ name: `spack:variant:${key}`, value: typeof value === "string" ? value : JSON.stringify(value) });
  }
  if (spec.arch?.platform !== undefined) props.push({ name: "spack:platform", value: spec.arch.platform });
  if (spec.arch?.target !== undefined) props.push({ name: "spack:target", value: spec.arch.target });
  if (spec.namespace !== undefined) props.push({ name: "spack:namespace", value: spec.namespace });
  return props;
}

export function buildSbom(specs: SpecRecord[], subject?: SbomSubject): Record<string, unknown> {
  const known = new Set(specs.map((s) => s.hash));
  const metadata: Record<string, unknown> = {
    tools: { components: [{ type: "application", name: "stack-factory" }] },
  };
  if (subject)
    metadata["component"] = {
      type: "application",
      "bom-ref": `stack:${subject.name}@${subject.version}`,
      name: subject.name,
      version: subject.version,
    };
  return {
    bomFormat: "CycloneDX",
    specVersion: "1.5",
    serialNumber: serialNumber(specs, subject),
    version: 1,
    metadata,
    components: specs.map((spec) => {
      const props = properties(spec);
      return {
        type: "library",
        "bom-ref": spec.hash,
        name: spec.name,
        version: spec.version,
        purl: purl(spec),
        ...(props.length > 0 ? { properties: props } : {}),
      };
    }),
    dependencies: specs.map((spec) => ({
      ref: spec.hash,
      dependsOn: [...new Set(spec.dependencies.map((d) => d.hash).filter((h) => known.has(h)))],
    })),
  };
}
