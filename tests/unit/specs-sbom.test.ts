import { describe, expect, it } from "vitest";
import { buildSbom } from "../../src/package/sbom.js";
import { parseSpecs } from "../../src/package/specs.js";

describe("parseSpecs and buildSbom", () => {
  const flat = [
    {
      name: "hdf5",
      version: "1.14.5",
      hash: "h5hash",
      arch: { platform: "linux", target: { name: "zen4", vendor: "AuthenticAMD" } },
      parameters: { mpi: true, cflags: [], build_type: "Release" },
      dependencies: [{ name: "zlib-ng", hash: "zhash", parameters: { deptypes: ["link"] } }],
      extra: "ignored",
    },
    { name: "zlib-ng", version: "2.2.1", hash: "zhash", arch: { platform: "linux", target: "zen4" } },
  ];

  it("reads flat node lists and nested spec.nodes alike, once per hash", () => {
    const fromFlat = parseSpecs(flat);
    const fromNested = parseSpecs(
      JSON.stringify([{ spec: { _meta: { version: 5 }, nodes: flat } }, { spec: { nodes: [flat[1]] } }]),
    );
    expect(fromNested).toEqual(fromFlat);
    expect(fromFlat).toEqual([
      {
        name: "hdf5",
        version: "1.14.5",
        hash: "h5hash",
        variants: { build_type: "Release", mpi: true },
        arch: { platform: "linux", target: "zen4" },
        dependencies: [{ name: "zlib-ng", hash: "zhash" }],
      },
      {
        name: "zlib-ng",
        version: "2.2.1",
        hash: "zhash",
        variants: {},
        arch: { platform: "linux", target: "zen4" },
        dependencies: [],
      },
    ]);
    expect(() => parseSpecs([{ name: "x", version: "1" }])).toThrow(/spec #0 has no hash/);
    expect(() => parseSpecs({})).toThrow(/must be a JSON array/);
  });

  it("makes a CycloneDX 1.5 document with purls, bom-refs and dependencies", () => {
    const sbom = buildSbom(parseSpecs(flat), { name: "demo", version: "1.0" }) as {
      specVersion: string;
      serialNumber: string;
      components: { "bom-ref": string; purl: string; properties?: { name: string; value: string }[] }[];
      dependencies: { ref: string; dependsOn: string[] }[];
    };
    expect(sbom.specVersion).toBe("1.5");
    expect(sbom.serialNumber).toMatch(/^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(sbom.components.map((c) => c.purl)).toEqual([
      "pkg:generic/hdf5@1.14.5?spack_hash=h5hash",
      "pkg:generic/zlib-ng@2.2.1?spack_hash=zhash",
    ]);
    expect(sbom.components[0]!["bom-ref"]).toBe("h5hash");
    expect(sbom.components[0]!.properties).toContainEqual({ name: "spack:variant:mpi", value: "true" });
    expect(sbom.dependencies).toEqual([
      { ref: "h5hash", dependsOn: ["zhash"] },
      { ref: "zhash", dependsOn: [] },
    ]);
    expect(JSON.stringify(buildSbom(parseSpecs(flat), { name: "demo", version: "1.0" }))).toBe(JSON.stringify(sbom));
  });
});
