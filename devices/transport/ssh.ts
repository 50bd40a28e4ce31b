/**
 * SSH transport on the `ssh2` library: private keys and ssh-agent, ~/.ssh/config host aliases (parsed with the
 * `ssh-config` library), known_hosts verification (a changed host key is refused; first contact needs
 * `acceptNew`), connect timeout and keepalive. Commands run over exec channels, their argv quoted for the remote
 * shell; the agent's byte stream is one exec channel's stdin/stdout.
 */
import { existsSync, readFileSync } from "node:fs";
import { homedir, userInfo } from "node:os";
import { join } from "node:path";
import SSHConfig from "ssh-config";
import ssh2, {
  type AuthenticationType,
  type ClientChannel,
  type ConnectConfig,
  type NextAuthHandler,
} from "ssh2";
import { AuthError, ConnectError, RegistryError } from "../errors.js";
import {
  type Channel,
  type ExecOptions,
  type ExecResult,
  execVia,
  shellJoin,
  type Transport,
} from "./channel.js";
import { addKnownHost, hostKeyName, patternsMatch, readKnownHosts, verifyHostKey } from "./known-hosts.js";
import { type Attempt, explainFailure } from "./ssh-failure.js";

// ssh2 is CommonJS: Node's ESM loader gives its exports on the default import only
const { Client, utils } = ssh2;
type Client = InstanceType<typeof Client>;

export interface SshOptions {
  /** Host name, address, or a Host alias of the ssh config file. */
  host: string;
  user?: string;
  port?: number;
  /** Private key files to offer (default: IdentityFile from the ssh config, else ~/.ssh/id_ed25519, id_ecdsa, id_rsa). */
  identityFiles?: string[];
  /** Passphrase for encrypted keys (prefer ssh-agent). */
  passphrase?: string;
  /** ssh-agent socket (default $SSH_AUTH_SOCK); false to not use an agent. */
  agent?: string | false;
  /** known_hosts file (default UserKnownHostsFile from the config, else ~/.ssh/known_hosts). */
  knownHostsFile?: string;
  /** Record the host key on first contact. A changed key is refused regardless. */
  acceptNew?: boolean;
  /** ssh config file (default ~/.ssh/config); false to ignore it. */
  configFile?: string | false;
  /** Connect (handshake + auth) timeout, ms (default ConnectTimeout from the config, else 20 s). */
  connectTimeoutMs?: number;
  /** Keepalive interval, ms (default ServerAliveInterval, else 15 s); 0 disables. */
  keepaliveIntervalMs?: number;
  keepaliveCountMax?: number;
  /** The board's node command (default ["node"]). */
  node?: string[];
  /** The agent home on the board (default ".qat-agent", relative to the login folder). */
  home?: string;
  /** The device's name, for messages. */
  device?: string;
  /** The device secret the agent's handshake proves (the registry's; `qat device setup` made it). */
  secret?: Uint8Array;
}

/** What the connection will use after reading the ssh config. */
export interface ResolvedSsh {
  host: string;
  hostName: string;
  user: string;
  port: number;
  identityFiles: string[];
  identityFromConfig: boolean;
  knownHostsFile: string;
  hostKeyAlias?: string;
  acceptNew: boolean;
  connectTimeoutMs: number;
  keepaliveIntervalMs: number;
  keepaliveCountMax: number;
}

function expand(path: string, tokens: Record<string, string>): string {
  let p = path.replace(/%([%dhru])/g, (_, c: string) => (c === "%" ? "%" : (tokens[c] ?? "")));
  if (p === "~" || p.startsWith("~/")) p = join(homedir(), p.slice(1));
  return p;
}

const first = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v);

