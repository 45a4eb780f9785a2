import { randomBytes } from "node:crypto";
import { link, mkdir, open, stat, unlink, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { dirname } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { isProcessAlive } from "../process/alive.js";
import { CancelledError, FactoryError } from "../errors.js";

/** Who holds a lock, as written into the lock file. */
interface Holder {
  pid: number;
  host: string;
  since: string;
}

/** What was read of a lock file: its inode, its age and its holder (undefined when unreadable or empty). */
interface LockState {
  ino: number;
  mtimeMs: number;
  holder: Holder | undefined;
}

export interface LockOptions {
  signal?: AbortSignal;
  pollMs?: number;
  onWait?: (holder: string) => void;
  /** A lock file unreadable or empty for this long (by its mtime) is stale. Default 5000 ms. */
  unreadableStaleMs?: number;
}

/**
 * An exclusive lock between processes of this host (and containers' owners sharing the cache). The holder is
 * written to a private temporary file first, then hard-linked to the lock path: the link creates the lock only if
 * absent and the lock never exists without its holder. A lock whose holder process is gone (same host, pid not
 * alive), or that stays unreadable for `unreadableStaleMs`, is stale: it is renamed aside (one taker wins the
 * rename) and removed, so a crashed run never blocks the next one. Waits, polling, until acquired or `signal`
 * aborts (CancelledError); a wait for a holder of this same process ends at its release, without polling.
 */
export async function acquireLock(path: string, options: LockOptions = {}): Promise<() => Promise<void>> {
  // Holders of this process queue here first: the next is woken by the release itself, not by its next poll.
  const before = queued.get(path);
  let leave = (): void => {};
  const mine = new Promise<void>((resolve) => {
    leave = resolve;
  });
  const tail = (before ?? Promise.resolve()).then(() => mine);
  queued.set(path, tail);
  const done = (): void => {
    leave();
    if (queued.get(path) === tail) queued.delete(path);
  };
  try {
    if (before !== undefined) {
      options.onWait?.(`pid ${process.pid} on ${hostname()}`);
      await untilAborted(before, options.signal);
    }
    const release = await acquire(path, before === undefined ? options : { ...options, onWait: undefined });
    return async () => {
      try {
        await release();
      } finally {
        done();
      }
    };
  } catch (error) {
    done();
    throw lockFailure(error, path);
  }
}

/** Per lock path, the last holder or waiter of this process: it settles when that one has released (or given up). */
const queued = new Map<string, Promise<void>>();

/** `promise`, or a CancelledError once `signal` aborts; no listener left on the signal afterwards. */
async function untilAborted(promise: Promise<void>, signal: AbortSignal | undefined): Promise<void> {
  if (signal === undefined) return promise;
  if (signal.aborted) throw new CancelledError();
  let stop = (): void => {};
  const aborted = new Promise<never>((_, reject) => {
    stop = () => reject(new CancelledError());
    signal.addEventListener("abort", stop, { once: true });
  });
  try {
    await Promise.race([promise, aborted]);
  } finally {
    signal.removeEventListener("abort", stop);
  }
}

/**
 * A failure of the machine while taking a lock (a full disk, a read-only cache, no permission) as a message naming
 * the lock and the reason, exit 1: it fails the target that wanted the lock, without a stack trace.
 */
function lockFailure(error: unknown, path: string): unknown {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (error instanceof FactoryError || typeof code !== "string") return error;
  const reason = (error as Error).message.replace(/^[A-Z]+: /, "").replace(/, \w+ '.*'$/, "");
  return new FactoryError(`cannot take the host lock ${path}: ${reason} (${code})`, {
    cause: error,
    hint: code === "ENOSPC" || code === "EDQUOT" ? "free space on the cache root's file system" : undefined,
  });
}

async function acquire(path: string, options: LockOptions): Promise<() => Promise<void>> {
  await mkdir(dirname(path), { recursive: true });
  const me: Holder = { pid: process.pid, host: hostname(), since: new Date().toISOString() };
  const unreadableStaleMs = options.unreadableStaleMs ?? 5000;
  let told = false;
  for (;;) {
    if (options.signal?.aborted) throw new CancelledError();
    const ino = await tryCreate(path, me);
    if (ino !== undefined) return () => release(path, ino);
    const state = await readLock(path);
    if (state === undefined) continue; // Released meanwhile: try again at once.
    const { holder } = state;
    const stale =
      holder === undefined
        ? Date.now() - state.mtimeMs > unreadableStaleMs
        : holder.host === me.host && !isProcessAlive(holder.pid);
    if (stale) {
      await takeOver(path, state.ino);
      continue;
    }
    if (!told && options.onWait !== undefined) {
      options.onWait(holder === undefined ? "another process" : `pid ${holder.pid} on ${holder.host}`);
      told = true;
    }
    try {
      await sleep(options.pollMs ?? 200, undefined, { signal: options.signal });
    } catch (error) {
      if ((error as Error).name === "AbortError") throw new CancelledError();
      throw error;
    }
  }
}

/** Run `action` while holding the lock at `path`. */
export async function withLock<T>(path: string, action: () => Promise<T>, options: LockOptions = {}): Promise<T> {
  const release = await acquireLock(path, options);
  try {
    return await action();
  } finally {
    await release();
  }
}

/** Create the lock holding `me`; its inode, or undefined when the lock exists. */
async function tryCreate(path: string, me: Holder): Promise<number | undefined> {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(6).toString("hex")}`;
  try {
    // Inside the try: a write that fails half way (a full disk) leaves no temporary file behind.
    await writeFile(tmp, JSON.stringify(me), { flag: "wx" });
    await link(tmp, path);
    return (await stat(tmp)).ino;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return undefined;
    throw error;
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

/** Remove the lock, unless it is no longer the one this holder created. */
async function release(path: string, ino: number): Promise<void> {
  const current = await stat(path).catch(() => undefined);
  if (current?.ino === ino) await unlink(path).catch(() => undefined);
}

/** The lock's inode, mtime and holder, read through one descriptor; undefined if there is no lock. */
async function readLock(path: string): Promise<LockState | undefined> {
  let handle;
  try {
    handle = await open(path, "r");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  try {
    const info = await handle.stat();
    let holder: Holder | undefined;
    try {
      const parsed = JSON.parse(await handle.readFile("utf8")) as Partial<Holder>;
      holder = typeof parsed.pid === "number" && typeof parsed.host === "string" ? (parsed as Holder) : undefined;
    } catch {
      holder = undefined;
    }
    return { ino: info.ino, mtimeMs: info.mtimeMs, holder };
  } finally {
    await handle.close();
  }
}

/** A takeover guard older than this was left by a taker that died while holding it. */
const GUARD_STALE_MS = 10_000;

/**
 * Remove the stale lock (inode `staleIno`). Takers serialise on a guard file beside the lock (created exclusively),
 * and the holder of the guard removes the lock only if it is still that stale inode: a lock created meanwhile by a
 * taker that got there first is never touched (renaming the lock aside and back, as before, let a third process
 * create one in between, and two then held the lock). A taker that finds the guard taken goes back to acquiring.
 */
async function takeOver(path: string, staleIno: number): Promise<void> {
  const guard = `${path}.takeover`;
  try {
    await writeFile(guard, String(process.pid), { flag: "wx" });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    const info = await stat(guard).catch(() => undefined);
    if (info !== undefined && Date.now() - info.mtimeMs > GUARD_STALE_MS) await unlink(guard).catch(() => undefined);
    await sleep(5);
    return;
  }
  try {
    const current = await stat(path).catch(() => undefined);
    if (current?.ino === staleIno) await unlink(path).catch(() => undefined);
  } finally {
    await unlink(guard).catch(() => undefined);
  }
}
