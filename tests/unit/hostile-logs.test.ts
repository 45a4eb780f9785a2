import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { buildImage } from "../../src/docker/image-build.js";
import type { Engine } from "../../src/docker/engine.js";
import { TargetLog } from "../../src/run/target-log.js";

const TEXT = "übersetzt → 完了 🚀 done\n";

/** `TEXT` as bytes, cut into one-byte chunks so that every multi-byte character is split. */
const bytewise = (text: string): Buffer[] => [...Buffer.from(text)].map((byte) => Buffer.from([byte]));

let work: string;
beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), "sf-utf8-"));
});
afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

describe("multi-byte UTF-8 split across chunks", () => {
  it("reaches the target log's lines, tail and file intact", async () => {
    const lines: string[] = [];
    const log = await TargetLog.open(join(work, "t.log"), (line) => lines.push(line));
    for (const chunk of bytewise(TEXT)) log.write(chunk);
    log.write(Buffer.from("Ø").subarray(0, 1));
    log.write(Buffer.from("Ø").subarray(1));
    await log.close();
    expect(lines).toEqual([TEXT.trimEnd(), "Ø"]);
    expect(log.lastLines()).toEqual([TEXT.trimEnd(), "Ø"]);
    expect(await readFile(join(work, "t.log"), "utf8")).toBe(`${TEXT}Ø`);
  });

  it("reaches the image build's output lines intact", async () => {
    const event = Buffer.from(`${JSON.stringify({ stream: TEXT })}\n`);
    const stream = new PassThrough();
    const engine = {
      identity: { runId: "r", pid: 1, host: "h" },
      docker: {
        buildImage: async () => stream,
        getImage: () => ({ inspect: async () => ({ Id: "sha256:0" }) }),
      },
    } as unknown as Engine;
    const lines: string[] = [];
    const building = buildImage(engine, {
      tag: "t",
      files: { Dockerfile: "FROM scratch\n" },
      onLine: (line) => lines.push(line),
    });
    for (const chunk of bytewise(event.toString("utf8"))) stream.write(chunk);
    stream.end();
    await building;
    expect(lines).toEqual([TEXT.trimEnd()]);
  });
});

describe("a target log on a full disk", () => {
  it("says once which file could not be written, and the build's lines still arrive", async () => {
    const lines: string[] = [];
    const log = await TargetLog.open("/dev/full", (line) => lines.push(line));
    log.write("first line\n");
    await new Promise((resolve) => setTimeout(resolve, 50));
    log.write("second line\n");
    await log.close();
    expect(log.failure).toMatchObject({ code: "ENOSPC" });
    expect(lines.filter((l) => l.includes("cannot write the log"))).toEqual([
      "==> [stack-factory] cannot write the log /dev/full: no space left on the device (ENOSPC); the build goes on, its output is no longer logged to the file",
    ]);
    expect(lines).toContain("first line");
    expect(lines).toContain("second line");
  });
});
