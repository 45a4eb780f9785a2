import { mkdir, open, readFile, unlink } from "node:fs/promises";
import { hostname } from "node:os";
import { dirname } from "node:path";
import { isProcessAlive } from "../docker/index.js";
import { CancelledError } from "../errors.js";

/** Who holds a lock, as written into the lock file. */
interface Holder {
  pid: number;
  host: string;
  since: string;
}

/**
 * An exclusive lock between processes of this host (and containers' owners sharing the cache): a file created with
 * O_EXCL. A lock whose holder process is gone (same host, pid not alive) is stale and taken over, so a crashed run
 * never blocks the next one. Waits, polling, until acquired or `signal` aborts.
 */
export async function acquireLock(path: string, options: { signal?: AbortSignal; pollMs?: number; onWait?: (holder: string) => void } = {}): Promise<() => Promise<void>> {
  await mkdir(dirname(path), { recursive: true });
  const me: Holder = { pid: process.pid, host: hostname(), since: new Date().toISOString() };
  let told = false;
  for (;;) {
    if (options.signal?.aborted) throw new CancelledError();
    try {
      const handle = await open(path, "wx");
      await handle.writeFile(JSON.stringify(me));
      await handle.close();
      return async () => {
        await unlink(path).catch(() => undefined);
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    const holder = await readHolder(path);
    if (holder !== undefined && holder.host === me.host && !isProcessAlive(holder.pid)) {
      await unlink(path).catch(() => undefined);
      continue;
    }
    if (!told && options.onWait !== undefined) {
      options.onWait(holder === undefined ? "another process" : `pid ${holder.pid} on ${holder.host}`);
      told = true;
    }
    await sleep(options.pollMs ?? 200, options.signal);
  }
}

/** Run `action` while holding the lock at `path`. */
export async function withLock<T>(path: string, action: () => Promise<T>, options: Parameters<typeof acquireLock>[1] = {}): Promise<T> {
  const release = await acquireLock(path, options);
  try {
    return await action();
  } finally {
    await release();
  }
}

async function readHolder(path: string): Promise<Holder | undefined> {
  try {
    const parsed = JSON.parse(await readFile(path, "utf8")) as Partial<Holder>;
    return typeof parsed.pid === "number" && typeof parsed.host === "string" ? (parsed as Holder) : undefined;
  } catch {
    // Being written right now, or just removed: look again on the next poll.
    return undefined;
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}
