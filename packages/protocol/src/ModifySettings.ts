/**
 * ModifySettings (§8.9): the request envelope, the guest modification request and the settings document of
 * each resource type.
 */
import { Result, Schema } from "effect"
import { RequestBase } from "./Envelope.js"
import { Int32, JsonObject, JsonValue, omitEmpty, orZero, Uint16, Uint32, Uint64, Uint8 } from "./GoSchema.js"
import { isObject, polymorphic } from "./internal/polymorphic.js"
import { decoder } from "./internal/compile.js"
import { ProtocolError } from "./ProtocolError.js"

/** Values of `RequestType` (an absent one means `Add` to the Linux GCS). */
export const ModifyRequestType = {
  Add: "Add",
  Remove: "Remove",
  Update: "Update",
  /** Networking only. */
  PreAdd: "PreAdd"
} as const

/** Values of `ResourceType`: those the Linux GCS accepts and those defined for Windows guests. */
export const ResourceType = {
  SCSIDevice: "SCSIDevice",
  MappedVirtualDisk: "MappedVirtualDisk",
  MappedDirectory: "MappedDirectory",
  VPMemDevice: "VPMemDevice",
  CombinedLayers: "CombinedLayers",
  Network: "Network",
  VPCIDevice: "VPCIDevice",
  ContainerConstraints: "ContainerConstraints",
  SecurityPolicy: "SecurityPolicy",
  SecurityPolicyFragment: "SecurityPolicyFragment",
  PodCgroupMemoryLimit: "PodCgroupMemoryLimit",
  MappedVirtualDiskForContainerScratch: "MappedVirtualDiskForContainerScratch",
  WCOWBlockCims: "WCOWBlockCims",
  NetworkNamespace: "NetworkNamespace",
  CWCOWCombinedLayers: "CWCOWCombinedLayers",
  HvSocket: "HvSocket"
} as const

/** `SCSIDevice` settings (Remove only: clean removal of a device). */
export class SCSIDevice extends Schema.Class<SCSIDevice>("SCSIDevice")({
  Controller: omitEmpty(Uint8),
  Lun: omitEmpty(Uint8)
}) {}

/** dm-verity information of a read-only device (deprecated in the guest). */
export class DeviceVerityInfo extends Schema.Class<DeviceVerityInfo>("DeviceVerityInfo")({
  Ext4SizeInBytes: omitEmpty(Uint64),
  Version: omitEmpty(Int32),
  Algorithm: omitEmpty(Schema.String),
  SuperBlock: omitEmpty(Schema.Boolean),
  RootDigest: omitEmpty(Schema.String),
  Salt: omitEmpty(Schema.String),
  BlockSize: omitEmpty(Int32)
}) {}

/** `MappedVirtualDisk` settings for a Linux guest (SCSI disk mounted in the UVM). */
export class LCOWMappedVirtualDisk extends Schema.Class<LCOWMappedVirtualDisk>("LCOWMappedVirtualDisk")({
  MountPath: omitEmpty(Schema.String),
  Lun: omitEmpty(Uint8),
  Controller: omitEmpty(Uint8),
  Partition: omitEmpty(Uint64),
  ReadOnly: omitEmpty(Schema.Boolean),
  Encrypted: omitEmpty(Schema.Boolean),
  Options: omitEmpty(Schema.Array(Schema.String)),
  BlockDev: omitEmpty(Schema.Boolean),
  VerityInfo: Schema.optional(DeviceVerityInfo),
  EnsureFilesystem: omitEmpty(Schema.Boolean),
  Filesystem: omitEmpty(Schema.String)
}) {}

/** `MappedVirtualDisk` settings for a Windows guest. */
export class WCOWMappedVirtualDisk extends Schema.Class<WCOWMappedVirtualDisk>("WCOWMappedVirtualDisk")({
  ContainerPath: omitEmpty(Schema.String),
  Lun: omitEmpty(Int32)
}) {}

/** `MappedDirectory` settings (Plan 9 share over vsock). */
export class LCOWMappedDirectory extends Schema.Class<LCOWMappedDirectory>("LCOWMappedDirectory")({
  MountPath: omitEmpty(Schema.String),
  Port: omitEmpty(Int32),
  ShareName: omitEmpty(Schema.String),
  ReadOnly: omitEmpty(Schema.Boolean)
}) {}

/** Where a layer lies inside a VPMem device. */
export class LCOWVPMemMappingInfo extends Schema.Class<LCOWVPMemMappingInfo>("LCOWVPMemMappingInfo")({
  DeviceOffsetInBytes: omitEmpty(Uint64),
  DeviceSizeInBytes: omitEmpty(Uint64)
}) {}

/** `VPMemDevice` settings. */
export class LCOWMappedVPMemDevice extends Schema.Class<LCOWMappedVPMemDevice>("LCOWMappedVPMemDevice")({
  DeviceNumber: omitEmpty(Uint32),
  MountPath: omitEmpty(Schema.String),
  MappingInfo: Schema.optional(LCOWVPMemMappingInfo),
  VerityInfo: Schema.optional(DeviceVerityInfo)
}) {}

