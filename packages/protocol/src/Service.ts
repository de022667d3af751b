/** ModifyServiceSettings (§8.15): the only ComputeService RPC, used for WCOW log forwarding. */
import { Schema } from "effect"
import { RequestBase } from "./Envelope.js"
import { JsonValue, lenient, omitEmpty } from "./GoSchema.js"
import { isObject, polymorphic } from "./internal/polymorphic.js"

/** Values of `PropertyType`. */
export const ServicePropertyType = {
  LogForwardService: "LogForwardService"
} as const

/** Values of a log-forward request's `RPCType`. */
export const LogForwardRpcType = {
  ModifyServiceSettings: "ModifyServiceSettings",
  StartLogForwarding: "StartLogForwarding",
  StopLogForwarding: "StopLogForwarding"
} as const

/**
 * `LogForwardService` settings: for `ModifyServiceSettings`, `Settings` is the base64 log-sources
 * configuration; empty for start/stop.
 */
export class LogForwardServiceSettings extends Schema.Class<LogForwardServiceSettings>(
  "LogForwardServiceSettings"
)({ RPCType: omitEmpty(Schema.String), Settings: omitEmpty(Schema.String) }) {}

/** ModifyServiceSettings request. */
export class ServiceModificationRequest extends RequestBase.extend<ServiceModificationRequest>(
  "ServiceModificationRequest"
)({
  PropertyType: lenient(Schema.String),
  Settings: Schema.optional(
    polymorphic({
      identifier: "ServiceSettings",
      members: [LogForwardServiceSettings],
      fallback: JsonValue,
      select: (raw) => (isObject(raw) ? 0 : -1)
    })
  )
}) {}
