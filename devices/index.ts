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
export {
  AgentClient,
  type EvaluationOptions,
  type Hello,
  type InstalledInfo,
  type ModelEntry,
  type ModelList,
  type TrtEngineInfo,
} from "./client.js";
export {
  buildTrtEngine,
  type DeployOptions,
  type DeployResult,
  deployModel,
  type EngineOptions,
  listModels,
  rollback,
} from "./deploy.js";
export * from "./errors.js";
export { cacheDir, fetchPackageFiles } from "./fetch.js";
export {
  allProbes,
  type LayerOf,
  layerOf,
  probeList,
  type StepInfo,
  type StepKind,
  stepOf,
} from "./layers.js";
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
export { resolveSimulation, type Simulation, type SimulationRequest } from "./simulation.js";
export type { Channel, ExecResult, Transport } from "./transport/channel.js";
export {
  ARM64_NODE_VERSION,
  DEBIAN_PACKAGES,
  EMULATED,
  EMULATED_BOARDS,
  type EmulatedBoard,
  type Emulator,
  emulatedTransport,
  emulatorPrerequisites,
  ensureEmulator,
  fetchArm64Node,
} from "./transport/emulator.js";
export { LocalTransport } from "./transport/local.js";
export { connectSsh, resolveSsh, type SshOptions } from "./transport/ssh.js";
export {
  attributeLayers,
  type DeviceReport,
  type Difference,
  type EvalSet,
  type FirstDivergence,
  type FleetReport,
  type FleetTarget,
  formatFleet,
  hostReference,
  type LayerDrift,
  type Runtime,
  type SimulationReport,
  type ValidateOptions,
  validateFleet,
  validateModel,
} from "./validate.js";