/** Merge explicit options, the ssh config's Host entries and defaults. */
export function resolveSsh(opts: SshOptions): ResolvedSsh {
  let cfg: Record<string, string | string[]> = {};
  const cfgFile =
    opts.configFile === false ? undefined : (opts.configFile ?? join(homedir(), ".ssh", "config"));
  if (cfgFile && existsSync(cfgFile)) {
    try {
      cfg = SSHConfig.parse(readFileSync(cfgFile, "utf8")).compute(opts.host);
    } catch (e) {
      throw new RegistryError("bad-ssh-config", `cannot parse ${cfgFile}: ${(e as Error).message}`, {
        device: opts.device,
        hint: "fix the file, or pass configFile: false",
      });
    }
  }
  // compute() keys follow the file's spelling; OpenSSH keywords are case-insensitive
  const c: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(cfg)) c[k.toLowerCase()] = v;
  if (c.proxyjump || c.proxycommand) {
    throw new RegistryError(
      "ssh-proxy",
      `the ssh config of '${opts.host}' uses ProxyJump/ProxyCommand, which qat does not support`,
      {
        device: opts.device,
        hint: "make the board reachable directly, or forward a local port (ssh -L) and add ssh://user@127.0.0.1:PORT",
      },
    );
  }
  const hostName = first(c.hostname) ?? opts.host;
  const user = opts.user ?? first(c.user) ?? userInfo().username;
  const port = opts.port ?? Number(first(c.port) ?? 22);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new RegistryError("bad-port", `port '${String(first(c.port))}' of '${opts.host}' is not 1–65535`, {
      device: opts.device,
    });
  }
  const tokens = { d: homedir(), u: userInfo().username, h: hostName, r: user };
  const cfgIds = c.identityfile ? (Array.isArray(c.identityfile) ? c.identityfile : [c.identityfile]) : [];
  const identityFiles = (opts.identityFiles ?? cfgIds).map((p) => expand(p, tokens));
  const defaults = ["id_ed25519", "id_ecdsa", "id_rsa"]
    .map((n) => join(homedir(), ".ssh", n))
    .filter((p) => existsSync(p));
  const strict = (first(c.stricthostkeychecking) ?? "").toLowerCase();
  const secs = (v: string | string[] | undefined): number | undefined =>
    v === undefined ? undefined : Number(first(v)) * 1000;
  return {
    host: opts.host,
    hostName,
    user,
    port,
    identityFiles: opts.identityFiles || identityFiles.length ? identityFiles : defaults,
    identityFromConfig: !opts.identityFiles && cfgIds.length > 0,
    knownHostsFile:
      opts.knownHostsFile ??
      expand(first(c.userknownhostsfile)?.split(/\s+/)[0] ?? "~/.ssh/known_hosts", tokens),
    hostKeyAlias: first(c.hostkeyalias),
    acceptNew: opts.acceptNew ?? (strict === "accept-new" || strict === "no" || strict === "off"),
    connectTimeoutMs: opts.connectTimeoutMs ?? secs(c.connecttimeout) ?? 20_000,
    keepaliveIntervalMs: opts.keepaliveIntervalMs ?? secs(c.serveraliveinterval) ?? 15_000,
    keepaliveCountMax: opts.keepaliveCountMax ?? Number(first(c.serveralivecountmax) ?? 3),
  };
}

const HOST_KEY_ALGOS = [
  "ssh-ed25519",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "rsa-sha2-512",
  "rsa-sha2-256",
  "ssh-rsa",
] as const;

export class SshTransport implements Transport {
  readonly kind = "ssh" as const;
  readonly label: string;
  readonly node: string[];
  readonly home: string;
  /** The device secret (agent/auth.ts); ssh authenticates the channel, the agent still checks who is on it. */
  secret?: Uint8Array;
  private readonly channels = new Set<ClientChannel>();

  constructor(
    private readonly conn: Client,
    readonly resolved: ResolvedSsh,
    opts: SshOptions,
  ) {
    this.label = opts.device ?? `ssh://${resolved.user}@${resolved.hostName}:${resolved.port}`;
    this.node = opts.node ?? ["node"];
    this.home = opts.home ?? ".qat-agent";
    this.secret = opts.secret;
  }

  spawn(argv: string[]): Promise<Channel> {
    return new Promise((resolve, reject) => {
      this.conn.exec(shellJoin(argv), (err, stream) => {
        if (err) {
          reject(
            new ConnectError("exec-failed", `cannot start a command: ${err.message}`, {
              device: this.label,
              cause: err,
            }),
          );
          return;
        }
        this.channels.add(stream);
        const exited = new Promise<{ code: number | null; signal: string | null }>((res) => {
          let status: { code: number | null; signal: string | null } = { code: null, signal: null };
          stream.once("exit", (code: number | null, signal?: string) => {
            status = { code: typeof code === "number" ? code : null, signal: signal ?? null };
          });
          stream.once("close", () => {
            this.channels.delete(stream);
            res(status);
          });
        });
        resolve({
          stdin: stream,
          stdout: stream,
          stderr: stream.stderr,
          exited,
          kill: () => {
            try {
              stream.signal("KILL");
            } catch {
              // the server may not support signals
            }
            stream.close();
          },
        });
      });
    });
  }

  exec(argv: string[], opts?: ExecOptions): Promise<ExecResult> {
    return execVia(this, argv, opts);
  }

  async close(): Promise<void> {
    await new Promise<void>((res) => {
      this.conn.once("close", () => res());
      this.conn.end();
      setTimeout(res, 5000).unref();
    });
  }

  abort(): void {
    this.conn.destroy();
  }
}

/** A connection attempt with everything the ssh config resolved. */
type SshAttempt = Attempt & { r: ResolvedSsh };

interface KeyOffer {
  file: string;
  key: ReturnType<typeof utils.parseKey>;
}

/** The private keys to offer; unreadable default keys are passed over, named ones are an error. */
function loadKeys(a: SshAttempt, opts: SshOptions): KeyOffer[] {
  const offers: KeyOffer[] = [];
  for (const file of a.r.identityFiles) {
    let data: Buffer;
    try {
      data = readFileSync(file);
    } catch (e) {
      if (opts.identityFiles || a.r.identityFromConfig) {
        throw new AuthError(
          "key-unreadable",
          `cannot read the private key ${file}: ${(e as Error).message}`,
          {
            device: a.device,
            hint: "check the key path (--key) or the IdentityFile in ~/.ssh/config",
          },
        );
      }
      continue;
    }
    const parsed = utils.parseKey(data, opts.passphrase);
    const key = Array.isArray(parsed) ? (parsed[0] as ReturnType<typeof utils.parseKey>) : parsed;
    if (key instanceof Error) {
      a.skipped.push(
        `${file} (${/encrypted/i.test(key.message) ? "encrypted: load it into ssh-agent or give its passphrase" : key.message})`,
      );
      continue;
    }
    offers.push({ file, key });
  }
  return offers;
}

