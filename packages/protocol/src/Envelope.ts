/**
 * The envelopes every body extends (§6): request base with its trace context, response base with its HRESULT
 * and error records.
 */
import { Schema } from "effect"
import { GoMap, HResultCode, lenient, omitEmpty, orZero, Uint32 } from "./GoSchema.js"
import { Guid, NullGuid } from "./Guid.js"

/**
 * W3C Trace Context carrier (`otsc`, §6.2): `traceparent`, and `tracestate` / `baggage` when present. A Go
 * map: keys written sorted.
 */
export const OpenTelemetryCarrier = GoMap(Schema.String)

/** The type of {@link OpenTelemetryCarrier}. */
export type OpenTelemetryCarrier = typeof OpenTelemetryCarrier.Type

/** Legacy OpenCensus span context (`ocsc`, §6.2); all fields `omitempty`. */
export class OpenCensusSpanContext extends Schema.Class<OpenCensusSpanContext>("OpenCensusSpanContext")({
  /** 32 lowercase hex characters. */
  TraceID: omitEmpty(Schema.String),
  /** 16 lowercase hex characters. */
  SpanID: omitEmpty(Schema.String),
  /** Bit 0 = sampled. */
  TraceOptions: omitEmpty(Uint32),
  /** Base64 of a JSON array of `{"Key","Value"}` entries. */
  Tracestate: omitEmpty(Schema.String)
}) {}

/**
 * Fields every host→guest request starts with (§6.1), in Go's order. `ContainerId` is the null GUID for
 * UVM-level requests and `""` only for NegotiateProtocol; `ActivityId` is always written (the Go host sends
 * the null GUID).
 */
export class RequestBase extends Schema.Class<RequestBase>("RequestBase")({
  ContainerId: lenient(Schema.String),
  ActivityId: orZero(Guid, () => NullGuid),
  otsc: omitEmpty(OpenTelemetryCarrier),
  ocsc: Schema.optional(OpenCensusSpanContext)
}) {}

/** One error record of a failed response (§6.4); the host only logs them. */
export class ErrorRecord extends Schema.Class<ErrorRecord>("ErrorRecord")({
  /** HRESULT of this record, unsigned. */
  Result: orZero(HResultCode),
  Message: orZero(Schema.String),
  StackTrace: omitEmpty(Schema.String),
  ModuleName: orZero(Schema.String),
  FileName: orZero(Schema.String),
  /** `4294967295` when unknown. */
  Line: orZero(Uint32),
  FunctionName: omitEmpty(Schema.String)
}) {}

/**
 * Fields every guest→host response starts with (§6.3), in the Linux GCS's order. `Result` is the HRESULT as
 * an unsigned number (signed int32 on the wire); always written, and read as success when absent or `null`
 * (Go's zero), as the constructor defaults it.
 */
export class ResponseBase extends Schema.Class<ResponseBase>("ResponseBase")({
  Result: orZero(HResultCode),
  /** Echo of the request's ActivityId; must be a valid GUID when present. */
  ActivityId: Schema.optional(Guid),
  ErrorMessage: omitEmpty(Schema.String),
  ErrorRecords: omitEmpty(Schema.Array(ErrorRecord))
}) {}
