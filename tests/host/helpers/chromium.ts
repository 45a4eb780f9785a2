/**
 * Debian's chromium, headless, driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`: the browser
 * reads commands on fd 3 and writes answers and events on fd 4, each message JSON ended by a NUL byte). Node 20 has
 * no WebSocket client; plain streams do. Every network request the page makes is recorded.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable, Writable } from "node:stream";

interface Message {
  id?: number;
  method?: string;
  params?: Record<string, unknown>;
  result?: Record<string, unknown>;
  error?: { message: string };
  sessionId?: string;
}

export interface PageVisit {
  /** Every URL the page requested (Network.requestWillBeSent), the document itself included. */
  requests: string[];
  /** Runs an expression in the page and returns its value (JSON-serialisable). */
  evaluate<T>(expression: string): Promise<T>;
  /** A PNG of the page, full length. */
  screenshot(): Promise<Buffer>;
}

export const CHROMIUM = process.env["CHROMIUM"] ?? "/usr/bin/chromium";

/** Opens `url` in a fresh headless chromium, waits for its load event, hands the page to `use`, then closes all. */
export async function visitPage<T>(url: string, use: (page: PageVisit) => Promise<T>): Promise<T> {
  const profile = await mkdtemp(join(tmpdir(), "sf-chromium-"));
  const browser = spawn(
    CHROMIUM,
    [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-extensions",
      `--user-data-dir=${profile}`,
      "--remote-debugging-pipe",
      "about:blank",
    ],
    { stdio: ["ignore", "ignore", "pipe", "pipe", "pipe"] },
  );
  const stderr: Buffer[] = [];
  browser.stderr?.on("data", (c: Buffer) => stderr.push(c));
  try {
    const cdp = new Cdp(browser);
    const { targetId } = (await cdp.send("Target.createTarget", { url: "about:blank" })) as { targetId: string };
    const { sessionId } = (await cdp.send("Target.attachToTarget", { targetId, flatten: true })) as {
      sessionId: string;
    };
    const requests: string[] = [];
    cdp.on((m) => {
      if (m.sessionId === sessionId && m.method === "Network.requestWillBeSent")
        requests.push(String((m.params?.["request"] as { url?: string } | undefined)?.url));
    });
    await cdp.send("Network.enable", {}, sessionId);
    await cdp.send("Page.enable", {}, sessionId);
    const loaded = cdp.waitFor((m) => m.sessionId === sessionId && m.method === "Page.loadEventFired");
    await cdp.send("Page.navigate", { url }, sessionId);
    await loaded;
    return await use({
      requests,
      evaluate: async <V>(expression: string) => {
        const answer = (await cdp.send("Runtime.evaluate", { expression, returnByValue: true }, sessionId)) as {
          result: { value: V };
          exceptionDetails?: { text: string };
        };
        if (answer.exceptionDetails !== undefined) throw new Error(`in the page: ${answer.exceptionDetails.text}`);
        return answer.result.value;
      },
      screenshot: async () => {
        const shot = (await cdp.send(
          "Page.captureScreenshot",
          { format: "png", captureBeyondViewport: true },
          sessionId,
        )) as {
          data: string;
        };
        return Buffer.from(shot.data, "base64");
      },
    });
  } catch (error) {
    throw new Error(`chromium: ${error instanceof Error ? error.message : String(error)}\n${Buffer.concat(stderr)}`);
  } finally {
    browser.kill("SIGKILL");
    await new Promise((done) => (browser.exitCode !== null ? done(undefined) : browser.once("exit", done)));
    await rm(profile, { recursive: true, force: true });
  }
}

/** The DevTools protocol over the browser's pipe: numbered commands, answers matched by id, events to listeners. */
class Cdp {
  private next = 1;
  private buffer = Buffer.alloc(0);
  private readonly pending = new Map<number, { resolve: (m: Message) => void; reject: (e: Error) => void }>();
  private readonly listeners: ((m: Message) => void)[] = [];
  private readonly input: Writable;

  constructor(browser: ChildProcess) {
    this.input = browser.stdio[3] as Writable;
    const output = browser.stdio[4] as Readable;
    output.on("data", (chunk: Buffer) => this.receive(chunk));
    browser.once("exit", (code) => {
      for (const p of this.pending.values()) p.reject(new Error(`the browser exited (${code}) before answering`));
      this.pending.clear();
    });
  }

  send(method: string, params: Record<string, unknown>, sessionId?: string): Promise<Record<string, unknown>> {
    const id = this.next++;
    const message = { id, method, params, ...(sessionId === undefined ? {} : { sessionId }) };
    return new Promise((resolve, reject) => {
      this.pending.set(id, {
        resolve: (m) =>
          m.error === undefined ? resolve(m.result ?? {}) : reject(new Error(`${method}: ${m.error.message}`)),
        reject,
      });
      this.input.write(`${JSON.stringify(message)}\0`);
    });
  }

  on(listener: (m: Message) => void): void {
    this.listeners.push(listener);
  }

  waitFor(match: (m: Message) => boolean): Promise<Message> {
    return new Promise((resolve) => this.on((m) => match(m) && resolve(m)));
  }

  private receive(chunk: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    for (let end = this.buffer.indexOf(0); end >= 0; end = this.buffer.indexOf(0)) {
      const message = JSON.parse(this.buffer.subarray(0, end).toString("utf8")) as Message;
      this.buffer = this.buffer.subarray(end + 1);
      if (message.id !== undefined) {
        this.pending.get(message.id)?.resolve(message);
        this.pending.delete(message.id);
      } else {
        for (const l of this.listeners) l(message);
      }
    }
  }
}
