/**
 * Fault injection for the guest: misbehaviours a host must survive, as data,
 * with the text form used by `gcsctl guest --fault SPEC`.
 *
 * Grammar (whitespace around commas is ignored; several specs may be given,
 * their faults simply add up):
 *
 * ```text
 * spec     = fault *( "," fault )
 * fault    = "drop-after=" count        close the bridge after the guest sent `count` messages
 *          | "delay=" duration          hold every response back for `duration`
 *          | "malformed-after=" count   the message after `count` messages carries a payload that is not JSON
 *          | "oversize-after=" count    the message after `count` messages is replaced by a bare header
 *                                       declaring 0x7fffffff bytes (nothing follows it)
 *          | "unknown-id-after=" count  the first response after `count` messages carries an id no request had
 *          | "flood=" count             right after the NegotiateProtocol response, send `count`
 *                                       container notifications for containers that never existed
 *          | "silent-after=" count      after `count` messages write nothing more, keeping the
 *                                       connection open (requests are still carried out)
 * count    = 1*DIGIT                    0 … 2147483647
 * duration = number ( "ms" | "s" | "m" )  e.g. 250ms, 1.5s, 2m (at most one hour)
 * ```
 *
 * "Messages" are the frames the guest produced on the current bridge connection
 * (responses and notifications alike, including those `silent-after`
 * swallows), counted from 0 for every connection: with re-dialling, a fault
 * fires again on each new connection.
 *
 * @since 0.1.0
 */
import { Data, Duration, Effect, Result, Schema } from "effect"

/**
 * One injected misbehaviour. See the module documentation for the semantics of
 * each variant; `messages` always counts frames already written on the
 * current connection.
 *
 * @since 0.1.0
 */
export type Fault = Data.TaggedEnum<{
  /** Close the connection after `messages` frames were written. */
  readonly DropAfter: { readonly messages: number }
  /** Delay every response by `duration` (notifications are not delayed). */
  readonly Delay: { readonly duration: Duration.Duration }
  /** Replace the payload of the next frame after `messages` frames by bytes that are not JSON. */
  readonly MalformedAfter: { readonly messages: number }
  /** Replace the next frame after `messages` frames by a header declaring `0x7fffffff` bytes. */
  readonly OversizeAfter: { readonly messages: number }
  /** Give the first response after `messages` frames an id that no request carried. */
  readonly UnknownIdAfter: { readonly messages: number }
  /** Send `notifications` notifications for unknown containers right after negotiation. */
  readonly Flood: { readonly notifications: number }
  /** Stop writing after `messages` frames, keeping the connection open (requests are still carried out). */
  readonly SilentAfter: { readonly messages: number }
}>

/**
 * Constructors and matchers for {@link Fault}: `Fault.DropAfter({ messages: 3 })`,
 * `Fault.$is("Delay")(fault)`, `Fault.$match(fault, { … })`.
 *
 * @since 0.1.0
 */
export const Fault = Data.taggedEnum<Fault>()

/**
 * A `--fault` spec that does not follow the grammar. `spec` is the whole text,
 * `message` names the offending part and what was expected.
 *
 * @since 0.1.0
 */
export class FaultSpecError extends Schema.TaggedError<FaultSpecError>("@gcs-bridge/guest/FaultSpecError")(
  "FaultSpecError",
  { spec: Schema.String, message: Schema.String }
) {}

/**
 * The size written into the header by `oversize-after`: far above any sane
 * limit, so a host that allocates before checking would ask for 2 GiB.
 *
 * @since 0.1.0
 */
export const OversizeDeclaredSize = 0x7fffffff

const maxCount = 0x7fffffff
const maxDelay = Duration.hours(1)

const countKinds = {
  "drop-after": (messages: number) => Fault.DropAfter({ messages }),
  "malformed-after": (messages: number) => Fault.MalformedAfter({ messages }),
  "oversize-after": (messages: number) => Fault.OversizeAfter({ messages }),
  "unknown-id-after": (messages: number) => Fault.UnknownIdAfter({ messages }),
  flood: (notifications: number) => Fault.Flood({ notifications }),
  "silent-after": (messages: number) => Fault.SilentAfter({ messages })
} as const

