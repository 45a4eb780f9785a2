import { describe, expect, it } from "vitest";
import { planBundleEntries, relocatedPaths, type TargetTree } from "../../src/bundle/plan.js";

const file = (path: string, sha256: string, mode = 0o644) => ({ path, type: "file" as const, mode, size: 10, sha256 });

function tree(target: string, files: TargetTree["files"], relocated: string[] = []): TargetTree {
  return { target, files: [{ path: "", type: "directory", mode: 0o755, size: 0 }, ...files], relocated };
}

describe("planBundleEntries", () => {
  it("links a file identical to the same path of an earlier target, and stores everything else", () => {
    const entries = planBundleEntries([
      tree("a", [file("view/share/doc.txt", "d1"), file("view/bin/tool", "b1", 0o755)]),
      tree("b", [file("view/share/doc.txt", "d1"), file("view/bin/tool", "b2", 0o755)]),
      tree("c", [file("view/share/doc.txt", "d1"), file("view/share/other.txt", "d1")]),
    ]);
    const links = entries.filter((e) => e.kind === "link").map((e) => [e.name, e.kind === "link" ? e.linkTo : ""]);
    expect(links).toEqual([
      ["targets/b/view/share/doc.txt", "targets/a/view/share/doc.txt"],
      ["targets/c/view/share/doc.txt", "targets/a/view/share/doc.txt"],
    ]);
    // Every link points to an entry written before it.
    const names = entries.map((e) => e.name);
    for (const e of entries) if (e.kind === "link") expect(names.indexOf(e.linkTo)).toBeLessThan(names.indexOf(e.name));
    expect(names[0]).toBe("targets/a");
  });

  it("never links a file any target relocates, a different mode, metadata or modules", () => {
    const shared = (t: string, relocated: string[]) =>
      tree(
        t,
        [
          file("view/lib/libx.so", "l1"),
          file("view/share/x.txt", "x1", t === "a" ? 0o644 : 0o600),
          file(".stack-factory/node-requirements.tsv", "n1"),
          file("modules/hello/1.0.lua", "m1"),
          file("install.sh", "i1", 0o755),
        ],
        relocated,
      );
    const entries = planBundleEntries([shared("a", []), shared("b", ["view/lib/libx.so"])]);
    expect(entries.filter((e) => e.kind === "link")).toEqual([]);
  });

  it("reads the relocated paths from relocate.tsv", () => {
    expect(relocatedPaths("text\tview/a.pc\nbinary\tview/bin/x\t12,40\n")).toEqual(["view/a.pc", "view/bin/x"]);
  });
});

describe("mergeSboms", () => {
  it("holds every target's components once, deterministically", async () => {
    const { mergeSboms } = await import("../../src/bundle/sbom.js");
    const sbom = (refs: string[]) =>
      Buffer.from(
        JSON.stringify({
          serialNumber: refs.join(),
          components: refs.map((r) => ({ "bom-ref": r, name: r })),
          dependencies: refs.map((r) => ({ ref: r, dependsOn: [] })),
        }),
      );
    const sboms = new Map([
      ["a", sbom(["h1", "h2"])],
      ["b", sbom(["h2", "h3"])],
    ]);
    const merged = mergeSboms(sboms, { name: "s", version: "1", targets: ["a", "b"] });
    expect((merged["components"] as { "bom-ref": string }[]).map((c) => c["bom-ref"])).toEqual(["h1", "h2", "h3"]);
    expect(mergeSboms(sboms, { name: "s", version: "1", targets: ["a", "b"] })).toEqual(merged);
    expect(merged["serialNumber"]).toMatch(/^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5/);
  });
});
