/**
 * A late failure keeps what was built: after a failed install, the packages installed before the failure are pushed
 * to the buildcache (the same push, under the same host lock, as after a whole install), and the report says which.
 */
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseStack } from "../../src/config/index.js";
import { buildcacheLocation } from "../../src/config/factory.js";
import { planBuild } from "../../src/plan/plan.js";
import { placeTarget, REGISTRY_CREDENTIALS_FILE } from "../../src/plan/placement.js";
import type { BuildPlan } from "../../src/plan/types.js";
import { loadTemplates } from "../../src/render/templates.js";
import { buildReport, reportMarkdown } from "../../src/run/report.js";
import type { RunResult } from "../../src/run/run-plan.js";
import { keptPackages, pushedPackages } from "../../src/spack/contract.js";

const templates = await loadTemplates();
const stackText = 'name: s\nversion: "1"\nspecs: [hello]\ntargets: [x86_64_v3]\n';

describe("the plan keeps what a failed install finished", () => {
  for (const mode of ["build", "warm"] as const) {
    it(`pushes after a failed install only, as the push does, under its lock (${mode})`, () => {
      const [t] = planBuild(parseStack(stackText, "/s.yaml"), undefined, { templates, jobs: 2, mode }).targets;
      const keep = t!.steps.find((s) => s.id === "keep")!;
      const push = t!.steps.find((s) => s.id === "push")!;
      expect(keep.afterFailureOf).toBe("install");
      expect(keep.argv).toEqual(push.argv);
      expect(keep.argv).toContain("--update-index");
      expect(keep.lock).toBe(push.lock);
      // Nothing else runs only after a failure, and the install itself pushes nothing (no autopush mirror).
      expect(t!.steps.filter((s) => s.afterFailureOf !== undefined).map((s) => s.id)).toEqual(["keep"]);
      expect(t!.spackYaml).not.toContain("autopush");
    });
  }

  it("keeps a bootstrapped compiler's packages after its install failed", () => {
    const stack = parseStack(`${stackText}compiler: gcc@13.3.0\n`, "/s.yaml");
    const [t] = planBuild(stack, undefined, { templates, jobs: 2 }).targets;
    const keep = t!.steps.find((s) => s.id === "compiler-keep")!;
    expect(keep.afterFailureOf).toBe("compiler-install");
    expect(keep.argv).toEqual(t!.steps.find((s) => s.id === "compiler-push")!.argv);
  });

  it("gives the keep step the registry's credentials, as the push (and nothing more)", () => {
    const [t] = planBuild(parseStack(stackText, "/s.yaml"), undefined, { templates, jobs: 2 }).targets;
    const placed = placeTarget(t!, {
      engine: "a",
      cacheRoot: "/c",
      factoryCacheRoot: "/c",
      buildcache: buildcacheLocation("oci://127.0.0.1:5001/site/buildcache"),
      credentials: true,
    });
    const keep = placed.steps.find((s) => s.id === "keep")!;
    expect(keep.argv).toContain(REGISTRY_CREDENTIALS_FILE);
    expect(keep.argv.slice(-8)).toEqual(placed.steps.find((s) => s.id === "push")!.argv.slice(-8));
    expect(keep.argv.join(" ")).not.toContain("p4ss");
  });
});

// As Spack 1.1 prints them (spack-transcripts/v1/push.log and install.log); an OCI push adds the digest.
const INSTALL = [
  "==> lz4: Successfully installed lz4-1.10.0-25vf3hemjcdqnvadgprhs2isace6upfo",
  "==> slurm: Successfully installed slurm-24-11-5-1-nr52gr5dx7hce52hgqhqgw7cgqhqqdy2",
  "==> Extracting gcc-runtime-12.2.0-iwxnaxbhxccri5qsyservt72f3r7n4ak from binary cache",
  "==> gcc-runtime: Successfully installed gcc-runtime-12.2.0-iwxnaxbhxccri5qsyservt72f3r7n4ak",
  "==> munge: Successfully installed munge-0.5.15-abcdefgabcdefgabcdefgabcdefgabcd",
];
const PUSH = [
  "==> Selected 4 specs to push to file:///proof/v1/buildcache",
  "==> [1/2] Pushed lz4@1.10.0/25vf3he",
  "==> [2/2] Pushed slurm@24-11-5-1/nr52gr5: sha256:66ba208649186c5beea99e4ed8b99b5bb5b0adff354f735552bebe739f05468d (0.02s, 1.00 MB/s)",
  "==> Error: The following 1 errors occurred while pushing specs to the buildcache",
  "    openmpi@5.0.8/zzzzzzz: PackageNotInstalledError: package not installed",
];

describe("what a failed build kept", () => {
  it("reads Spack's push lines, versions with dashes included", () => {
    expect(pushedPackages(PUSH.join("\n"))).toEqual(["lz4@1.10.0/25vf3he", "slurm@24-11-5-1/nr52gr5"]);
  });

  it("is what was built and then pushed: not what came from the cache, not what was built and not pushed", () => {
    const built = [
      "lz4-1.10.0-25vf3hemjcdqnvadgprhs2isace6upfo",
      "slurm-24-11-5-1-nr52gr5dx7hce52hgqhqgw7cgqhqqdy2",
      "munge-0.5.15-abcdefgabcdefgabcdefgabcdefgabcd",
    ];
    expect(keptPackages(built, [...INSTALL, ...PUSH].join("\n"))).toEqual(built.slice(0, 2));
    expect(keptPackages(built, INSTALL.join("\n"))).toEqual([]);
  });

  it("is in the report of a failed target that pushed after its failure, and in the summary", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sf-keep-"));
    const log = join(dir, "t.log");
    await writeFile(log, [...INSTALL, "==> Error: ProcessError: Command exited with status 2", ...PUSH].join("\n"));
    const ok = join(dir, "ok.log");
    await writeFile(ok, [...INSTALL, ...PUSH.slice(0, 3)].join("\n"));
    const steps = (ids: string[]) => ids.map((step) => ({ step, seconds: 1, exitCode: step === "push" ? 0 : 1 }));
    const result: RunResult = {
      runId: "r",
      image: { tag: "x", built: false, id: "sha256:0" },
      spackCommit: "c",
      cancelled: false,
      targets: [
        { target: "zen4", status: "failed", seconds: 1, logPath: log, steps: steps(["install", "keep"]), captured: {} },
        {
          target: "icelake",
          status: "ok",
          seconds: 1,
          logPath: ok,
          steps: steps(["install", "push"]).map((s) => ({ ...s, exitCode: 0 })),
          captured: {},
        },
      ],
    };
    const plan = { stack: { name: "s", version: "1", file: "/s.yaml", description: "" } } as BuildPlan;
    const report = await buildReport(plan, result, { mode: "build", concurrency: 1, jobs: 1, seconds: 1 });
    expect(report.targets[0]!.kept).toEqual([
      "lz4-1.10.0-25vf3hemjcdqnvadgprhs2isace6upfo",
      "slurm-24-11-5-1-nr52gr5dx7hce52hgqhqgw7cgqhqqdy2",
    ]);
    expect(report.targets[1]).not.toHaveProperty("kept");
    expect(reportMarkdown(report)).toContain(
      `- zen4 failed: see \`${log}\`; 2 package(s) built before the failure kept in the buildcache`,
    );
  });
});
