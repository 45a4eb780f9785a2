import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { InputError } from "../../src/errors.js";
import { ensureSpackCheckout, GIT_PROTOCOLS } from "../../src/run/spack-checkout.js";

let work: string;
const saved = { path: process.env["PATH"], allow: process.env["GIT_ALLOW_PROTOCOL"] };
beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), "sf-git-"));
});
afterEach(async () => {
  process.env["PATH"] = saved.path;
  if (saved.allow === undefined) delete process.env["GIT_ALLOW_PROTOCOL"];
  else process.env["GIT_ALLOW_PROTOCOL"] = saved.allow;
  await rm(work, { recursive: true, force: true });
});

describe("spack checkout git transports", () => {
  it("clones with git's protocol allow-list pinned, whatever GIT_ALLOW_PROTOCOL the factory inherited", async () => {
    // A stand-in git that records the allow-list it was given and makes a checkout with bin/spack.
    const bin = join(work, "bin");
    await mkdir(bin);
    await writeFile(
      join(bin, "git"),
      `#!/bin/sh\necho "$GIT_ALLOW_PROTOCOL" >> ${join(work, "seen")}\nfor last; do :; done\ncase "$1" in clone) mkdir -p "$last/bin" && touch "$last/bin/spack" ;; esac\nexit 0\n`,
    );
    await chmod(join(bin, "git"), 0o755);
    process.env["PATH"] = `${bin}:${saved.path ?? ""}`;
    process.env["GIT_ALLOW_PROTOCOL"] = "ext:fd:file";
    const checkout = await ensureSpackCheckout(join(work, "spack"), "https://github.com/spack/spack.git", "v1.0.0");
    expect(checkout.cloned).toBe(true);
    const seen = (await readFile(join(work, "seen"), "utf8")).trim().split("\n");
    expect(seen.length).toBeGreaterThan(0);
    for (const value of seen) expect(value).toBe(GIT_PROTOCOLS);
  });

  it.each([
    ["ext::sh -c touch% pwned"],
    ["fd::3"],
    ["http://example.org/spack.git"],
    ["--upload-pack=touch pwned"],
    ["/local/path"],
  ])("refuses %s before running git, even with GIT_ALLOW_PROTOCOL=ext inherited", async (url) => {
    process.env["GIT_ALLOW_PROTOCOL"] = "ext:fd:file:http";
    const dir = join(work, "spack");
    await expect(ensureSpackCheckout(dir, url, "v1.0.0")).rejects.toBeInstanceOf(InputError);
    expect(existsSync(join(work, "pwned"))).toBe(false);
    expect(existsSync(join(process.cwd(), "pwned"))).toBe(false);
  });

  it("git itself refuses ext:: under the pinned allow-list (the allow-list alone, without the URL check)", async () => {
    const { execa } = await import("execa");
    const marker = join(work, "pwned");
    const result = await execa("git", ["clone", "--", `ext::sh -c touch% ${marker}`, join(work, "c")], {
      reject: false,
      env: { GIT_ALLOW_PROTOCOL: GIT_PROTOCOLS },
    });
    expect(result.exitCode).not.toBe(0);
    expect(String(result.stderr)).toMatch(/transport 'ext' not allowed/);
    expect(existsSync(marker)).toBe(false);
  });
});