const kinds = [...Object.keys(countKinds), "delay"].map((k) => `${k}=`).join(", ")

const parseCount = (text: string): number | string => {
  if (!/^[0-9]+$/.test(text)) return `expected a whole number, got ${JSON.stringify(text)}`
  const n = Number(text)
  return n <= maxCount ? n : `${text} is larger than ${maxCount}`
}

const parseDuration = (text: string): Duration.Duration | string => {
  const match = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m)$/.exec(text)
  if (match === null) return `expected a duration such as 250ms, 1.5s or 2m, got ${JSON.stringify(text)}`
  const value = Number(match[1])
  const duration =
    match[2] === "ms"
      ? Duration.millis(value)
      : match[2] === "s"
        ? Duration.seconds(value)
        : Duration.minutes(value)
  return Duration.isGreaterThan(duration, maxDelay) ? `${text} is longer than one hour` : duration
}

const parseOne = (item: string): Fault | string => {
  const eq = item.indexOf("=")
  if (eq < 0) return `${JSON.stringify(item)} has no "=": expected one of ${kinds}`
  const kind = item.slice(0, eq)
  const value = item.slice(eq + 1)
  if (kind === "delay") {
    const duration = parseDuration(value)
    return typeof duration === "string" ? `delay: ${duration}` : Fault.Delay({ duration })
  }
  if (!Object.prototype.hasOwnProperty.call(countKinds, kind)) {
    return `unknown fault ${JSON.stringify(kind)}: expected one of ${kinds}`
  }
  const count = parseCount(value)
  return typeof count === "string" ? `${kind}: ${count}` : countKinds[kind as keyof typeof countKinds](count)
}

/**
 * Parses a spec (see the module documentation) into its faults, or says what
 * is wrong with it.
 *
 * @since 0.1.0
 */
export const parseResult = (spec: string): Result.Result<ReadonlyArray<Fault>, FaultSpecError> => {
  const items = spec.split(",").map((s) => s.trim())
  const faults: Array<Fault> = []
  for (const item of items) {
    if (item.length === 0) {
      return Result.fail(new FaultSpecError({ spec, message: `empty fault in ${JSON.stringify(spec)}` }))
    }
    const fault = parseOne(item)
    if (typeof fault === "string") return Result.fail(new FaultSpecError({ spec, message: fault }))
    faults.push(fault)
  }
  return Result.succeed(faults)
}

/**
 * {@link parseResult} as an Effect.
 *
 * @since 0.1.0
 */
export const parse = (spec: string): Effect.Effect<ReadonlyArray<Fault>, FaultSpecError> =>
  Effect.fromResult(parseResult(spec))

const formatDuration = (duration: Duration.Duration): string => {
  const millis = Duration.toMillis(duration)
  if (millis >= 60_000 && millis % 60_000 === 0) return `${millis / 60_000}m`
  if (millis >= 1000 && millis % 1000 === 0) return `${millis / 1000}s`
  return `${millis}ms`
}

/**
 * The spec text of one fault or of several (comma-separated); `parse` of the
 * result gives the same faults back.
 *
 * @since 0.1.0
 */
export const format = (faults: Fault | ReadonlyArray<Fault>): string => {
  const list: ReadonlyArray<Fault> = Array.isArray(faults) ? faults : [faults as Fault]
  return list
    .map(
      Fault.$match({
        DropAfter: ({ messages }) => `drop-after=${messages}`,
        Delay: ({ duration }) => `delay=${formatDuration(duration)}`,
        MalformedAfter: ({ messages }) => `malformed-after=${messages}`,
        OversizeAfter: ({ messages }) => `oversize-after=${messages}`,
        UnknownIdAfter: ({ messages }) => `unknown-id-after=${messages}`,
        Flood: ({ notifications }) => `flood=${notifications}`,
        SilentAfter: ({ messages }) => `silent-after=${messages}`
      })
    )
    .join(",")
}
