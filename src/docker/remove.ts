import type Docker from "dockerode";
import { dockerError, statusCodeOf } from "./failure.js";

/**
 * Removes a container (force, with its anonymous volumes). A container that is already gone (404) or
 * already being removed (409) counts as removed.
 */
export async function removeContainer(container: Docker.Container): Promise<void> {
  try {
    await container.remove({ force: true, v: true });
  } catch (error) {
    const status = statusCodeOf(error);
    if (status === 404 || status === 409) return;
    throw dockerError(`removing container ${container.id.slice(0, 12)}`, error);
  }
}
