/**
 * Bytes in any chunking → frames, the inbound hot path: header fields read straight from the chunk, payloads
 * sliced (not copied) when they lie in one chunk, the size checked before anything is allocated.
 */
import { Array as Arr, Cause, Channel, Effect, Pull, Stream } from "effect"
import type { Frame } from "./Frame.js"
import { DefaultMaxFrameSize, HeaderSize } from "./Frame.js"
import { classOf, MessageClass, NotifyContainer, typeName } from "./MessageType.js"
import { ProtocolError } from "./ProtocolError.js"

/** Options of a frame reader. */
export interface FrameReaderOptions {
  /** Largest accepted `Size` (header included); default 64 KiB like the Go host. */
  readonly maxFrameSize?: number | undefined
  /** Which type words are acceptable; default {@link defaultAcceptType}. */
  readonly acceptType?: ((type: number) => boolean) | undefined
}

/** Accepts any request or response type word (the sidecar's bare `0x20000000` too) and `NotifyContainer`. */
export const defaultAcceptType = (type: number): boolean => {
  const cls = classOf(type)
  return cls === MessageClass.Request || cls === MessageClass.Response || type >>> 0 === NotifyContainer
}

const noFrames: ReadonlyArray<Frame> = []

const u32 = (b: Uint8Array, i: number): number =>
  (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24)) >>> 0

/**
 * Incremental, synchronous frame reader. `push` never throws: it returns the frames the chunk completes and,
 * on the first violation, records a {@link ProtocolError} in `error` and ignores later input.
 */
export class FrameReader {
  /** The size limit in force. */
  readonly maxFrameSize: number
  readonly #accept: (type: number) => boolean
  #chunks: Array<Uint8Array> = []
  #head = 0
  #headPos = 0
  #buffered = 0
  #offset = 0
  #error: ProtocolError | undefined = undefined
  // Header of the frame being assembled; #size < 0 while no header is read.
  #type = 0
  #id = 0
  #size = -1
  #frameStart = 0
  // Made by the first header split across chunks: an idle reader holds none.
  #scratch: Uint8Array | undefined

  constructor(options?: FrameReaderOptions) {
    const max = options?.maxFrameSize ?? DefaultMaxFrameSize
    if (!Number.isInteger(max) || max < HeaderSize) {
      throw new RangeError(`maxFrameSize must be an integer >= ${HeaderSize}, got ${max}`)
    }
    this.maxFrameSize = max
    this.#accept = options?.acceptType ?? defaultAcceptType
  }

  /** Bytes received but not yet returned as part of a frame (header bytes included). */
  get buffered(): number {
    return this.#buffered
  }

  /** Stream offset of the next unread byte. */
  get offset(): number {
    return this.#offset
  }

  /** The violation that stopped this reader, if any. */
  get error(): ProtocolError | undefined {
    return this.#error
  }

