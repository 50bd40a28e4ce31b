/**
 * Errors of the device layer. Each says what went wrong, where (the device and the address or file), and what to
 * do about it. `exitCode` is what the CLI exits with: 2 for bad usage or input the user can fix, 1 otherwise.
 */
export class DeviceError extends Error {
  override name = "DeviceError";
  /** A stable machine-readable code, e.g. "host-key-changed". */
  readonly code: string;
  /** The device (registry name or URI) the error is about. */
  readonly device?: string;
  /** What the user can do. */
  readonly hint?: string;
  readonly exitCode: number;

  constructor(
    code: string,
    message: string,
    opts: { device?: string; hint?: string; exitCode?: number; cause?: unknown } = {},
  ) {
    super(
      `${opts.device ? `${opts.device}: ` : ""}${message}${opts.hint ? ` — ${opts.hint}` : ""}`,
      opts.cause === undefined ? undefined : { cause: opts.cause },
    );
    this.code = code;
    this.device = opts.device;
    this.hint = opts.hint;
    this.exitCode = opts.exitCode ?? 1;
  }
}

/** The board presented a host key different from the one in known_hosts. Never overridden automatically. */
export class HostKeyChangedError extends DeviceError {
  override name = "HostKeyChangedError";
}

/** First contact with a board whose host key is not in known_hosts, and `acceptNew` was not given. */
export class UnknownHostKeyError extends DeviceError {
  override name = "UnknownHostKeyError";
}

/**
 * Authentication failed: the board's sshd refused every key we offered, or the agent's handshake over the device
 * secret failed (code agent-auth-failed: this host and the board hold different secrets).
 */
export class AuthError extends DeviceError {
  override name = "AuthError";
}

/** The board could not be reached, or the connection dropped. */
export class ConnectError extends DeviceError {
  override name = "ConnectError";
}

/** The agent is missing or of another version: run setup. */
export class AgentNotInstalledError extends DeviceError {
  override name = "AgentNotInstalledError";
}

/** Node.js is missing or too old on the board. */
export class NodeError extends DeviceError {
  override name = "NodeError";
}

/** The agent's byte stream broke the protocol, or the agent stopped mid-request. */
export class ProtocolError extends DeviceError {
  override name = "ProtocolError";
}

/** The agent received the request and failed it (its message is passed through). */
export class RemoteError extends DeviceError {
  override name = "RemoteError";
}

/** Bad device URI, unknown device name, malformed registry file: exit 2. */
export class RegistryError extends DeviceError {
  override name = "RegistryError";
  constructor(code: string, message: string, opts: { device?: string; hint?: string; cause?: unknown } = {}) {
    super(code, message, { ...opts, exitCode: 2 });
  }
}

/** The emulated board cannot be prepared (missing Debian packages, no permission for namespaces, no npm). */
export class EmulatorError extends DeviceError {
  override name = "EmulatorError";
}

/** The board did not answer a request in time, or a transfer to or from it stopped moving. */
export class DeviceTimeoutError extends DeviceError {
  override name = "DeviceTimeoutError";
  /** The request type that was waiting, e.g. "evaluate.batch". */
  readonly request: string;
  constructor(
    code: "request-timeout" | "idle-timeout",
    request: string,
    message: string,
    opts: { device?: string; hint?: string } = {},
  ) {
    super(code, message, opts);
    this.request = request;
  }
}
