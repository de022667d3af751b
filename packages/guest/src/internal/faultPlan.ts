/**
 * The faults of one connection, applied by its single writer: it decides,
 * message by message, what actually goes on the wire. Counting happens here,
 * so "after N messages" means exactly the N frames this writer produced.
 */
import { Frame } from "@gcs-bridge/protocol"
import { Duration } from "effect"
import type { Fault } from "../Fault.js"
import { OversizeDeclaredSize } from "../Fault.js"

/** A frame waiting for the writer. */
export interface OutboundFrame {
  readonly type: number
  readonly id: number
  /** Header and payload. */
  readonly frame: Uint8Array
  readonly kind: "response" | "notification" | "flood"
}

/** What the writer does with one message. */
export interface Decision {
  /** Bytes to write (empty when the message is swallowed). */
  readonly bytes: ReadonlyArray<Uint8Array>
  /** Close the connection after writing them. */
  readonly dropAfter: boolean
}

const garbage = new TextEncoder().encode('{"Result":0,"ActivityId":\u0000 this is not JSON')

const counts = (faults: ReadonlyArray<Fault>, tag: "MalformedAfter" | "OversizeAfter" | "UnknownIdAfter") =>
  faults.flatMap((f) => (f._tag === tag ? [f.messages] : []))

/** The per-connection fault state. */
export class FaultPlan {
  /** Frames written (or swallowed) so far on this connection. */
  sent = 0
  private readonly dropAt: number | undefined
  private readonly silentAt: number | undefined
  private readonly malformed: Set<number>
  private readonly oversize: Set<number>
  /** Thresholds of `unknown-id-after` not yet used: each hits the first response at or after it. */
  private readonly unknownId: Array<number>
  /** Total delay applied to every response. */
  readonly responseDelay: Duration.Duration
  /** Notifications to flood right after the negotiate response. */
  readonly flood: number

  constructor(faults: ReadonlyArray<Fault>) {
    const min = (xs: Array<number>) => (xs.length === 0 ? undefined : Math.min(...xs))
    this.dropAt = min(faults.flatMap((f) => (f._tag === "DropAfter" ? [f.messages] : [])))
    this.silentAt = min(faults.flatMap((f) => (f._tag === "SilentAfter" ? [f.messages] : [])))
    this.malformed = new Set(counts(faults, "MalformedAfter"))
    this.oversize = new Set(counts(faults, "OversizeAfter"))
    this.unknownId = counts(faults, "UnknownIdAfter").sort((a, b) => a - b)
    this.responseDelay = faults.reduce(
      (total, f) => (f._tag === "Delay" ? Duration.sum(total, f.duration) : total),
      Duration.zero
    )
    this.flood = faults.reduce((total, f) => (f._tag === "Flood" ? total + f.notifications : total), 0)
  }

  /** `drop-after=0`: the connection is dropped before anything is written. */
  get dropImmediately(): boolean {
    return this.dropAt === 0
  }

  /** Decides the fate of the next message. */
  next(message: OutboundFrame): Decision {
    const n = this.sent
    this.sent++
    const dropAfter = this.dropAt !== undefined && this.sent >= this.dropAt
    // Swallowed messages still count, so `drop-after` can follow `silent-after`.
    if (this.silentAt !== undefined && n >= this.silentAt) return { bytes: [], dropAfter }
    if (this.oversize.has(n)) {
      const header = new Uint8Array(Frame.HeaderSize)
      Frame.writeHeader(header, message.type, message.id, OversizeDeclaredSize - Frame.HeaderSize)
      return { bytes: [header], dropAfter }
    }
    let frame = message.frame
    if (this.malformed.has(n)) {
      frame = new Uint8Array(Frame.HeaderSize + garbage.length)
      Frame.writeHeader(frame, message.type, message.id, garbage.length)
      frame.set(garbage, Frame.HeaderSize)
    }
    if (message.kind === "response" && this.unknownId.length > 0 && this.unknownId[0]! <= n) {
      this.unknownId.shift()
      // Hosts allocate ids counting up from 0: this one was never used.
      const copy = frame.slice()
      Frame.writeHeader(copy, message.type, message.id + 0x100000000, copy.length - Frame.HeaderSize)
      frame = copy
    }
    return { bytes: [frame], dropAfter }
  }
}
