/**
 * Why an SSH connection failed, as the typed error a user can act on: a changed, revoked or unknown host key (with
 * the ssh-keygen line that fixes it), refused keys (with what was tried), a timeout, a refused port, an unknown
 * host name.
 */
import { AuthError, ConnectError, HostKeyChangedError, UnknownHostKeyError } from "../errors.js";
import { fingerprint, keyTypeOf, type verifyHostKey } from "./known-hosts.js";

/** What a connection attempt knows, for explaining its failure. */
export interface Attempt {
  r: {
    user: string;
    hostName: string;
    port: number;
    knownHostsFile: string;
    acceptNew: boolean;
    connectTimeoutMs: number;
  };
  where: string;
  device: string;
  knownName: string;
  /** Auth methods offered so far, and keys that could not be used. */
  tried: string[];
  skipped: string[];
  /** The host key the server presented, and what known_hosts said of it. */
  verdict?: ReturnType<typeof verifyHostKey>;
  presented?: Buffer;
}

/** A refused host key, as known_hosts judged it; undefined when the host key was not the problem. */
function hostKeyError(a: Attempt): Error | undefined {
  const { r, verdict, presented, knownName, device } = a;
  if (!verdict || verdict.status === "ok" || !presented || (verdict.status === "unknown" && r.acceptNew)) {
    return undefined;
  }
  const fp = fingerprint(presented);
  if (verdict.status === "changed") {
    return new HostKeyChangedError(
      "host-key-changed",
      `the host key of ${knownName} has CHANGED (it presented ${keyTypeOf(presented)} ${fp}; ${r.knownHostsFile} line ${verdict.line} records ${verdict.knownTypes.join(", ")}). Someone may be intercepting the connection, or the board was reinstalled; refusing to connect`,
      {
        device,
        hint: `if the board was reinstalled, remove the old key with: ssh-keygen -R '${knownName}' -f ${r.knownHostsFile}`,
      },
    );
  }
  if (verdict.status === "revoked") {
    return new HostKeyChangedError(
      "host-key-revoked",
      `the host key of ${knownName} (${fp}) is marked @revoked in ${r.knownHostsFile}`,
      {
        device,
        hint: "do not connect to this board until its host key is replaced",
      },
    );
  }
  return new UnknownHostKeyError(
    "host-key-unknown",
    `${knownName} is not in ${r.knownHostsFile} (it presented ${keyTypeOf(presented)} ${fp})`,
    {
      device,
      hint: "check the fingerprint on the board (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub), then connect once with --accept-new",
    },
  );
}

/** The typed error for a failed connection: host key, authentication, timeout, refused, unknown host. */
export function explainFailure(a: Attempt, err: Error & { level?: string; code?: string }): Error {
  const hostKey = hostKeyError(a);
  if (hostKey) return hostKey;
  const { r, where, device } = a;
  if (err.level === "client-authentication") {
    return new AuthError(
      "auth-failed",
      `${where} refused every key offered (tried: ${a.tried.join("; ") || "none"}${a.skipped.length ? `; unusable: ${a.skipped.join(", ")}` : ""})`,
      {
        device,
        hint: `add your public key to ~${r.user}/.ssh/authorized_keys on the board (ssh-copy-id -i KEY.pub ${r.user}@${r.hostName}), or pass the right key with --key`,
        cause: err,
      },
    );
  }
  if (err.level === "client-timeout") {
    return new ConnectError(
      "timeout",
      `no SSH handshake with ${r.hostName}:${r.port} within ${r.connectTimeoutMs} ms`,
      {
        device,
        hint: "check that the board is on and reachable, or raise the connect timeout",
        cause: err,
      },
    );
  }
  if (err.code === "ECONNREFUSED") {
    return new ConnectError("refused", `nothing accepts connections on ${r.hostName}:${r.port}`, {
      device,
      hint: "check that sshd runs on the board and the port is right",
      cause: err,
    });
  }
  if (err.code === "ENOTFOUND" || err.code === "EAI_AGAIN") {
    return new ConnectError("unknown-host", `cannot resolve '${r.hostName}'`, {
      device,
      hint: "check the name, or add a Host entry with HostName to ~/.ssh/config",
      cause: err,
    });
  }
  return new ConnectError("connect-failed", `cannot connect to ${where}: ${err.message}`, {
    device,
    cause: err,
  });
}