  /** Feeds a chunk; returns the frames it completes (possibly none). */
  push(chunk: Uint8Array): ReadonlyArray<Frame> {
    if (this.#error !== undefined || chunk.length === 0) return noFrames
    this.#chunks.push(chunk)
    this.#buffered += chunk.length
    let out: Array<Frame> | undefined
    for (;;) {
      if (this.#size < 0 && (this.#buffered < HeaderSize || !this.#readHeader())) break
      const length = this.#size - HeaderSize
      if (this.#buffered < length) break
      out ??= []
      out.push({ type: this.#type, id: this.#id, payload: this.#take(length) })
      this.#size = -1
    }
    this.#compact()
    return out ?? noFrames
  }

  /** Signals the end of the stream: `undefined` on a frame boundary, else the error that stopped it. */
  end(): ProtocolError | undefined {
    if (this.#error !== undefined || (this.#size < 0 && this.#buffered === 0)) return this.#error
    const inFrame = this.#size >= 0
    this.#error = new ProtocolError({
      reason: "Truncated",
      message: inFrame
        ? `stream ended inside ${typeName(this.#type)} id ${this.#id} at offset ${this.#frameStart}: ${this.#buffered} of ${this.#size - HeaderSize} payload bytes received`
        : `stream ended inside a frame header at offset ${this.#offset}: ${this.#buffered} of ${HeaderSize} bytes received`,
      ...(inFrame
        ? { offset: this.#frameStart, messageType: this.#type, id: this.#id }
        : { offset: this.#offset })
    })
    return this.#error
  }

  #readHeader(): boolean {
    const first = this.#chunks[this.#head]!
    const inFirst = first.length - this.#headPos >= HeaderSize
    const bytes = inFirst ? first : this.#copyInto((this.#scratch ??= new Uint8Array(HeaderSize)), HeaderSize)
    const at = inFirst ? this.#headPos : 0
    const type = u32(bytes, at)
    const size = u32(bytes, at + 4)
    const id = u32(bytes, at + 8) + u32(bytes, at + 12) * 0x100000000
    const start = this.#offset
    const fail = (reason: "Undersize" | "Oversize" | "UnknownType", message: string): false => {
      this.#error = new ProtocolError({ reason, message, offset: start, messageType: type, id })
      return false
    }
    if (size < HeaderSize)
      return fail("Undersize", `invalid message size ${size} at offset ${start} (minimum ${HeaderSize})`)
    if (size > this.maxFrameSize)
      return fail("Oversize", `invalid message size ${size} at offset ${start} (limit ${this.maxFrameSize})`)
    if (!this.#accept(type))
      return fail("UnknownType", `unexpected message type ${typeName(type)} at offset ${start}`)
    this.#advance(HeaderSize)
    this.#type = type
    this.#size = size
    this.#id = id
    this.#frameStart = start
    return true
  }

  // A view into the current chunk when the bytes lie in it, else one exact-size copy.
  #take(length: number): Uint8Array {
    const first = this.#chunks[this.#head]
    if (first === undefined) return new Uint8Array(0)
    if (first.length - this.#headPos >= length) {
      const view = first.subarray(this.#headPos, this.#headPos + length)
      this.#advance(length)
      return view
    }
    return this.#copyInto(new Uint8Array(length), length, true)
  }

  #copyInto(target: Uint8Array, length: number, consume = false): Uint8Array {
    let filled = 0
    let index = this.#head
    let pos = this.#headPos
    while (filled < length) {
      const chunk = this.#chunks[index]!
      const n = Math.min(length - filled, chunk.length - pos)
      target.set(chunk.subarray(pos, pos + n), filled)
      filled += n
      pos += n
      if (pos === chunk.length) {
        index++
        pos = 0
      }
    }
    if (consume) this.#advance(length)
    return target
  }

  #advance(n: number): void {
    this.#buffered -= n
    this.#offset += n
    let pos = this.#headPos + n
    while (this.#head < this.#chunks.length && pos >= this.#chunks[this.#head]!.length) {
      pos -= this.#chunks[this.#head]!.length
      this.#head++
    }
    this.#headPos = pos
  }

  #compact(): void {
    if (this.#head === this.#chunks.length) {
      this.#chunks = []
      this.#head = 0
      this.#headPos = 0
    } else if (this.#head >= 32) {
      this.#chunks = this.#chunks.slice(this.#head)
      this.#head = 0
    }
  }
}

/**
 * The frame decoder as a `Channel`: byte chunks in, frames out. Fails with a {@link ProtocolError} on the
 * first violation (after emitting the frames before it) or when upstream ends inside a frame.
 */
export const decodeFrames = <E = never>(
  options?: FrameReaderOptions
): Channel.Channel<
  Arr.NonEmptyReadonlyArray<Frame>,
  ProtocolError | E,
  void,
  Arr.NonEmptyReadonlyArray<Uint8Array>,
  E,
  unknown
> =>
  Channel.fromTransform((upstream: Pull.Pull<Arr.NonEmptyReadonlyArray<Uint8Array>, E, unknown>) =>
    Effect.sync(() => {
      const reader = new FrameReader(options)
      const onDone = (): Effect.Effect<never, ProtocolError | Cause.Done> => {
        const error = reader.end()
        return error === undefined ? Cause.done() : Effect.fail(error)
      }
      // The frames before a violation go out first; the next pull fails (a failed reader pushes nothing).
      const pull: Pull.Pull<Arr.NonEmptyReadonlyArray<Frame>, ProtocolError | E> = Effect.suspend(() =>
        reader.error !== undefined
          ? Effect.fail(reader.error)
          : upstream.pipe(
              Pull.catchDone(onDone),
              Effect.flatMap((input) => {
                const frames =
                  input.length === 1 ? reader.push(input[0]) : input.flatMap((c) => reader.push(c))
                return Arr.isReadonlyArrayNonEmpty(frames) ? Effect.succeed(frames) : pull
              })
            )
      )
      return pull
    })
  )

/** A byte stream as a stream of frames (`Stream.pipeThroughChannel` of {@link decodeFrames}). */
export const frames = <E, R>(
  stream: Stream.Stream<Uint8Array, E, R>,
  options?: FrameReaderOptions
): Stream.Stream<Frame, ProtocolError | E, R> => Stream.pipeThroughChannel(stream, decodeFrames<E>(options))
