/**
 * Spack takes a package from the first repository of the merged `repos:` configuration that has it, so a site's
 * repositories must come before builtin, in the order the stack lists them: otherwise a site's recipe under a
 * builtin name is never used.
 */
import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import { parseStack } from "../../src/config/index.js";
import { planBuild } from "../../src/plan/plan.js";
import { loadTemplates } from "../../src/render/templates.js";
import { reposConfig } from "../../src/spack/contract.js";

const templates = await loadTemplates();
const extra = [
  { namespace: "site", path: "/sf/repos/spack_repo/site" },
  { namespace: "team", path: "/sf/repos/spack_repo/team" },
];

describe("the repos: section", () => {
  it("lists a Spack 1.x stack's repositories first, in the stack's order, and builtin last", () => {
    const repos = reposConfig({ generation: "v1", builtin: "/sf/spack-packages/builtin", extra });
    expect(Object.entries(repos as Record<string, string>)).toEqual([
      ["site", "/sf/repos/spack_repo/site"],
      ["team", "/sf/repos/spack_repo/team"],
      ["builtin", "/sf/spack-packages/builtin"],
    ]);
    const reversed = reposConfig({ generation: "v1", builtin: "/b", extra: [...extra].reverse() });
    expect(Object.keys(reversed as Record<string, string>)).toEqual(["team", "site", "builtin"]);
  });

  it("keeps Spack 0.2x's list form in the stack's order (Spack appends its builtin after it)", () => {
    expect(reposConfig({ generation: "v0", extra })).toEqual([
      "/sf/repos/spack_repo/site",
      "/sf/repos/spack_repo/team",
    ]);
    expect(reposConfig({ generation: "v0", extra: [] })).toBeUndefined();
  });

  it("writes that order into every target's spack.yaml", () => {
    const stack = parseStack(
      `name: s\nversion: "1"\nspecs: [libgreet]\ntargets: [x86_64_v3]\nspack: { source: /srv/spack, builtin: { source: /srv/spack-packages } }\n`,
      "/s/s.yaml",
    );
    // The namespaces come from each repo.yaml when the stack is loaded from disk; here they are given.
    const withRepos = {
      ...stack,
      spack: {
        ...stack.spack,
        generation: "v1" as const,
        repos: [
          { path: "/srv/repos/zeta", namespace: "zeta" },
          { path: "/srv/repos/alpha", namespace: "alpha" },
        ],
      },
    };
    const [t] = planBuild(withRepos, undefined, { templates, jobs: 1 }).targets;
    const repos = (parse(t!.spackYaml) as { spack: { repos: Record<string, string> } }).spack.repos;
    expect(Object.keys(repos)).toEqual(["zeta", "alpha", "builtin"]);
    expect(t!.spackYaml.indexOf("zeta:")).toBeLessThan(t!.spackYaml.indexOf("builtin:"));
  });
});
