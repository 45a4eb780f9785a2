import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import { parseStack } from "../../src/config/index.js";
import { hostConfig } from "../../src/docker/container-spec.js";
import { buildcacheKeyOf, planBuild, SIGNING_PATHS } from "../../src/plan/plan.js";
import { loadTemplates } from "../../src/render/templates.js";

const templates = await loadTemplates();
const stack = parseStack(
  `
name: app
version: "1.0"
specs: [zlib]
targets: [x86_64_v3]
compiler: gcc@13.3.0
`,
  "/stacks/app.yaml",
);
const signing = {
  fingerprint: "0123456789ABCDEF0123456789ABCDEF01234567",
  publicKey: "-----BEGIN PGP PUBLIC KEY BLOCK-----\nxx\n-----END PGP PUBLIC KEY BLOCK-----\n",
};

describe("a signed buildcache in the plan", () => {
  it("trusts the public key first, signs every push with --key, and checks signatures on install (signed: true)", () => {
    for (const mode of ["build", "warm"] as const) {
      const [t] = planBuild(stack, undefined, { templates, jobs: 2, mode, signing }).targets;
      expect(t!.steps[0]).toMatchObject({
        id: "trust",
        argv: ["/sf/spack/bin/spack", "gpg", "trust", SIGNING_PATHS.publicKey],
      });
      expect(t!.files[SIGNING_PATHS.publicKey]).toBe(signing.publicKey);
      const pushes = t!.steps.filter((s) => s.id.endsWith("push") || s.id.endsWith("keep"));
      expect(pushes.map((s) => s.id)).toEqual(["compiler-keep", "compiler-push", "keep", "push"]);
      for (const push of pushes) {
        expect(push.argv).toContain("--key");
        expect(push.argv).toContain(signing.fingerprint);
        expect(push.argv).not.toContain("--unsigned");
        expect(push.secretKey).toBe(true);
      }
      expect(t!.steps.filter((s) => s.secretKey === true)).toEqual(pushes);
      expect(t!.env["SPACK_GNUPGHOME"]).toBe(SIGNING_PATHS.gnupgHome);
      expect(SIGNING_PATHS.gnupgHome.startsWith(`${SIGNING_PATHS.tmpfs}/`)).toBe(true);
      expect(t!.signing).toEqual({
        fingerprint: signing.fingerprint,
        tmpfs: SIGNING_PATHS.tmpfs,
        gnupgHome: SIGNING_PATHS.gnupgHome,
      });
      for (const file of Object.keys(t!.files).filter((f) => f.endsWith("spack.yaml"))) {
        const env = parse(t!.files[file]!) as { spack: { mirrors: Record<string, { signed: boolean }> } };
        expect(env.spack.mirrors["stack-factory"]!.signed).toBe(true);
      }
    }
  });

  it("keeps signed and unsigned entries (and two keys' entries) in different buildcaches", () => {
    const unsigned = planBuild(stack, undefined, { templates, jobs: 2 }).targets[0]!;
    const signed = planBuild(stack, undefined, { templates, jobs: 2, signing }).targets[0]!;
    expect(signed.buildcacheKey).toBe(`${unsigned.buildcacheKey}_signed-${signing.fingerprint.slice(-16)}`);
    expect(buildcacheKeyOf(stack, { fingerprint: "F".repeat(40) })).not.toBe(signed.buildcacheKey);
    const mount = (t: typeof signed) => t.mounts.find((m) => m.kind === "buildcache")!.host;
    expect(mount(signed)).not.toBe(mount(unsigned));
    // Unsigned stays the default: as before.
    expect(unsigned.steps.some((s) => s.id === "trust" || s.secretKey === true)).toBe(false);
    expect(unsigned.steps.find((s) => s.id === "push")!.argv).toContain("--unsigned");
    expect(unsigned.env["SPACK_GNUPGHOME"]).toBeUndefined();
    expect(unsigned.signing).toBeUndefined();
  });

  it("the gpg home's tmpfs is a tmpfs mount of the container", () => {
    const config = hostConfig({ tmpfs: [SIGNING_PATHS.tmpfs] });
    expect(config.Mounts).toEqual([
      {
        Type: "tmpfs",
        Source: "",
        Target: SIGNING_PATHS.tmpfs,
        TmpfsOptions: { SizeBytes: 16 * 1024 * 1024, Mode: 0o1777 },
      },
    ]);
    expect(() => hostConfig({ tmpfs: ["relative"] })).toThrow(/absolute/);
  });

  it("is pure: the same key gives the same plan, and no secret is in it", () => {
    const a = JSON.stringify(planBuild(stack, undefined, { templates, jobs: 2, signing }));
    expect(JSON.stringify(planBuild(stack, undefined, { templates, jobs: 2, signing }))).toBe(a);
    expect(a).not.toContain("PRIVATE KEY");
  });
});
