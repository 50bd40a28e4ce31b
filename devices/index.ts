/**
 * `qat/devices`: boards and getting models onto them — the device registry, setting a board up, deploying,
 * validating against the host, rolling back; board profiles, the transports a user configures, the emulated board,
 * and the errors a caller can tell apart.
 *
 * A short list of named re-exports, not `export *`: the agent's internals, the serial link layer and the validation
 * modules behind `devices/validate.ts` stay internal. `test/package.test.ts` imports these names from the packed
 * package.
 */

export {
  AGENT_VERSION,
  type BoardFacts,
  type InstalledInfo,
  type ModelEntry,
  type ModelList,
  PROTOCOL_VERSION,
} from "./agent/protocol.js";
// Board profiles and detection
export {
  type Backend,
  BOARDS,
  type BoardId,
  type BoardProfile,
  type Detection,
  detectBoard,
} from "./boards.js";
export { AgentClient } from "./client.js";
// Deploy and roll back (`qat deploy`)
export {
  buildTrtEngine,
  type DeployOptions,
  type DeployResult,
  deployModel,
  type EngineOptions,
  listModels,
  rollback,
} from "./deploy.js";
export { type DeployFileOptions, type DeployReport, deployFile, rollbackDevice } from "./deploy-file.js";
// Errors: `DeviceError` carries a stable `code`, the device, a hint and the CLI's exit code; the subclasses are
// the cases a caller handles differently (a changed host key, no agent installed, a refused login …)
export {
  AgentNotInstalledError,
  AuthError,
  ConnectError,
  DeviceError,
  EmulatorError,
  HostKeyChangedError,
  NodeError,
  ProtocolError,
  RegistryError,
  RemoteError,
  UnknownHostKeyError,
} from "./errors.js";
export { type DeviceInfo, type DeviceTarget, deviceInfo, deviceModels, registryListing } from "./inspect.js";
export { installDebianPackages, missingDebianPackages } from "./packages.js";
// Setting a board up: the agent and its runtime (`qat device setup`)
export {
  type BoardSetup,
  prepareEmulatedBoard,
  type SetupBoardOptions,
  setupBoard,
} from "./prepare-board.js";
// The device registry: named boards and their addresses (ssh://, serial://, local:, emulated:)
export {
  addDevice,
  DEFAULT_DEVICE_URI,
  type DeviceAddress,
  type DeviceEntry,
  listDevices,
  openDevice,
  parseDeviceUri,
  type RegistryOptions,
  readRegistry,
  registryPath,
  removeDevice,
  resolveDevice,
} from "./registry.js";
export { connectAgent, type SetupOptions, type SetupResult, setupDevice } from "./setup.js";
// Validate on boards against the host and the fake-quant simulation (`qat validate`)
export { resolveSimulation, type Simulation, type SimulationRequest } from "./simulation.js";
// Transports a user configures: SSH, a serial line, this machine, an emulated arm64 board under qemu-user
export type { Channel, ExecResult, Transport } from "./transport/channel.js";
export {
  DEBIAN_PACKAGES,
  EMULATED_BOARDS,
  type EmulatedBoard,
  type Emulator,
  emulatedBoard,
  emulatedTransport,
  emulatorPrerequisites,
  ensureEmulator,
} from "./transport/emulator.js";
export { LocalTransport, type LocalTransportOptions } from "./transport/local.js";
export {
  DEFAULT_BAUD,
  listSerialPorts,
  openSerial,
  type SerialOptions,
  type SerialPortInfo,
} from "./transport/serial.js";
export { connectSsh, type SshOptions } from "./transport/ssh.js";
export {
  DEFAULT_LAYER_THRESHOLD,
  type DeviceReport,
  type EvalSet,
  type FleetReport,
  type FleetTarget,
  formatDriftReport,
  formatFleet,
  hostReference,
  loadEvalSet,
  RUNTIMES,
  type Runtime,
  type SimulationReport,
  type ValidateOnDevicesOptions,
  type ValidateOptions,
  type ValidationReport,
  type ValidationResult,
  validateFleet,
  validateModel,
  validateOnDevices,
} from "./validate.js";
