import type Docker from "dockerode";
import { dockerError, statusCodeOf } from "./failure.js";

/**
 * Removes a container (force, with its anonymous volumes) and returns once it is gone. A container that is
 * already gone (404) counts as removed; one already being removed (409) is waited for, so that callers never
 * see it listed afterwards.
 */
export async function removeContainer(container: Docker.Container, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await container.remove({ force: true, v: true });
      return;
    } catch (error) {
      const status = statusCodeOf(error);
      if (status === 404) return;
      if (status !== 409 || Date.now() > deadline)
        throw dockerError(`removing container ${container.id.slice(0, 12)}`, error);
    }
    // Another removal (or a start racing with it) is under way: wait for the container to go, then try again.
    await new Promise((resolve) => setTimeout(resolve, 100));
    try {
      await container.inspect();
    } catch (error) {
      if (statusCodeOf(error) === 404) return;
    }
  }
}
