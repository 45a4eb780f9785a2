import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { verifyCommand } from "../../src/cli/commands/verify.js";
import { buildManifest } from "../../src/package/manifest.js";
import {
  checkThisNode,
  parsePortability,
  portabilityFromPrepare,
  portabilityWarnings,
  type Portability,
} from "../../src/package/node-check.js";
import { packOnHost } from "../helpers/pack-on-host.js";

/** prepare.json's record for a tree built on this machine: glibc's oldest and a 2.17 version, zlib outside the view. */
const PREPARED = {
  machine: "x86_64",
  highestVersions: { GLIBC: "GLIBC_2.17" },
  nodeLibraries: ["libc.so.6", "libz.so.1"],
  nodeVersions: [
    { library: "libc.so.6", version: "GLIBC_2.2.5" },
    { library: "libc.so.6", version: "GLIBC_2.17" },
  ],
  hazards: [{ library: "libz.so.1", neededBy: ["lib/libgreet.so"] }],
  needsEnvSplit: true,
};
const onX64 = process.arch === "x64";

let work: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "sf-node-check-"));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** A real tarball (packed as the factory packs) whose manifest carries `portability`. */
async function tarball(name: string, portability: Portability | undefined): Promise<string> {
  const source = join(work, `${name}-src`);
  await mkdir(join(source, "view/share"), { recursive: true });
  await writeFile(join(source, "view/share/data.txt"), "data\n");
  const manifest = buildManifest({
    stack: { name: "demo", version: "1.0", file: "/stacks/demo.yaml", description: "a demo" },
    target: "x86_64_v3",
    compiler: "gcc@12.2.0",
    baseImage: "debian:bookworm",
    specs: [],
    buildPrefix: "/sf/view/._default/abc123",
    relocateIndex: "",
    ...(portability === undefined ? {} : { portability }),
  });
  const packed = await packOnHost({
    view: join(source, "view"),
    top: `demo-1.0-${name}`,
    outDir: join(work, "out"),
    files: {
      "install.sh": { content: "#!/bin/bash\n", mode: 0o755 },
      ".stack-factory/relocate.tsv": "",
      ".stack-factory/build-prefix": "/sf/view/._default/abc123\n",
    },
    manifest,
  });
  return packed.path;
}

async function verifyNode(path: string): Promise<{ code: number; out: string }> {
  const chunks: string[] = [];
  const spy = vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
    chunks.push(String(chunk));
    return true;
  });
  try {
    return { code: await verifyCommand(path, { node: true }), out: chunks.join("") };
  } finally {
    spy.mockRestore();
  }
}

describe("will it run here?", () => {
  it("turns prepare.json's record into the manifest's, checks it back, and warns about libraries a node may lack", () => {
    const portability = portabilityFromPrepare(PREPARED);
    expect(portability).toEqual({
      machine: "x86_64",
      highest_versions: { GLIBC: "GLIBC_2.17" },
      node_libraries: ["libc.so.6", "libz.so.1"],
      node_versions: [
        { library: "libc.so.6", version: "GLIBC_2.2.5" },
        { library: "libc.so.6", version: "GLIBC_2.17" },
      ],
      hazards: [{ library: "libz.so.1", needed_by: ["lib/libgreet.so"] }],
      needs_env_split: true,
    });
    expect(parsePortability(JSON.parse(JSON.stringify(portability)))).toEqual(portability);
    expect(parsePortability({ ...portability, node_libraries: "libc.so.6" })).toBe(
      "portability.node_libraries is not a list of names",
    );
    expect(portabilityWarnings(portability)).toEqual([
      "portability: libz.so.1 is needed (by lib/libgreet.so) but is neither in the view nor part of glibc; nodes without it cannot run the tree",
    ]);
  });

  it.runIf(onX64)("checks this machine by the versions its libraries define, and names what it lacks", async () => {
    const ok = await checkThisNode(portabilityFromPrepare(PREPARED));
    expect(ok).toEqual({ ok: true, problems: [] });
    const lacking = await checkThisNode({
      ...portabilityFromPrepare(PREPARED),
      node_libraries: ["libc.so.6", "libnot-here.so.7"],
      node_versions: [{ library: "libc.so.6", version: "GLIBC_99.1" }],
    });
    expect(lacking.ok).toBe(false);
    expect(lacking.problems[0]).toMatch(/^libnot-here\.so\.7 is needed and not found in \//);
    expect(lacking.problems[1]).toMatch(
      /libc\.so\.6 does not define GLIBC_99\.1 \(the newest GLIBC version it defines is GLIBC_2\.\d+\)$/,
    );
    // Another machine: this one's x86_64 libc does not count for an aarch64 tree either.
    const other = await checkThisNode({ ...portabilityFromPrepare(PREPARED), machine: "aarch64" });
    expect(other.problems[0]).toBe("the tree is for aarch64 machines; this one is x86_64");
    expect(other.problems[1]).toMatch(/^libc\.so\.6 is needed and not found in \//);
  });

  it.runIf(onX64)("verify --node passes a tree this machine can run and refuses one it cannot", async () => {
    const good = await verifyNode(await tarball("good", portabilityFromPrepare(PREPARED)));
    expect(good.code, good.out).toBe(0);
    expect(good.out).toContain("node: ok: this machine can run it (x86_64; 2 system libraries; needs GLIBC_2.17)");

    const newer = portabilityFromPrepare({
      ...PREPARED,
      highestVersions: { GLIBC: "GLIBC_99.1" },
      nodeVersions: [{ library: "libc.so.6", version: "GLIBC_99.1" }],
    });
    const bad = await verifyNode(await tarball("newer", newer));
    expect(bad.code).toBe(1);
    expect(bad.out).toMatch(/node: this machine cannot run it:\n {2}- \S*libc\.so\.6 does not define GLIBC_99\.1/);
    expect(bad.out).toContain("the tree was built on debian:bookworm");

    const old = await verifyNode(await tarball("old", undefined));
    expect(old.code).toBe(1);
    expect(old.out).toContain("node: the manifest records no portability");
  });
});
