import { detectHostFromSystem, MICROARCHS } from "../../targets/index.js";

export async function targetsCommand(flags: { host?: boolean; json?: boolean }): Promise<void> {
  if (flags.host === true) {
    const host = await detectHostFromSystem();
    process.stdout.write(flags.json === true ? `${JSON.stringify({ host })}\n` : `${host}\n`);
    return;
  }
  if (flags.json === true) {
    process.stdout.write(`${JSON.stringify(MICROARCHS, null, 2)}\n`);
    return;
  }
  const rows = MICROARCHS.map((m) => [
    m.name,
    m.family,
    m.vendor,
    `gcc>=${m.minGcc}`,
    m.ancestors.slice(0, 3).join(" > "),
  ]);
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  for (const r of rows)
    process.stdout.write(
      `${r
        .map((c, i) => c.padEnd(widths[i] ?? 0))
        .join("  ")
        .trimEnd()}\n`,
    );
}