/** Offer ssh-agent first, then each key, recording what was tried for the error message. */
function authHandlerFor(
  a: SshAttempt,
  offers: KeyOffer[],
  agentSock: string | undefined,
): ConnectConfig["authHandler"] {
  const user = a.r.user;
  const methods: (() => unknown)[] = [];
  if (agentSock) {
    methods.push(() => {
      a.tried.push(`ssh-agent (${agentSock})`);
      return { type: "agent" as const, username: user, agent: agentSock };
    });
  }
  for (const o of offers) {
    const type = (o.key as { type?: string }).type ?? "key";
    methods.push(() => {
      a.tried.push(`${o.file} [${type}]`);
      return { type: "publickey" as const, username: user, key: o.key as Exclude<KeyOffer["key"], Error> };
    });
  }
  const handler = (
    _left: AuthenticationType[] | null,
    _partial: boolean | null,
    next: NextAuthHandler,
  ): void => {
    const m = methods.shift();
    next((m ? m() : false) as Parameters<NextAuthHandler>[0]);
  };
  return handler as unknown as ConnectConfig["authHandler"];
}

/**
 * Host key checking against known_hosts (recording a new key when acceptNew), with the algorithms of keys
 * known_hosts already has for this host asked for first.
 */
function hostKeyCheck(
  a: SshAttempt,
): Pick<ConnectConfig, "hostVerifier"> & { serverHostKey: (typeof HOST_KEY_ALGOS)[number][] } {
  const entries = readKnownHosts(a.r.knownHostsFile);
  const knownTypes = new Set(
    entries.filter((e) => e.marker === "" && patternsMatch(e.patterns, a.knownName)).map((e) => e.keyType),
  );
  const serverHostKey = [...HOST_KEY_ALGOS].sort(
    (x, y) => Number(knownTypes.has(algoType(y))) - Number(knownTypes.has(algoType(x))),
  );
  const hostVerifier = (key: Buffer): boolean => {
    const presented = Buffer.from(key);
    a.presented = presented;
    a.verdict = verifyHostKey(entries, a.knownName, presented);
    if (a.verdict.status === "ok") return true;
    if (a.verdict.status === "unknown" && a.r.acceptNew) {
      addKnownHost(a.r.knownHostsFile, a.knownName, presented);
      return true;
    }
    return false;
  };
  return { hostVerifier, serverHostKey };
}

/** Connect, verify the host key, authenticate. Typed errors for each way this fails. */
export async function connectSsh(opts: SshOptions): Promise<SshTransport> {
  const r = resolveSsh(opts);
  const where = `${r.user}@${r.hostName}:${r.port}`;
  const device = opts.device ?? `ssh://${where}`;
  const knownName = hostKeyName(r.hostKeyAlias ?? r.hostName, r.port);
  const a: SshAttempt = { r, where, device, knownName, tried: [], skipped: [] };
  const offers = loadKeys(a, opts);
  const agentSock = opts.agent === false ? undefined : (opts.agent ?? process.env.SSH_AUTH_SOCK);
  if (!offers.length && !agentSock) {
    throw new AuthError(
      "no-key",
      `no private key to offer to ${where}${a.skipped.length ? `; unusable: ${a.skipped.join(", ")}` : ""}`,
      {
        device,
        hint: "pass a key (--key ~/.ssh/id_ed25519), set IdentityFile in ~/.ssh/config, or start ssh-agent",
      },
    );
  }
  const { hostVerifier, serverHostKey } = hostKeyCheck(a);
  const conn = new Client();
  const config: ConnectConfig = {
    host: r.hostName,
    port: r.port,
    username: r.user,
    readyTimeout: r.connectTimeoutMs,
    keepaliveInterval: r.keepaliveIntervalMs,
    keepaliveCountMax: r.keepaliveCountMax,
    hostVerifier,
    authHandler: authHandlerFor(a, offers, agentSock),
    algorithms: {
      serverHostKey: serverHostKey as unknown as NonNullable<ConnectConfig["algorithms"]>["serverHostKey"],
    },
  };
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error & { level?: string; code?: string }): void => {
      conn.removeListener("ready", onReady);
      conn.on("error", () => {
        // the first error decided; the ones that follow a destroyed connection say nothing new
      });
      conn.destroy();
      reject(explainFailure(a, err));
    };
    const onReady = (): void => {
      conn.removeListener("error", onError);
      conn.on("error", () => {
        // later errors end the channels; the agent client reports them
      });
      resolve();
    };
    conn.once("ready", onReady);
    conn.once("error", onError);
    conn.connect(config);
  });
  return new SshTransport(conn, r, { ...opts, device });
}

function algoType(algo: string): string {
  return algo.startsWith("rsa-sha2-") ? "ssh-rsa" : algo;
}
