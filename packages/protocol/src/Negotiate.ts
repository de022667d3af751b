/** Protocol negotiation (§7.3-7.5): the first request on every connection, and the guest's capabilities. */
import { Schema } from "effect"
import { Int32, lenient, omitEmpty, orZero, Uint32 } from "./GoSchema.js"
import { RequestBase, ResponseBase } from "./Envelope.js"
import { isObject, member, polymorphic } from "./internal/polymorphic.js"

/** The only protocol version the Go host and the Linux GCS speak. */
export const ProtocolVersion = 4

/** NegotiateProtocol request. The Go host sends it with `ContainerId: ""` and both versions 4. */
export class NegotiateProtocolRequest extends RequestBase.extend<NegotiateProtocolRequest>(
  "NegotiateProtocolRequest"
)({ MinimumVersion: lenient(Uint32), MaximumVersion: lenient(Uint32) }) {}

/** An HCS schema version (`{"Major":2,"Minor":1}`); both fields `omitempty`. */
export class SchemaVersion extends Schema.Class<SchemaVersion>("SchemaVersion")({
  Major: omitEmpty(Int32),
  Minor: omitEmpty(Int32)
}) {}

/** Capabilities a Linux GCS defines (§7.5); all `omitempty`. */
export class LinuxGuestDefinedCapabilities extends Schema.Class<LinuxGuestDefinedCapabilities>(
  "LinuxGuestDefinedCapabilities"
)({
  NamespaceAddRequestSupported: omitEmpty(Schema.Boolean),
  SignalProcessSupported: omitEmpty(Schema.Boolean),
  DumpStacksSupported: omitEmpty(Schema.Boolean),
  DeleteContainerStateSupported: omitEmpty(Schema.Boolean)
}) {}

/** Capabilities a Windows GCS defines (§7.5): the Linux four plus three more; all `omitempty`. */
export class WindowsGuestDefinedCapabilities extends LinuxGuestDefinedCapabilities.extend<WindowsGuestDefinedCapabilities>(
  "WindowsGuestDefinedCapabilities"
)({
  UpdateContainerSupported: omitEmpty(Schema.Boolean),
  LogForwardingSupported: omitEmpty(Schema.Boolean),
  HostProcessContainerSupported: omitEmpty(Schema.Boolean)
}) {}

const windowsOnlyKeys = [
  "UpdateContainerSupported",
  "LogForwardingSupported",
  "HostProcessContainerSupported"
] as const

/**
 * The `GuestDefinedCapabilities` object: decoded as the Windows shape when it carries a Windows-only flag,
 * else as the Linux shape ({@link guestDefinedCapabilities} applies the Go host's rule, which goes by the
 * runtime OS instead).
 */
export const GuestDefinedCapabilities = polymorphic({
  identifier: "GuestDefinedCapabilities",
  members: [LinuxGuestDefinedCapabilities, WindowsGuestDefinedCapabilities],
  select: (raw) => (!isObject(raw) ? -2 : windowsOnlyKeys.some((k) => member(raw, k) === true) ? 1 : 0)
})

/**
 * The `Capabilities` object of the negotiate response (§7.4). Booleans are `omitempty` as the Linux GCS
 * writes them; absent ones decode as `false`; an absent or `null` `GuestDefinedCapabilities` decodes as
 * empty.
 */
export class GcsCapabilities extends Schema.Class<GcsCapabilities>("GcsCapabilities")({
  SendHostCreateMessage: omitEmpty(Schema.Boolean),
  SendHostStartMessage: omitEmpty(Schema.Boolean),
  HvSocketConfigOnStartup: omitEmpty(Schema.Boolean),
  SendLifecycleNotifications: omitEmpty(Schema.Boolean),
  ModifyServiceSettingsSupported: omitEmpty(Schema.Boolean),
  SupportedSchemaVersions: omitEmpty(Schema.Array(SchemaVersion)),
  /** `"Linux"` from the Linux GCS; empty means Windows. */
  RuntimeOsType: omitEmpty(Schema.String),
  GuestDefinedCapabilities: orZero(GuestDefinedCapabilities, () => new LinuxGuestDefinedCapabilities({}))
}) {}

/**
 * NegotiateProtocol response. On failure the guest sends only the base, so `Version` and `Capabilities`
 * decode as their zero values.
 */
export class NegotiateProtocolResponse extends ResponseBase.extend<NegotiateProtocolResponse>(
  "NegotiateProtocolResponse"
)({ Version: orZero(Uint32), Capabilities: orZero(GcsCapabilities, () => new GcsCapabilities({})) }) {}

/** The guest OS as the Go host derives it: `RuntimeOsType` lowercased, empty meaning `"windows"`. */
export const runtimeOs = (capabilities: GcsCapabilities): string =>
  capabilities.RuntimeOsType === "" ? "windows" : capabilities.RuntimeOsType.toLowerCase()

/**
 * The guest-defined capabilities in the shape the Go host parses them: Windows when {@link runtimeOs} is
 * `"windows"`, Linux otherwise (Windows-only flags dropped).
 */
export const guestDefinedCapabilities = (
  capabilities: GcsCapabilities
): LinuxGuestDefinedCapabilities | WindowsGuestDefinedCapabilities => {
  const c = capabilities.GuestDefinedCapabilities
  const common = {
    NamespaceAddRequestSupported: c.NamespaceAddRequestSupported,
    SignalProcessSupported: c.SignalProcessSupported,
    DumpStacksSupported: c.DumpStacksSupported,
    DeleteContainerStateSupported: c.DeleteContainerStateSupported
  }
  if (runtimeOs(capabilities) !== "windows") return new LinuxGuestDefinedCapabilities(common)
  return c instanceof WindowsGuestDefinedCapabilities ? c : new WindowsGuestDefinedCapabilities(common)
}
