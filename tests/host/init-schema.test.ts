import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { mkdtemp } from "node:fs/promises";
import { afterEach, describe, expect, it, vi } from "vitest";
import { initCommand } from "../../src/cli/commands/init.js";
import { schemaCommand } from "../../src/cli/commands/schema.js";
import { describeFailure } from "../../src/cli/failure.js";
import { loadStack } from "../../src/config/index.js";
import { starterName } from "../../src/render/starter-stack.js";
import { detectHostFromSystem, getMicroarch } from "../../src/targets/index.js";
import { schemaErrors } from "../helpers/stack-schema.js";

/**
 * A command as the CLI runs it (in this process: the compiled CLI is tests/host/cli.test.ts's), with what it printed
 * and the exit code the CLI's one error mapping gives.
 */
async function command(action: () => Promise<void>): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  let stdout = "";
  const spy = vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  });
  try {
    await action();
    return { exitCode: 0, stdout, stderr: "" };
  } catch (error) {
    const failure = describeFailure(error);
    return { exitCode: failure.exitCode, stdout, stderr: failure.text };
  } finally {
    spy.mockRestore();
  }
}
const cli = (name: "init" | "schema", arg?: string) =>
  command(() => (name === "init" ? initCommand(arg) : schemaCommand(arg)));

afterEach(() => vi.restoreAllMocks());

describe("stack-factory init", () => {
  it("writes a starter stack for this host that the factory's loader and the schema accept", async () => {
    const dir = join(await mkdtemp(join(tmpdir(), "sf-init-")), "new dir", "my stack");
    const run = await cli("init", dir);
    expect(run.exitCode, run.stderr).toBe(0);
    const file = join(dir, "stack.yaml");
    expect(run.stdout).toBe(`wrote ${file}\n`);
    const text = await readFile(file, "utf8");
    const stack = await loadStack(file);
    const host = await detectHostFromSystem();
    expect(stack.name).toBe("my-stack");
    expect(stack.targets).toEqual([host]);
    expect(text).toContain(`This host is ${host} (${getMicroarch(host)?.family})`);
    expect(stack.specs).toEqual(["zlib"]);
    expect(schemaErrors("stack", text)).toEqual([]);
    // The editor's line names the schema the package ships, and that file is there.
    const schemaLine = text.split("\n")[0] ?? "";
    expect(schemaLine).toBe(`# yaml-language-server: $schema=${resolve("schema/stack.schema.json")}`);
    expect((await stat(resolve("schema/stack.schema.json"))).isFile()).toBe(true);
  });

  it("refuses to overwrite a stack.yaml (exit 2) and leaves it as it was", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sf-init-"));
    await writeFile(join(dir, "stack.yaml"), "mine\n");
    const run = await cli("init", dir);
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toContain(`${join(dir, "stack.yaml")} exists already`);
    expect(await readFile(join(dir, "stack.yaml"), "utf8")).toBe("mine\n");
    await mkdir(join(dir, "sub", "stack.yaml"), { recursive: true });
    expect((await cli("init", join(dir, "sub"))).exitCode).toBe(2);
  });

  it("makes a safe stack name of any directory name", () => {
    expect(["my stack", "..x", "a..b", "-x", "ok_1.2+3", "ü", "'$(x)'"].map(starterName)).toEqual([
      "my-stack",
      "x",
      "a.b",
      "x",
      "ok_1.2+3",
      "my-stack",
      "x-",
    ]);
  });
});

describe("stack-factory schema", () => {
  it("prints the shipped schemas: the stack file's by default, the factory settings' on request", async () => {
    for (const [kind, file] of [
      [undefined, "schema/stack.schema.json"],
      ["stack", "schema/stack.schema.json"],
      ["factory", "schema/factory.schema.json"],
    ] as const) {
      const run = await cli("schema", kind);
      expect(run.exitCode, run.stderr).toBe(0);
      expect(run.stdout).toBe(await readFile(file, "utf8"));
    }
    const bad = await cli("schema", "stacks");
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toContain('expected one of stack, factory, got "stacks"');
  });
});
