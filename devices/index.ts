/** The device layer: boards, transports, the agent protocol, setup, deploy, validate. */
export { AGENT_VERSION, type BoardFacts, collectFacts, PROTOCOL_VERSION } from "./agent/agent.js";
export { agentProgram } from "./agent/source.js";
export {
  BOARDS,
  type BoardId,
  type BoardProfile,
  type Detection,
  detectBoard,
  factsOverShell,
} from "./boards.js";
export { AgentClient, type Hello, type InstalledInfo, type ModelEntry, type ModelList } from "./client.js";
export { type DeployOptions, type DeployResult, deployModel, listModels, rollback } from "./deploy.js";
export * from "./errors.js";
export { cacheDir, fetchPackageFiles } from "./fetch.js";
export {
  addDevice,
  DEFAULT_DEVICE_URI,
  type DeviceEntry,
  listDevices,
  openDevice,
  parseDeviceUri,
  readRegistry,
  registryPath,
  removeDevice,
  resolveDevice,
} from "./registry.js";
export {
  connectAgent,
  installKey,
  probeNode,
  runtimeFiles,
  type SetupOptions,
  type SetupResult,
  setupDevice,
  webRuntimeRoot,
} from "./setup.js";
export type { Channel, ExecResult, Transport } from "./transport/channel.js";
export {
  ARM64_NODE_VERSION,
  DEBIAN_PACKAGES,
  type Emulator,
  emulatedTransport,
  emulatorPrerequisites,
  ensureEmulator,
  fetchArm64Node,
} from "./transport/emulator.js";
export { LocalTransport } from "./transport/local.js";
export { connectSsh, resolveSsh, type SshOptions } from "./transport/ssh.js";
export {
  type DeviceReport,
  type EvalSet,
  type FleetReport,
  type FleetTarget,
  formatFleet,
  hostReference,
  type ValidateOptions,
  validateFleet,
  validateModel,
} from "./validate.js";
