/**
 * UVM-level bodies: the null-container Create document of the cold-start prelude (§7.6) and DumpStacks
 * (§8.11).
 */
import { Schema } from "effect"
import { Int32, omitEmpty, orZero } from "./GoSchema.js"
import { ResponseBase } from "./Envelope.js"

/** HCS `SystemTime`; all fields `omitempty`. */
export class SystemTime extends Schema.Class<SystemTime>("SystemTime")({
  Year: omitEmpty(Int32),
  Month: omitEmpty(Int32),
  DayOfWeek: omitEmpty(Int32),
  Day: omitEmpty(Int32),
  Hour: omitEmpty(Int32),
  Minute: omitEmpty(Int32),
  Second: omitEmpty(Int32),
  Milliseconds: omitEmpty(Int32)
}) {}

/** HCS `TimeZoneInformation`; all fields `omitempty` (dates are pointers). */
export class TimeZoneInformation extends Schema.Class<TimeZoneInformation>("TimeZoneInformation")({
  /** Minutes west of UTC. */
  Bias: omitEmpty(Int32),
  StandardName: omitEmpty(Schema.String),
  StandardDate: Schema.optional(SystemTime),
  StandardBias: omitEmpty(Int32),
  DaylightName: omitEmpty(Schema.String),
  DaylightDate: Schema.optional(SystemTime),
  DaylightBias: omitEmpty(Int32)
}) {}

/**
 * The `ContainerConfig` document of the null-container Create (§7.6). `TimeZoneInformation` has no
 * `omitempty`: absent is written as `null`.
 */
export class UvmConfig extends Schema.Class<UvmConfig>("UvmConfig")({
  /** Always `"Container"`. */
  SystemType: orZero(Schema.String, () => "Container"),
  TimeZoneInformation: orZero(Schema.NullOr(TimeZoneInformation), () => null)
}) {}

/** DumpStacks response: the guest's goroutine stacks as free text. */
export class DumpStacksResponse extends ResponseBase.extend<DumpStacksResponse>("DumpStacksResponse")({
  GuestStacks: orZero(Schema.String)
}) {}
