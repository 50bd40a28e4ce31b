/** Shared by the authentication tests: the files of a board's folder, and the wrong-secret check. */
import { readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { expect } from "vitest";
import { AuthError } from "../../devices/errors.js";
import { connectAgent } from "../../devices/setup.js";
import type { Transport } from "../../devices/transport/channel.js";

/** Every file under `root` as "path size mode" (octal), sorted: a write, a new file or a chmod shows. */
export function boardFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else {
        const st = statSync(p);
        out.push(`${relative(root, p)} ${st.size} ${(st.mode & 0o777).toString(8)}`);
      }
    }
  };
  walk(root);
  return out.sort();
}

/** Connect with a wrong device secret: the error must name the board, say what failed and how to fix it (exit 2). */
export async function expectWrongSecret(t: Transport, device: string): Promise<void> {
  const err = await connectAgent(t).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(AuthError);
  const e = err as AuthError;
  expect([e.code, e.exitCode, e.device]).toEqual(["agent-auth-failed", 2, device]);
  expect(e.message).toMatch(
    new RegExp(`^${device}: (.*: )?the board could not prove it holds this device's secret`),
  );
  expect(e.hint).toMatch(new RegExp(`^run \`qat device setup ${device}\` again`));
}
