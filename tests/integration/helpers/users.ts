import { execa } from "execa";

/**
 * An ordinary user a test runs the factory as when it runs as root, with exactly the supplementary groups it needs.
 * Each need has a name of its own, and `ensureUser` adjusts the user to it whoever made it first (another test, an
 * earlier run, a script), so the tests pass in any order.
 */
export interface TestUser {
  name: string;
  /** The uid for a new user; an existing one keeps its own (ensureUser returns it). */
  uid: number;
  /** Exactly these supplementary groups (made when missing); none for an empty list. */
  groups: string[];
}

/** Makes `user` or adjusts it to its groups; returns its uid and primary gid. Root only. */
export async function ensureUser(user: TestUser): Promise<{ uid: number; gid: number }> {
  for (const group of user.groups) await execa("groupadd", ["--force", group]);
  if ((await execa("id", ["-u", user.name], { reject: false })).exitCode !== 0) {
    await execa("useradd", ["--uid", String(user.uid), "--user-group", "--no-create-home", user.name]);
  }
  await execa("usermod", ["-G", user.groups.join(","), user.name]);
  const { stdout: groups } = await execa("id", ["-Gn", user.name]);
  const missing = user.groups.filter((g) => !groups.split(" ").includes(g));
  if (missing.length > 0) throw new Error(`test user ${user.name}: not in ${missing.join(", ")} after usermod`);
  const id = async (flag: string) => Number((await execa("id", [flag, user.name])).stdout);
  return { uid: await id("-u"), gid: await id("-g") };
}