/** `VPCIDevice` settings. */
export class LCOWMappedVPCIDevice extends Schema.Class<LCOWMappedVPCIDevice>("LCOWMappedVPCIDevice")({
  VMBusGUID: omitEmpty(Schema.String)
}) {}

/** An HCS schema-2 layer. */
export class Layer extends Schema.Class<Layer>("Layer")({
  Id: omitEmpty(Schema.String),
  Path: omitEmpty(Schema.String),
  PathType: omitEmpty(Schema.String),
  Cache: omitEmpty(Schema.String)
}) {}

/** `CombinedLayers` settings for a Linux guest (the container's overlay root). */
export class LCOWCombinedLayers extends Schema.Class<LCOWCombinedLayers>("LCOWCombinedLayers")({
  ContainerID: omitEmpty(Schema.String),
  ContainerRootPath: omitEmpty(Schema.String),
  Layers: omitEmpty(Schema.Array(Layer)),
  ScratchPath: omitEmpty(Schema.String)
}) {}

/** `CombinedLayers` settings for a Windows guest. */
export class WCOWCombinedLayers extends Schema.Class<WCOWCombinedLayers>("WCOWCombinedLayers")({
  ContainerRootPath: omitEmpty(Schema.String),
  Layers: omitEmpty(Schema.Array(Layer)),
  ScratchPath: omitEmpty(Schema.String),
  /** `UnionFS` or `WCIFS`. */
  FilterType: omitEmpty(Schema.String)
}) {}

/** `CWCOWCombinedLayers` settings (confidential Windows guests). */
export class CWCOWCombinedLayers extends Schema.Class<CWCOWCombinedLayers>("CWCOWCombinedLayers")({
  ContainerID: omitEmpty(Schema.String),
  CombinedLayers: orZero(WCOWCombinedLayers, () => new WCOWCombinedLayers({}))
}) {}

/** One IP configuration of a network adapter. */
export class LCOWIPConfig extends Schema.Class<LCOWIPConfig>("LCOWIPConfig")({
  IPAddress: omitEmpty(Schema.String),
  PrefixLength: omitEmpty(Uint8)
}) {}

/** One route of a network adapter. */
export class LCOWRoute extends Schema.Class<LCOWRoute>("LCOWRoute")({
  NextHop: omitEmpty(Schema.String),
  DestinationPrefix: omitEmpty(Schema.String),
  Metric: omitEmpty(Uint16)
}) {}

/** `Network` settings for a Linux guest (one adapter in a namespace). */
export class LCOWNetworkAdapter extends Schema.Class<LCOWNetworkAdapter>("LCOWNetworkAdapter")({
  NamespaceID: omitEmpty(Schema.String),
  ID: omitEmpty(Schema.String),
  MacAddress: omitEmpty(Schema.String),
  DNSSuffix: omitEmpty(Schema.String),
  DNSServerList: omitEmpty(Schema.String),
  EncapOverhead: omitEmpty(Uint16),
  VPCIAssigned: omitEmpty(Schema.Boolean),
  IPConfigs: omitEmpty(Schema.Array(LCOWIPConfig)),
  Routes: omitEmpty(Schema.Array(LCOWRoute)),
  PolicyBasedRouting: omitEmpty(Schema.Boolean),
  EnableLowMetric: omitEmpty(Schema.Boolean)
}) {}

/**
 * `ContainerConstraints` settings: OCI `WindowsResources` and `LinuxResources` (runtime-spec JSON, kept as
 * given); both always written, usually `{}` for Windows.
 */
export class LCOWContainerConstraints extends Schema.Class<LCOWContainerConstraints>(
  "LCOWContainerConstraints"
)({ Windows: orZero(JsonObject, () => ({})), Linux: orZero(JsonObject, () => ({})) }) {}

/** `SecurityPolicy` settings. */
export class ConfidentialOptions extends Schema.Class<ConfidentialOptions>("ConfidentialOptions")({
  EnforcerType: omitEmpty(Schema.String),
  EncodedSecurityPolicy: omitEmpty(Schema.String),
  EncodedUVMReference: omitEmpty(Schema.String),
  EncodedUVMHashEnvelopeReference: omitEmpty(Schema.String)
}) {}

/** `SecurityPolicyFragment` settings (an empty `MediaType` means `application/cose-x509+rego`). */
export class SecurityPolicyFragment extends Schema.Class<SecurityPolicyFragment>("SecurityPolicyFragment")({
  Fragment: omitEmpty(Schema.String),
  MediaType: omitEmpty(Schema.String)
}) {}

/** `HvSocket` settings (the Windows GCS's HvSocket address update, §7.2). */
export class HvSocketAddress extends Schema.Class<HvSocketAddress>("HvSocketAddress")({
  LocalAddress: omitEmpty(Schema.String),
  ParentAddress: omitEmpty(Schema.String)
}) {}

