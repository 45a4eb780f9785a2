import { execa } from "execa";

/**
 * Containers the engine itself says it created for a run (its `create` events for the run's label since `since`,
 * in seconds since the epoch), not what the factory says it did.
 */
export async function containersCreated(runId: string, since: number): Promise<string[]> {
  const { stdout } = await execa("docker", [
    "events",
    "--since",
    String(since),
    "--until",
    String(Math.floor(Date.now() / 1000) + 1),
    "--filter",
    "type=container",
    "--filter",
    "event=create",
    "--filter",
    `label=stack-factory.run=${runId}`,
    "--format",
    "{{.Actor.ID}}",
  ]);
  return stdout.split("\n").filter((l) => l !== "");
}
