/**
 * Hostile settings through the compiled CLI, where exit codes and "it ends" matter: a FIFO named as a file is
 * refused at once, an ssh engine that never answers or answers garbage ends the run with its message, SIGTERM ends
 * the process, and DOCKER_HOST=ssh://… gets the host key check that --engine gets.
 */
import { execFileSync } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "./helpers/cli.js";
import { CLI, tempDir } from "./helpers/stack.js";

const SSH_URL = process.env["STACK_FACTORY_SSH_ENGINE"] ?? "ssh://sf-ssh-builder@127.0.0.1:2222";

let work: string;
let silent: Server;
let garbage: Server;
const accepted: Socket[] = [];

async function listen(onConnection: (socket: Socket) => void): Promise<Server> {
  const server = createServer((socket) => {
    accepted.push(socket);
    socket.on("error", () => {});
    onConnection(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return server;
}
const portOf = (server: Server): number => (server.address() as { port: number }).port;

beforeAll(async () => {
  work = await tempDir("hostile-cli");
  silent = await listen(() => {});
  garbage = await listen((socket) => socket.end("\0\0\0\x05garbage, not an ssh server\r\n"));
});
afterAll(async () => {
  for (const socket of accepted) socket.destroy();
  await Promise.all([silent, garbage].map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
});

describe("files named by the settings", () => {
  it("a FIFO named as the credentials file is refused at once with exit 2, not read forever", async () => {
    const fifo = join(work, "registry-fifo");
    execFileSync("mkfifo", [fifo]);
    const factory = join(work, "fifo-factory.yaml");
    await writeFile(factory, "buildcache: oci://127.0.0.1:5000/hpc/bc\ncredentials: registry-fifo\n");
    // The test's own timeout is the "forever": the old reader blocked on the FIFO until it.
    const result = await runCli(["clean", "--factory", factory]);
    expect(result.exitCode).toBe(2);
    expect(result.all).toContain(`credentials file ${fifo} is a FIFO, not a regular file`);
  });
});

describe("ssh engines that misbehave", () => {
  it.each([
    ["never answers", () => portOf(silent)],
    ["answers garbage", () => portOf(garbage)],
  ])("an engine that %s: the run ends with its message, exit 1, no stack trace", async (_, port) => {
    const id = join(work, `id-${port()}`);
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", id]);
    const factory = join(work, `misbehaving-${port()}.yaml`);
    await writeFile(
      factory,
      `engines:\n  - url: ssh://b@127.0.0.1:${port()}\n    name: odd\n    identity: ${id}\n    known_hosts: []\n`.replace(
        "known_hosts: []",
        `known_hosts: ${join(work, "empty_known_hosts")}`,
      ),
    );
    await writeFile(join(work, "empty_known_hosts"), "");
    const result = await runCli(["clean", "--factory", factory]);
    expect(result.exitCode).toBe(1);
    expect(result.all).toMatch(/stack-factory: engine odd: no Docker engine answers at ssh:\/\/b@127\.0\.0\.1:\d+: /);
    expect(result.all).not.toMatch(/internal error|Unhandled 'error' event|\n\s+at /);
  });

  it("the first SIGTERM ends a command waiting on an engine", async () => {
    const child = execa("node", [CLI, "clean", "--engine", `ssh://b@127.0.0.1:${portOf(silent)}`], {
      reject: false,
      all: true,
      env: { CI: "true" },
    });
    // The command is waiting for the handshake once it has connected to the silent server.
    const before = accepted.length;
    while (accepted.length === before) await new Promise((resolve) => setTimeout(resolve, 50));
    child.kill("SIGTERM");
    const result = await child;
    expect(result.exitCode === 130 || result.signal === "SIGTERM").toBe(true);
  });
});

describe("DOCKER_HOST", () => {
  it("DOCKER_HOST=ssh://… with an unknown host key is refused with the fingerprint, as --engine is", async () => {
    const home = join(work, "home");
    await mkdir(join(home, ".ssh"), { recursive: true });
    const env = { HOME: home, DOCKER_HOST: SSH_URL, SSH_AUTH_SOCK: "" };
    const viaEnv = await runCli(["clean"], env);
    expect(viaEnv.exitCode).toBe(1);
    expect(viaEnv.all).toMatch(
      /refused DOCKER_HOST=ssh:\/\/.*: the host key of \[127\.0\.0\.1\]:2222 \(ssh-\S+ SHA256:[A-Za-z0-9+/]+\)/,
    );
    expect(viaEnv.all).toMatch(/hint: check that fingerprint .* ssh-keyscan -p 2222 127\.0\.0\.1/);
    const viaFlag = await runCli(["clean", "--engine", SSH_URL], { HOME: home, SSH_AUTH_SOCK: "" });
    expect(viaFlag.exitCode).toBe(1);
    const fingerprint = /SHA256:[A-Za-z0-9+/]+/.exec(viaEnv.all ?? "")?.[0];
    expect(fingerprint).toBeDefined();
    expect(viaFlag.all).toContain(fingerprint);
  });

  it("DOCKER_HOST=tcp://… to another host without DOCKER_TLS_VERIFY is refused, exit 2", async () => {
    const result = await runCli(["clean"], { DOCKER_HOST: "tcp://192.0.2.1:2375" });
    expect(result.exitCode).toBe(2);
    expect(result.all).toMatch(/tcp:\/\/192\.0\.2\.1 without TLS/);
  });
});
