/**
 * GetProperties (§8.8): the query, the response, and the two properties documents hosts decode it into (HCS
 * schema 1 and schema 2).
 */
import { Schema } from "effect"
import { RequestBase, ResponseBase } from "./Envelope.js"
import {
  GoMap,
  Int32,
  JsonInString,
  JsonObject,
  JsonValue,
  omitEmpty,
  orZero,
  Uint32,
  Uint64
} from "./GoSchema.js"
import { Guid, NullGuid } from "./Guid.js"
import { SchemaVersion, WindowsGuestDefinedCapabilities } from "./Negotiate.js"

/** Property type strings of both schemas. */
export const PropertyType = {
  Statistics: "Statistics",
  ProcessList: "ProcessList",
  MappedVirtualDisk: "MappedVirtualDisk",
  GuestConnection: "GuestConnection",
  Memory: "Memory",
  GuestMemory: "GuestMemory",
  TerminateOnLastHandleClosed: "TerminateOnLastHandleClosed",
  SharedMemoryRegion: "SharedMemoryRegion",
  ContainerCredentialGuard: "ContainerCredentialGuard",
  ICHeartbeatStatus: "ICHeartbeatStatus",
  ProcessorTopology: "ProcessorTopology",
  CpuGroup: "CpuGroup",
  SystemGUID: "SystemGUID"
} as const

/**
 * A property query (schema 1 `PropertyQuery`, plus the schema-2 `Queries` map, never set by the Go host). An
 * empty query is written `{}`.
 */
export class PropertyQuery extends Schema.Class<PropertyQuery>("PropertyQuery")({
  PropertyTypes: omitEmpty(Schema.Array(Schema.String)),
  Queries: omitEmpty(GoMap(JsonValue))
}) {}

/** GetProperties request: the query as JSON in a string. */
export class ContainerGetProperties extends RequestBase.extend<ContainerGetProperties>(
  "ContainerGetProperties"
)({ Query: JsonInString(PropertyQuery) }) {}

/**
 * GetProperties response: the properties document as JSON in a string, kept as decoded JSON; read it with
 * `decodePropertiesV1` / `decodePropertiesV2` of the codec, or build it by encoding a {@link
 * ContainerPropertiesV1} / {@link PropertiesV2}. Absent on failure; `""` fails to decode, as in Go.
 */
export class ContainerGetPropertiesResponse extends ResponseBase.extend<ContainerGetPropertiesResponse>(
  "ContainerGetPropertiesResponse"
)({ Properties: Schema.optional(JsonInString(JsonValue)) }) {}

/** Go's zero `time.Time`, which Go writes for a time field never set. */
export const ZeroTime = "0001-01-01T00:00:00Z"

/** A Go `time.Time` field (RFC 3339 text): a struct, so always written, zero {@link ZeroTime}. */
export const GoTime = orZero(Schema.String, () => ZeroTime)

/** Memory statistics (same keys in both schemas). */
export class MemoryStats extends Schema.Class<MemoryStats>("MemoryStats")({
  MemoryUsageCommitBytes: omitEmpty(Uint64),
  MemoryUsageCommitPeakBytes: omitEmpty(Uint64),
  MemoryUsagePrivateWorkingSetBytes: omitEmpty(Uint64)
}) {}

/** Processor statistics (same keys in both schemas). */
export class ProcessorStats extends Schema.Class<ProcessorStats>("ProcessorStats")({
  TotalRuntime100ns: omitEmpty(Uint64),
  RuntimeUser100ns: omitEmpty(Uint64),
  RuntimeKernel100ns: omitEmpty(Uint64)
}) {}

/** Storage statistics (same keys in both schemas). */
export class StorageStats extends Schema.Class<StorageStats>("StorageStats")({
  ReadCountNormalized: omitEmpty(Uint64),
  ReadSizeBytes: omitEmpty(Uint64),
  WriteCountNormalized: omitEmpty(Uint64),
  WriteSizeBytes: omitEmpty(Uint64)
}) {}

