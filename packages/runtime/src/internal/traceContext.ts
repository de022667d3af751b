import type { Tracer } from "effect"

const hex32 = /^[0-9a-f]{32}$/
const hex16 = /^[0-9a-f]{16}$/

/**
 * The W3C `traceparent` of a span (`00-<trace id>-<span id>-<flags>`), or
 * `undefined` when its ids are not valid W3C ids (an all-zero id, or ids from
 * a tracer that does not produce hex) — a guest must never be handed a header
 * it would reject.
 */
export const traceparent = (span: Tracer.AnySpan): string | undefined => {
  const traceId = span.traceId.toLowerCase()
  const spanId = span.spanId.toLowerCase()
  if (!hex32.test(traceId) || !hex16.test(spanId)) return undefined
  if (/^0+$/.test(traceId) || /^0+$/.test(spanId)) return undefined
  return `00-${traceId}-${spanId}-${span.sampled === false ? "00" : "01"}`
}
