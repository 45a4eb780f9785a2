import { connectEngine, removeByLabel, removeDeadRuns } from "../../docker/index.js";

/** Remove containers that factory runs left behind: those of dead runs, or with --all every factory container. */
export async function cleanCommand(flags: { all?: boolean }): Promise<number> {
  const engine = await connectEngine();
  const removed = flags.all === true ? await removeByLabel(engine, {}) : await removeDeadRuns(engine);
  process.stdout.write(removed.length === 0 ? "nothing to remove\n" : `removed ${removed.length} container(s)\n`);
  return 0;
}
