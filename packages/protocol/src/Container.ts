/**
 * Container lifecycle bodies (§8.1, §8.13, §9): Create and its configuration documents, the exit
 * notification, the legacy UpdateContainer.
 */
import { Schema } from "effect"
import { RequestBase, ResponseBase } from "./Envelope.js"
import { HResultCode, JsonInString, JsonObject, JsonValue, omitEmpty, orZero, Uint32 } from "./GoSchema.js"
import { isObject, polymorphic } from "./internal/polymorphic.js"
import { SchemaVersion } from "./Negotiate.js"
import { UvmConfig } from "./Uvm.js"

/**
 * The LCOW `ContainerConfig` document (hcsshim's `linuxHostedSystem`, §8.1): schema version (must be ≥ 2.1),
 * bundle path, OCI runtime spec, scratch path. All four keys are always written.
 */
export class LinuxHostedSystem extends Schema.Class<LinuxHostedSystem>("LinuxHostedSystem")({
  SchemaVersion: orZero(SchemaVersion, () => new SchemaVersion({ Major: 2, Minor: 1 })),
  OciBundlePath: orZero(Schema.String),
  /** The full OCI runtime spec (runtime-spec JSON), kept as given. */
  OciSpecification: orZero(Schema.NullOr(JsonObject), () => null),
  ScratchDirPath: orZero(Schema.String)
}) {}

/**
 * A Create `ContainerConfig` document: {@link UvmConfig} (recognised by its `SystemType` key), {@link
 * LinuxHostedSystem} (any other object without a WCOW `Container`/`CWCOWHostedSystem` key), or any other JSON
 * value kept raw (WCOW `HostedSystem`, CWCOW documents, `null`). Class instances are encoded by their Schema;
 * plain objects are written as they are.
 */
export const ContainerConfig = polymorphic({
  identifier: "ContainerConfig",
  members: [UvmConfig, LinuxHostedSystem],
  fallback: JsonValue,
  select: (raw) =>
    !isObject(raw) ? -1 : "SystemType" in raw ? 0 : "Container" in raw || "CWCOWHostedSystem" in raw ? -1 : 1
})

/** The type of {@link ContainerConfig}. */
export type ContainerConfig = typeof ContainerConfig.Type

/** Create request: the container configuration as JSON in a string. */
export class ContainerCreate extends RequestBase.extend<ContainerCreate>("ContainerCreate")({
  ContainerConfig: JsonInString(ContainerConfig)
}) {}

/**
 * Create response. The Linux GCS also writes `"SelectedProtocolVersion":0` (a protocol-v3 remnant); hosts
 * ignore both extra fields.
 */
export class ContainerCreateResponse extends ResponseBase.extend<ContainerCreateResponse>(
  "ContainerCreateResponse"
)({ SelectedVersion: omitEmpty(Schema.String), SelectedProtocolVersion: orZero(Uint32) }) {}

/** Values of a notification's `Type` (§9.1). */
export const NotificationType = {
  None: "None",
  GracefulExit: "GracefulExit",
  ForcedExit: "ForcedExit",
  UnexpectedExit: "UnexpectedExit",
  Reboot: "Reboot",
  Constructed: "Constructed",
  Started: "Started",
  Paused: "Paused",
  Unknown: "Unknown"
} as const

/** Values of a notification's `Operation` (§9.1). */
export const ActiveOperation = {
  None: "None",
  Construct: "Construct",
  Start: "Start",
  Pause: "Pause",
  Resume: "Resume",
  Shutdown: "Shutdown",
  Terminate: "Terminate"
} as const

/**
 * The container notification (`0x30100101`, id 0): the container's init process has exited. Hosts route it by
 * `ContainerId` and ignore the rest. `ResultInfo` is JSON in a string: text that is not JSON fails to decode,
 * as in Go.
 */
export class ContainerNotification extends RequestBase.extend<ContainerNotification>("ContainerNotification")(
  {
    Type: orZero(Schema.String),
    Operation: orZero(Schema.String),
    /** HRESULT, unsigned; the Linux GCS always sends 0. */
    Result: orZero(HResultCode),
    ResultInfo: Schema.optional(JsonInString(JsonValue))
  }
) {}

/**
 * UpdateContainer request (§8.13, legacy): historically the base plus `Resources` (OCI LinuxResources as JSON
 * in a string); no current guest handles it.
 */
export class UpdateContainerRequest extends RequestBase.extend<UpdateContainerRequest>(
  "UpdateContainerRequest"
)({ Resources: Schema.optional(JsonInString(JsonValue)) }) {}
