import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { cleanCommand, cleanReport } from "../../src/cli/commands/clean.js";
import { InputError } from "../../src/errors.js";
import { keptContainerHint } from "../../src/run/kept-container.js";

const ID = "0123456789abcdef0123456789abcdef";

describe("the hint for a container kept for inspection", () => {
  it("keeps the plain docker exec for the default engine (local socket or DOCKER_HOST)", () => {
    const text =
      "container kept for inspection: docker exec -it 0123456789ab bash (remove it with stack-factory clean --run r-1)";
    expect(keptContainerHint({ where: "/var/run/docker.sock", name: "local" }, ID, "r-1")).toBe(text);
    expect(keptContainerHint({ where: "DOCKER_HOST=tcp://build2:2375", name: "local" }, ID, "r-1")).toBe(text);
  });

  it("names an engine reached by URL, with its URL in both commands", () => {
    expect(keptContainerHint({ where: "unix:///var/run/docker2.sock", name: "docker2" }, ID, "r-1")).toBe(
      "container kept for inspection on engine docker2: docker -H unix:///var/run/docker2.sock exec -it 0123456789ab bash " +
        "(remove it with stack-factory clean --run r-1 --engine unix:///var/run/docker2.sock)",
    );
    expect(keptContainerHint({ where: "ssh://builder@grace01", name: "grace" }, ID, "r-2")).toContain(
      "on engine grace: docker -H ssh://builder@grace01 exec -it 0123456789ab bash (remove it with stack-factory clean --run r-2 --engine ssh://builder@grace01)",
    );
    expect(keptContainerHint({ where: "tcp://10.0.0.2:2375", name: "10.0.0.2:2375" }, ID, "r")).toContain(
      "docker -H tcp://10.0.0.2:2375 exec",
    );
  });

  it("gives docker the certificates of a TLS engine, and sends clean to the factory settings file", () => {
    const hint = keptContainerHint({ where: "tcp://build2:2376", name: "build2", tlsDir: "/etc/sf/certs" }, ID, "r-3");
    expect(hint).toContain(
      "docker -H tcp://build2:2376 --tlsverify --tlscacert /etc/sf/certs/ca.pem --tlscert /etc/sf/certs/cert.pem --tlskey /etc/sf/certs/key.pem exec -it 0123456789ab bash",
    );
    expect(hint).toContain("stack-factory clean --run r-3 --factory <the factory settings file>");
  });

  it("quotes a URL the shell would split", () => {
    const hint = keptContainerHint({ where: "unix:///run/my docker.sock", name: "my docker" }, ID, "r");
    expect(hint).toContain("docker -H 'unix:///run/my docker.sock' exec");
    expect(hint).toContain("--engine 'unix:///run/my docker.sock')");
  });
});

describe("clean's report over several engines", () => {
  it("says per engine what it removed, and why an engine was not cleaned", () => {
    const { out, err } = cleanReport([
      { name: "x86-a", removed: 2 },
      { name: "x86-b", removed: 0 },
      {
        name: "arm",
        where: "ssh://arm01",
        reason: "no Docker engine answers at ssh://arm01: timeout",
        answered: false,
      },
      { name: "x86-c", where: "tcp://c:2375", reason: "removing container abc: HTTP 500", answered: true },
    ]);
    expect(out).toBe("engine x86-a: removed 2 container(s)\nengine x86-b: nothing to remove\n");
    expect(err).toBe(
      "stack-factory: engine arm: no Docker engine answers at ssh://arm01: timeout\n" +
        "hint: start the engine at ssh://arm01 or check that this host reaches it; its containers stay until then\n" +
        "stack-factory: engine x86-c: removing container abc: HTTP 500\n",
    );
  });
});

describe("clean's engine selection", () => {
  const written: { out: string; err: string } = { out: "", err: "" };
  afterEach(() => {
    vi.restoreAllMocks();
    written.out = "";
    written.err = "";
  });
  const capture = () => {
    vi.spyOn(process.stdout, "write").mockImplementation((chunk) => {
      written.out += String(chunk);
      return true;
    });
    vi.spyOn(process.stderr, "write").mockImplementation((chunk) => {
      written.err += String(chunk);
      return true;
    });
  };

  it("refuses an --engine that is not an engine URL (exit 2)", async () => {
    const error = await cleanCommand({ engine: "http://build2:2375" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).message).toMatch(/engine "http:\/\/build2:2375": unsupported scheme http/);
  });

  it("reports every --engine that does not answer and exits 1", async () => {
    capture();
    const code = await cleanCommand({
      run: "r-1",
      engine: ["unix:///nonexistent/a.sock", "unix:///nonexistent/b.sock"],
    });
    expect(code).toBe(1);
    expect(written.out).toBe("");
    expect(written.err).toMatch(
      /^stack-factory: engine a: no Docker engine answers at unix:\/\/\/nonexistent\/a\.sock/m,
    );
    expect(written.err).toMatch(
      /^stack-factory: engine b: no Docker engine answers at unix:\/\/\/nonexistent\/b\.sock/m,
    );
  });

  it("takes the engines of a --factory file", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sf-clean-"));
    try {
      const file = join(dir, "factory.yaml");
      await writeFile(file, "engines:\n  - url: unix:///nonexistent/c.sock\n    name: x86-c\n");
      capture();
      expect(await cleanCommand({ all: true, factory: file })).toBe(1);
      expect(written.err).toMatch(
        /^stack-factory: engine x86-c: no Docker engine answers at unix:\/\/\/nonexistent\/c\.sock/m,
      );
      expect(written.err).toMatch(/^hint: start the engine at unix:\/\/\/nonexistent\/c\.sock/m);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
