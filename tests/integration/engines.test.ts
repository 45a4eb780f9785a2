/**
 * Several real engines on one machine: the main one and a second dockerd on its own socket, data root, exec root
 * and bridge (no NAT), started by scripts/ensure-second-engine.sh. Engines by URL, image copies between them, free
 * disk measured on an engine's host, an engine's network for its containers, and the registry of
 * scripts/ensure-registry.sh reached from a host-network container of the second engine.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  buildImage,
  connectEngine,
  copyImage,
  freeBytesOnEngineHost,
  imageExists,
  runOneShot,
  type Engine,
} from "../../src/docker/index.js";
import { requireEngine, requireTestImage, TEST_IMAGE } from "./helpers/engine.js";
import { requireRegistry } from "./helpers/registry.js";

export const SECOND_ENGINE = process.env["STACK_FACTORY_SECOND_ENGINE"] ?? "unix:///var/run/stack-factory-docker2.sock";

let main: Engine;
let second: Engine;
const tag = `stack-factory-test/copy:${Date.now().toString(36)}`;

beforeAll(async () => {
  main = await requireEngine();
  await requireTestImage(main);
  second = await connectEngine({ endpoint: { url: SECOND_ENGINE }, runId: main.runId, network: "host" }).catch(
    (error: unknown) => {
      throw new Error(
        `integration tests need the second engine at ${SECOND_ENGINE}: ${(error as Error).message}; start it with scripts/ensure-second-engine.sh`,
      );
    },
  );
  await requireTestImage(second);
});

afterAll(async () => {
  for (const e of [main, second])
    await e?.docker
      .getImage(tag)
      .remove({ force: true })
      .catch(() => undefined);
});

describe("two engines on one machine", () => {
  it("are reached by URL, named after their socket, and report their architecture", async () => {
    expect(second.name).toBe("stack-factory-docker2");
    expect(second.where).toBe(SECOND_ENGINE);
    expect(second.local).toBe(true);
    const [a, b] = await Promise.all([main.version(), second.version()]);
    expect(b.arch).toBe(a.arch);
    expect(await second.unreachable()).toBeUndefined();
    const dead = await connectEngine({ endpoint: { url: "unix:///nonexistent/docker.sock" } }).catch((e: Error) => e);
    expect((dead as Error).message).toMatch(/no Docker engine answers at unix:\/\/\/nonexistent\/docker\.sock/);
  });

  it("really are two engines, each with its own data root", async () => {
    const { stdout } = await execa("docker", ["-H", SECOND_ENGINE, "info", "--format", "{{.DockerRootDir}}"]);
    const { stdout: mainRoot } = await execa("docker", ["info", "--format", "{{.DockerRootDir}}"]);
    expect(stdout.trim()).not.toBe(mainRoot.trim());
  });

  it("copy an image from one to the other through their APIs", async () => {
    const [repo, version] = tag.split(":") as [string, string];
    await main.docker.getImage(TEST_IMAGE).tag({ repo, tag: version });
    expect(await imageExists(second, tag)).toBe(false);
    await copyImage(main, second, tag);
    expect(await imageExists(second, tag)).toBe(true);
    const missing = await copyImage(main, second, "stack-factory-test/none:missing").catch((e: Error) => e);
    expect((missing as Error).message).toMatch(
      /copying image stack-factory-test\/none:missing from local to stack-factory-docker2/,
    );
  });

  it("measure free disk on the engine's host in a container, and say when the path is missing there", async () => {
    await buildImage(second, { tag: `${tag}-probe`, files: { Dockerfile: `FROM ${TEST_IMAGE}\n` } });
    const dir = await mkdtemp(join(tmpdir(), "sf-engine-disk-"));
    try {
      const free = await freeBytesOnEngineHost(second, dir);
      expect(free).toBeGreaterThan(0);
      await expect(freeBytesOnEngineHost(second, join(dir, "missing"))).rejects.toThrow(/missing/);
    } finally {
      await rm(dir, { recursive: true, force: true });
      await second.docker
        .getImage(`${tag}-probe`)
        .remove({ force: true })
        .catch(() => undefined);
    }
  });

  it("an engine's network reaches the loopback registry from its containers (host network)", async () => {
    // Plain http: the probe speaks HTTP by hand.
    const registry = await requireRegistry({ plainHttp: true });
    const [host, port] = registry.address.split(":");
    const probe = [
      "bash",
      "-c",
      `exec 3<>/dev/tcp/${host}/${port} && printf 'GET /v2/ HTTP/1.0\\r\\n\\r\\n' >&3 && head -n1 <&3`,
    ];
    const { startContainer } = await import("../../src/docker/index.js");
    const c = await startContainer(second, { image: TEST_IMAGE });
    try {
      const out: Buffer[] = [];
      const { exitCode } = await c.exec(probe, { onStdout: (b) => void out.push(b) });
      expect(exitCode).toBe(0);
      expect(Buffer.concat(out).toString()).toMatch(/^HTTP\/1\.[01] 401/);
    } finally {
      await c.remove();
    }
    // Without the host network, a container of the second engine (its own bridge, no NAT) has its own loopback.
    const isolated = await connectEngine({ endpoint: { url: SECOND_ENGINE } });
    const { exitCode } = await runOneShot(isolated, { image: TEST_IMAGE, cmd: probe });
    expect(exitCode).not.toBe(0);
  });
});
