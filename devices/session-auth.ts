/**
 * The host's side of the agent session handshake (agent/auth.ts): every session, on every transport, starts with
 * it — this host proves it holds the device secret and checks that the board does; neither secret is sent.
 */
import { randomBytes } from "node:crypto";
import { authProof, NONCE_BYTES, parseNonce, proofMatches } from "./agent/auth.js";
import { type OkHeader, PROTOCOL_VERSION } from "./agent/protocol.js";
import type { AgentClient } from "./client.js";
import { AgentNotInstalledError, AuthError, RemoteError } from "./errors.js";

/**
 * The session's handshake (agent/auth.ts): prove this host holds the device secret and check that the board
 * does, without either secret going on the wire. Every session starts with it; the board refuses anything else
 * before. `secret` undefined: this host has none for the board (set up before sessions were authenticated).
 */
export async function authenticate(
  client: AgentClient,
  secret: Uint8Array | undefined,
): Promise<{ refused: number }> {
  const again = `run \`qat device setup ${client.device}\` again`;
  if (!secret) {
    throw new AgentNotInstalledError(
      "no-device-secret",
      "this host has no device secret for the board (it was never set up, or set up before agent sessions were authenticated)",
      { device: client.device, hint: again, exitCode: 2 },
    );
  }
  const mine = randomBytes(NONCE_BYTES);
  let h: OkHeader<"auth.hello">;
  try {
    h = (await client.request({ t: "auth.hello", protocol: PROTOCOL_VERSION, nonce: mine.toString("hex") }))
      .header;
  } catch (e) {
    throw authError(client, e, again);
  }
  const theirs = parseNonce(h.nonce);
  const params = { protocol: Number(h.protocol), agentVersion: String(h.agentVersion) };
  if (!theirs || !proofMatches(authProof(secret, "board", mine, theirs, params), h.proof)) {
    throw new AuthError(
      "agent-auth-failed",
      "the board could not prove it holds this device's secret (a wrong device secret, or another board answers)",
      { device: client.device, hint: again, exitCode: 2 },
    );
  }
  const proof = authProof(secret, "host", mine, theirs, params).toString("hex");
  try {
    return { refused: Number((await client.request({ t: "auth.prove", proof })).header.refused) || 0 };
  } catch (e) {
    throw authError(client, e, again);
  }
}

/** A failed handshake as the user can act on it: no secret on the board, a different one, an older agent. */
function authError(client: AgentClient, e: unknown, again: string): Error {
  if (!(e instanceof RemoteError)) return e as Error;
  const opts = { device: client.device, hint: again, exitCode: 2, cause: e };
  if (e.code === "no-device-secret") {
    return new AgentNotInstalledError(
      "no-device-secret",
      "the board has no device secret (it was set up before agent sessions were authenticated)",
      opts,
    );
  }
  if (e.code === "auth-failed") {
    return new AuthError(
      "agent-auth-failed",
      "the board refused this host's proof: this host and the board hold different device secrets",
      opts,
    );
  }
  if (e.code === "unknown-request") {
    return new AgentNotInstalledError(
      "agent-outdated",
      "the board's agent predates authenticated sessions",
      opts,
    );
  }
  return e;
}