/** Schema-1 network statistics of one endpoint. */
export class NetworkStats extends Schema.Class<NetworkStats>("NetworkStats")({
  BytesReceived: omitEmpty(Uint64),
  BytesSent: omitEmpty(Uint64),
  PacketsReceived: omitEmpty(Uint64),
  PacketsSent: omitEmpty(Uint64),
  DroppedPacketsIncoming: omitEmpty(Uint64),
  DroppedPacketsOutgoing: omitEmpty(Uint64),
  EndpointId: omitEmpty(Schema.String),
  InstanceId: omitEmpty(Schema.String)
}) {}

/** Schema-1 statistics (nested structs always written). */
export class StatisticsV1 extends Schema.Class<StatisticsV1>("StatisticsV1")({
  Timestamp: GoTime,
  ContainerStartTime: GoTime,
  Uptime100ns: omitEmpty(Uint64),
  Memory: orZero(MemoryStats, () => new MemoryStats({})),
  Processor: orZero(ProcessorStats, () => new ProcessorStats({})),
  Storage: orZero(StorageStats, () => new StorageStats({})),
  Network: omitEmpty(Schema.Array(NetworkStats))
}) {}

/** Schema-1 process list entry. */
export class ProcessListItem extends Schema.Class<ProcessListItem>("ProcessListItem")({
  CreateTimestamp: GoTime,
  ImageName: omitEmpty(Schema.String),
  KernelTime100ns: omitEmpty(Uint64),
  MemoryCommitBytes: omitEmpty(Uint64),
  MemoryWorkingSetPrivateBytes: omitEmpty(Uint64),
  MemoryWorkingSetSharedBytes: omitEmpty(Uint64),
  ProcessId: omitEmpty(Uint32),
  UserTime100ns: omitEmpty(Uint64)
}) {}

/** Schema-1 mapped virtual disk (as reported in properties). */
export class MappedVirtualDiskV1 extends Schema.Class<MappedVirtualDiskV1>("MappedVirtualDiskV1")({
  HostPath: omitEmpty(Schema.String),
  ContainerPath: orZero(Schema.String),
  CreateInUtilityVM: omitEmpty(Schema.Boolean),
  ReadOnly: omitEmpty(Schema.Boolean),
  Cache: omitEmpty(Schema.String),
  AttachOnly: omitEmpty(Schema.Boolean)
}) {}

/** Schema-1 SCSI controller entry: disks by LUN (decimal keys). */
export class MappedVirtualDiskController extends Schema.Class<MappedVirtualDiskController>(
  "MappedVirtualDiskController"
)({ MappedVirtualDisks: omitEmpty(GoMap(MappedVirtualDiskV1)) }) {}

/** Schema-1 guest connection information. */
export class GuestConnectionInfoV1 extends Schema.Class<GuestConnectionInfoV1>("GuestConnectionInfoV1")({
  SupportedSchemaVersions: omitEmpty(Schema.Array(SchemaVersion)),
  ProtocolVersion: omitEmpty(Uint32),
  GuestDefinedCapabilities: orZero(
    WindowsGuestDefinedCapabilities,
    () => new WindowsGuestDefinedCapabilities({})
  )
}) {}

/**
 * The schema-1 properties document (`Container.Properties`), field order and `omitempty` as hcsshim's
 * `schema1.ContainerProperties`.
 */
export class ContainerPropertiesV1 extends Schema.Class<ContainerPropertiesV1>("ContainerPropertiesV1")({
  Id: orZero(Schema.String),
  State: orZero(Schema.String),
  Name: orZero(Schema.String),
  SystemType: orZero(Schema.String),
  RuntimeOsType: omitEmpty(Schema.String),
  Owner: orZero(Schema.String),
  SiloGuid: omitEmpty(Schema.String),
  RuntimeId: orZero(Guid, () => NullGuid),
  IsRuntimeTemplate: omitEmpty(Schema.Boolean),
  RuntimeImagePath: omitEmpty(Schema.String),
  Stopped: omitEmpty(Schema.Boolean),
  ExitType: omitEmpty(Schema.String),
  AreUpdatesPending: omitEmpty(Schema.Boolean),
  ObRoot: omitEmpty(Schema.String),
  Statistics: orZero(StatisticsV1, () => new StatisticsV1({})),
  ProcessList: omitEmpty(Schema.Array(ProcessListItem)),
  MappedVirtualDiskControllers: omitEmpty(GoMap(MappedVirtualDiskController)),
  GuestConnectionInfo: orZero(GuestConnectionInfoV1, () => new GuestConnectionInfoV1({}))
}) {}

