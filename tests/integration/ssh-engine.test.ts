/**
 * An engine reached over ssh, as a site's build host is: scripts/ensure-sshd.sh runs an sshd of its own on loopback
 * that lets in an ordinary member of the docker group by key only, and dockerode runs `docker system dial-stdio`
 * there. The factory logs in with a key file, checks the host key against a known_hosts file (never accepting an
 * unknown or changed one), prepares the engine's cache root through the engine and brings the tarball home.
 */
import { copyFile, mkdir, readFile, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";
import { beforeAll, describe, expect, it } from "vitest";
import { connectEngine } from "../../src/docker/index.js";
import type { RunReport } from "../../src/run/report.js";
import { runCli } from "./helpers/cli.js";
import { requireEngine, requireTestImage } from "./helpers/engine.js";
import { tempDir, writeTestStack } from "./helpers/stack.js";

const SSH_URL = process.env["STACK_FACTORY_SSH_ENGINE"] ?? "ssh://sf-ssh-builder@127.0.0.1:2222";
const CLIENT = process.env["STACK_FACTORY_SSH_CLIENT_DIR"] ?? "/var/lib/stack-factory-sshd/client";

let work: string;
let stackFile: string;

async function factoryFile(name: string, knownHosts: string): Promise<string> {
  const file = join(work, `${name}.yaml`);
  await writeFile(
    file,
    [
      "engines:",
      `  - url: ${SSH_URL}`,
      "    name: grace",
      "    identity: id_ed25519",
      `    known_hosts: ${knownHosts}`,
      `    cache: ${join(work, "grace-host", "cache")}`,
      "    concurrency: 1",
      "",
    ].join("\n"),
  );
  return file;
}

beforeAll(async () => {
  await requireTestImage(await requireEngine());
  work = await tempDir("ssh-engine");
  for (const f of ["id_ed25519", "known_hosts"]) await copyFile(join(CLIENT, f), join(work, f));
  const probe = await connectEngine({
    endpoint: { url: SSH_URL, identityFile: join(work, "id_ed25519"), knownHostsFiles: [join(work, "known_hosts")] },
  }).catch((error: unknown) => {
    throw new Error(
      `this test needs the engine over ssh at ${SSH_URL}: ${(error as Error).message}; start it with scripts/ensure-sshd.sh`,
    );
  });
  await requireTestImage(probe);
  await execa("npm", ["run", "build"], { stdio: "ignore" });
  await mkdir(join(work, "grace-host"));
  stackFile = await writeTestStack(work, { name: "grace", specs: ["zlib"], targets: ["x86_64_v2"] });
});

describe("an engine over ssh", () => {
  it("builds there with a key file and a known host key; the tarball comes home and verifies", async () => {
    const report = join(work, "report.json");
    const run = await runCli([
      "build",
      stackFile,
      "--factory",
      await factoryFile("factory", "known_hosts"),
      "--cache-dir",
      join(work, "cache"),
      "--out",
      join(work, "out"),
      "--report",
      report,
    ]);
    expect(run.exitCode, run.all).toBe(0);
    expect(run.all).toMatch(/engine grace: cache root \S+ ready \(sent 2 tree\(s\)/);
    const parsed = JSON.parse(await readFile(report, "utf8")) as RunReport;
    expect(parsed.targets.map((t) => [t.target, t.engine, t.status])).toEqual([["x86_64_v2", "grace", "ok"]]);
    const verify = await runCli(["verify", parsed.targets[0]!.tarball!]);
    expect(verify.exitCode, verify.all).toBe(0);
    expect(await readdir(join(work, "grace-host", "cache"))).toEqual(
      expect.arrayContaining(["buildcache", "source", "synced"]),
    );
  });

  it("answers 30 API calls at once (more channels than one ssh connection may carry), and lets the process exit", async () => {
    const script = [
      `import { connectEngine } from ${JSON.stringify(join(process.cwd(), "dist-js/docker/index.js"))};`,
      `const e = await connectEngine({ endpoint: { url: ${JSON.stringify(SSH_URL)}, identityFile: ${JSON.stringify(join(work, "id_ed25519"))}, knownHostsFiles: [${JSON.stringify(join(work, "known_hosts"))}] } });`,
      "const all = await Promise.all(Array.from({ length: 30 }, () => e.docker.listContainers({ all: true })));",
      "console.log(all.length);",
    ].join("\n");
    const file = join(work, "burst.mjs");
    await writeFile(file, script);
    // No timer or handle of this script holds it: it ends when the calls are done, or the test times out.
    const run = await execa(process.execPath, [file], { reject: false, all: true, timeout: 60_000 });
    expect(run.exitCode, run.all).toBe(0);
    expect(run.stdout.trim()).toBe("30");
  });

  it("refuses a host whose key is in no known_hosts file, and one whose key changed, before anything runs there", async () => {
    await writeFile(join(work, "empty_known_hosts"), "");
    const other = join(work, "other");
    await execa("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", other]);
    const port = new URL(SSH_URL).port || "22";
    const otherKey = (await readFile(`${other}.pub`, "utf8")).split(" ").slice(0, 2).join(" ");
    await writeFile(join(work, "changed_known_hosts"), `[127.0.0.1]:${port} ${otherKey}\n`);
    for (const [file, said] of [
      ["empty_known_hosts", /the host key of \[127\.0\.0\.1\]:\d+ \(ssh-ed25519 SHA256:\S+\) is in none of/],
      [
        "changed_known_hosts",
        /the host key of \[127\.0\.0\.1\]:\d+ has changed: \S+changed_known_hosts:1 holds another/,
      ],
    ] as const) {
      const run = await runCli([
        "warm",
        stackFile,
        "--factory",
        await factoryFile(file, file),
        "--cache-dir",
        join(work, "cache"),
      ]);
      expect(run.exitCode, run.all).not.toBe(0);
      expect(run.all).toMatch(said);
      // Nothing of a refused run reached the engine behind that sshd: no cache root prepared, no image, no target.
      expect(run.all).not.toMatch(/engine grace: (sending|cache root)|builder image/);
      expect(run.exitCode).toBe(1);
    }
    const doctor = await runCli(["doctor", "--factory", await factoryFile("doctor", "empty_known_hosts")]);
    expect(doctor.exitCode).not.toBe(0);
    expect(doctor.all).toMatch(/ssh-keyscan -p \d+ 127\.0\.0\.1 >> ~\/\.ssh\/known_hosts/);
  });
});
