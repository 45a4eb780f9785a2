import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { loadRegistryCa } from "../../src/config/registry-ca.js";
import { InputError } from "../../src/errors.js";

const fixture = fileURLToPath(new URL("../fixtures/certs/test-ca.pem", import.meta.url));

describe("the registry CA file (buildcache_ca)", () => {
  it("takes PEM certificates, and nothing else, into the build containers", async () => {
    const pem = await readFile(fixture, "utf8");
    expect(await loadRegistryCa(fixture)).toBe(`${pem.trim()}\n`);
    const dir = await mkdtemp(path.join(tmpdir(), "sf-ca-"));
    const write = async (name: string, text: string) => {
      await writeFile(path.join(dir, name), text);
      return path.join(dir, name);
    };
    const refusals: [string, RegExp][] = [
      ["not a certificate\n", /must hold PEM certificates/],
      [`${pem}\nexport EVIL=1\n`, /must hold PEM certificates/],
      ["-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", /certificate 1 is not a valid X\.509/],
    ];
    for (const [i, [text, why]] of refusals.entries()) {
      const file = await write(`ca${i}.pem`, text);
      const failure = loadRegistryCa(file);
      await expect(failure).rejects.toThrow(InputError);
      await expect(failure).rejects.toThrow(why);
      await expect(failure).rejects.toThrow(file);
    }
    await expect(loadRegistryCa(path.join(dir, "missing.pem"))).rejects.toThrow(/cannot read the registry CA file/);
  });
});