/** Schema-2 statistics (nested stats are pointers: optional). */
export class StatisticsV2 extends Schema.Class<StatisticsV2>("StatisticsV2")({
  Timestamp: GoTime,
  ContainerStartTime: GoTime,
  Uptime100ns: omitEmpty(Uint64),
  Processor: Schema.optional(ProcessorStats),
  Memory: Schema.optional(MemoryStats),
  Storage: Schema.optional(StorageStats)
}) {}

/** Schema-2 process list entry (`ProcessDetails`). */
export class ProcessDetails extends Schema.Class<ProcessDetails>("ProcessDetails")({
  ProcessId: omitEmpty(Int32),
  ImageName: omitEmpty(Schema.String),
  CreateTimestamp: GoTime,
  UserTime100ns: omitEmpty(Int32),
  KernelTime100ns: omitEmpty(Int32),
  MemoryCommitBytes: omitEmpty(Int32),
  MemoryWorkingSetPrivateBytes: omitEmpty(Int32),
  MemoryWorkingSetSharedBytes: omitEmpty(Int32)
}) {}

/** Schema-2 shared memory region. */
export class SharedMemoryRegionInfo extends Schema.Class<SharedMemoryRegionInfo>("SharedMemoryRegionInfo")({
  SectionName: omitEmpty(Schema.String),
  GuestPhysicalAddress: omitEmpty(Int32)
}) {}

/** Schema-2 guest connection information (capabilities kept as raw JSON). */
export class GuestConnectionInfoV2 extends Schema.Class<GuestConnectionInfoV2>("GuestConnectionInfoV2")({
  SupportedSchemaVersions: omitEmpty(Schema.Array(SchemaVersion)),
  ProtocolVersion: omitEmpty(Int32),
  GuestDefinedCapabilities: Schema.optional(JsonValue)
}) {}

/** Schema-2 per-query response. */
export class PropertyResponse extends Schema.Class<PropertyResponse>("PropertyResponse")({
  Response: Schema.optional(JsonValue)
}) {}

/**
 * The schema-2 properties document (`Container.PropertiesV2`), as hcsshim's `hcsschema.Properties`.
 * `LCOWMetrics` is the cgroup-v1 metrics object of the Linux GCS (snake_case keys), kept as raw JSON.
 */
export class PropertiesV2 extends Schema.Class<PropertiesV2>("PropertiesV2")({
  Id: omitEmpty(Schema.String),
  SystemType: omitEmpty(Schema.String),
  RuntimeOsType: omitEmpty(Schema.String),
  Name: omitEmpty(Schema.String),
  Owner: omitEmpty(Schema.String),
  RuntimeId: omitEmpty(Schema.String),
  SystemGUID: omitEmpty(Schema.String),
  RuntimeTemplateId: omitEmpty(Schema.String),
  State: omitEmpty(Schema.String),
  Stopped: omitEmpty(Schema.Boolean),
  ExitType: omitEmpty(Schema.String),
  Memory: Schema.optional(JsonObject),
  Statistics: Schema.optional(StatisticsV2),
  ProcessList: omitEmpty(Schema.Array(ProcessDetails)),
  TerminateOnLastHandleClosed: omitEmpty(Schema.Boolean),
  HostingSystemId: omitEmpty(Schema.String),
  SharedMemoryRegionInfo: omitEmpty(Schema.Array(SharedMemoryRegionInfo)),
  GuestConnectionInfo: Schema.optional(GuestConnectionInfoV2),
  PropertyResponses: omitEmpty(GoMap(PropertyResponse)),
  LCOWMetrics: Schema.optional(JsonObject)
}) {}