const settingsClasses = [
  SCSIDevice,
  LCOWMappedVirtualDisk,
  WCOWMappedVirtualDisk,
  LCOWMappedDirectory,
  LCOWMappedVPMemDevice,
  LCOWMappedVPCIDevice,
  LCOWCombinedLayers,
  WCOWCombinedLayers,
  CWCOWCombinedLayers,
  LCOWNetworkAdapter,
  LCOWContainerConstraints,
  ConfidentialOptions,
  SecurityPolicyFragment,
  HvSocketAddress
] as const

/** A typed settings document. */
export type ResourceSettings = InstanceType<(typeof settingsClasses)[number]>

/**
 * The `Settings` of a modification request: any settings class above (encoded by its Schema) or any JSON
 * value written as given. Its shape depends on the resource type and the guest OS, so decoding keeps the raw
 * JSON; read it with {@link decodeResourceSettings}.
 */
export const ModificationSettings = polymorphic({
  identifier: "ModificationSettings",
  members: settingsClasses,
  fallback: JsonValue,
  select: () => -1
})

/**
 * The guest modification request (`guestrequest.ModificationRequest`): what LCOW always sends, and WCOW for
 * UVM-level resources.
 */
export class ModificationRequest extends Schema.Class<ModificationRequest>("ModificationRequest")({
  RequestType: omitEmpty(Schema.String),
  ResourceType: omitEmpty(Schema.String),
  Settings: Schema.optional(ModificationSettings)
}) {}

/**
 * The HCS schema-2 `ModifySettingRequest` a WCOW container update carries (recognised by `ResourcePath` or
 * `GuestRequest`).
 */
export class HcsModifySettingRequest extends Schema.Class<HcsModifySettingRequest>("HcsModifySettingRequest")(
  {
    ResourcePath: omitEmpty(Schema.String),
    RequestType: omitEmpty(Schema.String),
    Settings: Schema.optional(ModificationSettings),
    GuestRequest: Schema.optional(
      polymorphic({
        identifier: "GuestRequest",
        members: [ModificationRequest],
        fallback: JsonValue,
        select: () => -1
      })
    )
  }
) {}

/**
 * The `Request` of a ModifySettings: a {@link ModificationRequest}, an {@link HcsModifySettingRequest}, or
 * any other JSON value written as given.
 */
export const ModifySettingsRequest = polymorphic({
  identifier: "ModifySettingsRequest",
  members: [ModificationRequest, HcsModifySettingRequest],
  fallback: JsonValue,
  select: (raw) => (!isObject(raw) ? -1 : "ResourcePath" in raw || "GuestRequest" in raw ? 1 : 0)
})

/** ModifySettings request: `Request` is an object (not JSON in a string). */
export class ContainerModifySettings extends RequestBase.extend<ContainerModifySettings>(
  "ContainerModifySettings"
)({ Request: ModifySettingsRequest }) {}

const linuxSettings: Readonly<Record<string, (typeof settingsClasses)[number] | null>> = {
  [ResourceType.SCSIDevice]: SCSIDevice,
  [ResourceType.MappedVirtualDisk]: LCOWMappedVirtualDisk,
  [ResourceType.MappedDirectory]: LCOWMappedDirectory,
  [ResourceType.VPMemDevice]: LCOWMappedVPMemDevice,
  [ResourceType.CombinedLayers]: LCOWCombinedLayers,
  [ResourceType.Network]: LCOWNetworkAdapter,
  [ResourceType.VPCIDevice]: LCOWMappedVPCIDevice,
  [ResourceType.ContainerConstraints]: LCOWContainerConstraints,
  [ResourceType.SecurityPolicy]: ConfidentialOptions,
  [ResourceType.SecurityPolicyFragment]: SecurityPolicyFragment,
  [ResourceType.PodCgroupMemoryLimit]: null
}

const linuxDecoders = new Map(
  Object.entries(linuxSettings).map(([type, cls]) => [type, cls === null ? null : decoder(cls)])
)

/** The request type the Linux GCS acts on: an empty `RequestType` means `Add`. */
export const effectiveRequestType = (request: ModificationRequest): string =>
  request.RequestType === "" ? ModifyRequestType.Add : request.RequestType

/**
 * Reads a modification request's settings the way the Linux GCS does: the settings class of its resource type
 * (`undefined` for `PodCgroupMemoryLimit`, which has none); an unknown resource type or a settings document
 * that does not fit fails with `InvalidBody`.
 */
export const decodeResourceSettings = (
  request: ModificationRequest
): Result.Result<ResourceSettings | undefined, ProtocolError> => {
  const decode = linuxDecoders.get(request.ResourceType)
  const invalid = (message: string) => new ProtocolError({ reason: "InvalidBody", message })
  if (decode === undefined) return Result.fail(invalid(`invalid ResourceType '${request.ResourceType}'`))
  if (decode === null) return Result.succeed(undefined)
  const cls = linuxSettings[request.ResourceType]!
  if (request.Settings instanceof cls) return Result.succeed(request.Settings)
  const settings = decode(request.Settings ?? {}) as Result.Result<ResourceSettings, string>
  return Result.mapError(settings, (message) => invalid(`${request.ResourceType} settings: ${message}`))
}
