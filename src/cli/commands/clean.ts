import { connectEngine, removeByLabel, removeDeadRuns } from "../../docker/index.js";

/**
 * Remove containers that factory runs left behind: those of dead runs; with --run those of one run (also kept
 * ones); with --all every factory container.
 */
export async function cleanCommand(flags: { all?: boolean; run?: string }): Promise<number> {
  const engine = await connectEngine();
  const removed =
    flags.run !== undefined
      ? await removeByLabel(engine, { run: String(flags.run) })
      : flags.all === true
        ? await removeByLabel(engine, {})
        : await removeDeadRuns(engine);
  process.stdout.write(removed.length === 0 ? "nothing to remove\n" : `removed ${removed.length} container(s)\n`);
  return 0;
}
