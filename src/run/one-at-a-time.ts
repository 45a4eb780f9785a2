import { setTimeout as sleep } from "node:timers/promises";

/**
 * One at a time, in call order: each call of `run` starts once the call before it has settled, or once it has waited
 * `maxWaitMs` for it (a call that hangs delays the next ones by that much, never forever). A failed call does not
 * stop the next one; its caller alone gets the failure.
 */
export type OneAtATime = <T>(fn: () => Promise<T>) => Promise<T>;

export function oneAtATime(maxWaitMs: number): OneAtATime {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(fn: () => Promise<T>): Promise<T> => {
    const waited = new AbortController();
    const turn = Promise.race([tail, sleep(maxWaitMs, undefined, { ref: false, signal: waited.signal })]).finally(() =>
      waited.abort(),
    );
    const result = turn.catch(() => undefined).then(fn);
    tail = result.catch(() => undefined);
    return result;
  };
}
