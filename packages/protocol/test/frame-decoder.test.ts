import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Result, Stream } from "effect"
import { Frame, FrameDecoder, MessageType, ProtocolError } from "@gcs-bridge/protocol"
import fc from "fast-check"
import { prop } from "./arbitrary.js"

const header = (type: number, size: number, idLo = 0, idHi = 0): Uint8Array => {
  const b = new Uint8Array(Frame.HeaderSize)
  const v = new DataView(b.buffer)
  v.setUint32(0, type, true)
  v.setUint32(4, size, true)
  v.setUint32(8, idLo, true)
  v.setUint32(12, idHi, true)
  return b
}

const concat = (parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

const plain = (fs: ReadonlyArray<Frame.Frame>) =>
  fs.map((f) => ({ type: f.type, id: f.id, payload: Array.from(f.payload) }))

// Splits `bytes` at the given (sorted, deduplicated) cut points.
const split = (bytes: Uint8Array, cuts: ReadonlyArray<number>): Array<Uint8Array> => {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b)
  const out: Array<Uint8Array> = []
  let from = 0
  for (const p of points) {
    out.push(bytes.subarray(from, p))
    from = p
  }
  out.push(bytes.subarray(from))
  return out
}

const readAll = (
  chunks: ReadonlyArray<Uint8Array>,
  options?: ConstructorParameters<typeof FrameDecoder.FrameReader>[0]
) => {
  const reader = new FrameDecoder.FrameReader(options)
  const out: Array<Frame.Frame> = []
  for (const c of chunks) out.push(...reader.push(c))
  return { frames: out, error: reader.end(), reader }
}

const frameArb = fc.record({
  type: fc.constantFrom(0x20100101, 0x20100501, 0x20000000, MessageType.NotifyContainer, 0x10100601),
  id: fc.nat({ max: 2 ** 40 }),
  payload: fc.uint8Array({ maxLength: 300 })
})

describe("FrameReader", () => {
  it("reads header fields little-endian, with a 64-bit id", () => {
    const payload = new TextEncoder().encode('{"Result":0}')
    const bytes = concat([header(0x20100b01, Frame.HeaderSize + payload.length, 7, 1), payload])
    const { frames: got, error } = readAll([bytes])
    expect(error).toBeUndefined()
    expect(got).toHaveLength(1)
    expect(got[0]!.type).toBe(0x20100b01)
    expect(got[0]!.id).toBe(2 ** 32 + 7)
    expect(new TextDecoder().decode(got[0]!.payload)).toBe('{"Result":0}')
  })

  it("encodeFrame writes what the reader reads", () => {
    const frame = Frame.encodeFrame(0x10100101, 2 ** 33 + 5, new Uint8Array([1, 2, 3]))
    expect(Array.from(frame.subarray(0, Frame.HeaderSize))).toEqual([
      1, 1, 16, 16, 19, 0, 0, 0, 5, 0, 0, 0, 2, 0, 0, 0
    ])
    expect(plain(readAll([frame]).frames)).toEqual([
      { type: 0x10100101, id: 2 ** 33 + 5, payload: [1, 2, 3] }
    ])
  })

  prop(
    "encodeTextFrame writes the UTF-8 of the text (and the newline) as encodeFrame would",
    [fc.string({ unit: "binary", maxLength: 3000 }), fc.boolean(), fc.nat({ max: 2 ** 40 })],
    ([text, newline, id]) => {
      const frame = Frame.encodeTextFrame(0x10100201, id, text, newline)
      const payload = new TextEncoder().encode(newline ? text + "\n" : text)
      expect(Array.from(frame)).toEqual(Array.from(Frame.encodeFrame(0x10100201, id, payload)))
    },
    { numRuns: 300 }
  )

  it("encodeTextFrame never hands out bytes of a frame still held", () => {
    // Enough frames to fill several slabs, with texts that need 1 to 4 bytes per character.
    const texts = Array.from({ length: 2000 }, (_, i) => `${i}:${"é€😀x".repeat(i % 50)}`)
    const frames = texts.map((text, i) => Frame.encodeTextFrame(0x10100201, i, text, true))
    const big = Frame.encodeTextFrame(0x10100201, 1, "z".repeat(100_000), false)
    expect(big.length).toBe(Frame.HeaderSize + 100_000)
    const { frames: got, error } = readAll(frames)
    expect(error).toBeUndefined()
    expect(got.map((f) => [f.id, new TextDecoder().decode(f.payload)])).toEqual(
      texts.map((text, i) => [i, text + "\n"])
    )
  })

  it("encodeTextFrame rejects an id that is not a non-negative safe integer", () => {
    expect(() => Frame.encodeTextFrame(0x10100201, -1, "{}", true)).toThrow(RangeError)
    expect(() => Frame.encodeTextFrame(0x10100201, 2 ** 53, "{}", true)).toThrow(RangeError)
  })

  it("slices the payload without copying when it lies in one chunk", () => {
    const bytes = concat([
      Frame.encodeFrame(0x20100101, 1, new Uint8Array(100)),
      Frame.encodeFrame(0x20100201, 2, new Uint8Array(5))
    ])
    const reader = new FrameDecoder.FrameReader()
    const got = reader.push(bytes)
    expect(got).toHaveLength(2)
    for (const f of got) expect(f.payload.buffer).toBe(bytes.buffer)
    expect(got[1]!.payload.byteOffset).toBe(Frame.HeaderSize + 100 + Frame.HeaderSize)
  })

  it("assembles a payload spread over chunks into one exact buffer", () => {
    const bytes = Frame.encodeFrame(
      0x20100101,
      9,
      Uint8Array.from({ length: 50 }, (_, i) => i)
    )
    const reader = new FrameDecoder.FrameReader()
    expect(reader.push(bytes.subarray(0, 10))).toHaveLength(0)
    expect(reader.buffered).toBe(10)
    expect(reader.push(bytes.subarray(10, 40))).toHaveLength(0)
    expect(reader.offset).toBe(Frame.HeaderSize)
    const got = reader.push(bytes.subarray(40))
    expect(got).toHaveLength(1)
    expect(got[0]!.payload.byteLength).toBe(50)
    expect(got[0]!.payload.buffer.byteLength).toBe(50)
    expect(Array.from(got[0]!.payload)).toEqual(Array.from({ length: 50 }, (_, i) => i))
    expect(reader.offset).toBe(bytes.length)
    expect(reader.buffered).toBe(0)
  })

  it("accepts an empty payload", () => {
    expect(plain(readAll([header(0x20000000, Frame.HeaderSize, 3)]).frames)).toEqual([
      { type: 0x20000000, id: 3, payload: [] }
    ])
  })

  it("rejects a 4 GiB size field from 16 bytes of input, before allocating", () => {
    const reader = new FrameDecoder.FrameReader()
    expect(reader.push(header(0x20100101, 0xffffffff))).toHaveLength(0)
    expect(reader.error).toBeInstanceOf(ProtocolError.ProtocolError)
    expect(reader.error).toMatchObject({ reason: "Oversize", offset: 0, messageType: 0x20100101 })
    expect(reader.end()).toBe(reader.error)
  })

  it("honours a configured limit, inclusive", () => {
    const ok = Frame.encodeFrame(0x20100101, 0, new Uint8Array(84))
    expect(readAll([ok], { maxFrameSize: 100 }).error).toBeUndefined()
    const big = Frame.encodeFrame(0x20100101, 0, new Uint8Array(85))
    expect(readAll([big], { maxFrameSize: 100 }).error?.reason).toBe("Oversize")
    expect(
      readAll([
        Frame.encodeFrame(0x20100101, 0, new Uint8Array(Frame.DefaultMaxFrameSize - Frame.HeaderSize))
      ]).error
    ).toBeUndefined()
    expect(
      readAll([Frame.encodeFrame(0x20100101, 0, new Uint8Array(Frame.DefaultMaxFrameSize))]).error?.reason
    ).toBe("Oversize")
    expect(() => new FrameDecoder.FrameReader({ maxFrameSize: 8 })).toThrow(RangeError)
  })

  it("rejects sizes below the header size", () => {
    for (const size of [0, 1, 15]) {
      expect(readAll([header(0x20100101, size)]).error).toMatchObject({ reason: "Undersize", offset: 0 })
    }
  })

  it("rejects unknown type words by default and accepts the sidecar's bare response", () => {
    for (const type of [0, 0x00100101, 0x40100101, 0xf0000000, 0x30100102, 0x30000000]) {
      expect(readAll([header(type, Frame.HeaderSize)]).error).toMatchObject({
        reason: "UnknownType",
        messageType: type
      })
      expect(FrameDecoder.defaultAcceptType(type)).toBe(false)
    }
    for (const type of [
      0x20000000,
      0x20100101,
      0x2fffffff,
      MessageType.NotifyContainer,
      0x10100101,
      MessageType.MessageClass.Request
    ]) {
      expect(FrameDecoder.defaultAcceptType(type)).toBe(true)
    }
    const onlyResponses = (t: number) => t >>> 28 === 2
    expect(readAll([header(0x10100101, Frame.HeaderSize)], { acceptType: onlyResponses }).error?.reason).toBe(
      "UnknownType"
    )
  })

  it("reports where the stream was cut", () => {
    const frame = Frame.encodeFrame(0x20100101, 4, new Uint8Array(20))
    const inHeader = readAll([frame, frame.subarray(0, 5)]).error
    expect(inHeader).toMatchObject({ reason: "Truncated", offset: frame.length })
    const inPayload = readAll([frame, frame.subarray(0, 30)]).error
    expect(inPayload).toMatchObject({
      reason: "Truncated",
      offset: frame.length,
      id: 4,
      messageType: 0x20100101
    })
  })

  it("keeps the first error and ignores later input", () => {
    const reader = new FrameDecoder.FrameReader()
    reader.push(header(0, Frame.HeaderSize))
    const first = reader.error
    expect(reader.push(Frame.encodeFrame(0x20100101, 1, new Uint8Array(1)))).toHaveLength(0)
    expect(reader.error).toBe(first)
  })

  it("reports the offset of a bad frame after good ones", () => {
    const good = Frame.encodeFrame(0x20100101, 1, new Uint8Array(7))
    const { frames: got, error } = readAll([concat([good, good, header(0x20100101, 3)])])
    expect(got).toHaveLength(2)
    expect(error).toMatchObject({ reason: "Undersize", offset: 2 * good.length })
  })

  prop(
    "splitting a valid stream anywhere yields the same frames",
    [fc.array(frameArb, { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 20 })],
    ([list, cuts]) => {
      const bytes = concat(list.map((f) => Frame.encodeFrame(f.type, f.id, f.payload)))
      const whole = readAll([bytes])
      const pieces = readAll(split(bytes, cuts))
      expect(whole.error).toBeUndefined()
      expect(pieces.error).toBeUndefined()
      expect(plain(pieces.frames)).toEqual(plain(list.map((f) => ({ ...f, payload: f.payload }))))
      expect(plain(pieces.frames)).toEqual(plain(whole.frames))
    }
  )

  prop(
    "a truncated stream yields its whole frames then Truncated",
    [fc.array(frameArb, { minLength: 1, maxLength: 5 }), fc.nat()],
    ([list, cut]) => {
      const encoded = list.map((f) => Frame.encodeFrame(f.type, f.id, f.payload))
      const bytes = concat(encoded)
      const at = cut % bytes.length
      const { frames: got, error } = readAll([bytes.subarray(0, at)])
      let complete = 0
      for (let sum = 0, i = 0; i < encoded.length && sum + encoded[i]!.length <= at; i++) {
        sum += encoded[i]!.length
        complete++
      }
      expect(got).toHaveLength(complete)
      const boundary = encoded.slice(0, complete).reduce((n, e) => n + e.length, 0) === at
      if (boundary) expect(error).toBeUndefined()
      else expect(error).toMatchObject({ reason: "Truncated" })
    }
  )

  prop(
    "mutated streams give frames or a typed error, never a throw",
    [
      fc.array(frameArb, { minLength: 1, maxLength: 5 }),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
      fc.array(fc.nat(), { maxLength: 6 })
    ],
    ([list, mutations, cuts]) => {
      const bytes = concat(list.map((f) => Frame.encodeFrame(f.type, f.id, f.payload))).slice()
      for (const [at, value] of mutations) bytes[at % bytes.length] = value
      const { frames: got, error } = readAll(split(bytes, cuts))
      if (error !== undefined) expect(error).toBeInstanceOf(ProtocolError.ProtocolError)
      const consumed = got.reduce((n, f) => n + Frame.HeaderSize + f.payload.length, 0)
      expect(consumed).toBeLessThanOrEqual(bytes.length)
      for (const f of got)
        expect(f.payload.length + Frame.HeaderSize).toBeLessThanOrEqual(Frame.DefaultMaxFrameSize)
    }
  )

  prop(
    "random bytes give frames or a typed error, never a throw",
    [fc.uint8Array({ maxLength: 2000 }), fc.array(fc.nat(), { maxLength: 6 })],
    ([bytes, cuts]) => {
      const { frames: got, error } = readAll(split(bytes, cuts))
      if (error === undefined) {
        expect(got.reduce((n, f) => n + Frame.HeaderSize + f.payload.length, 0)).toBe(bytes.length)
      } else {
        expect(error).toBeInstanceOf(ProtocolError.ProtocolError)
        expect(["Oversize", "Undersize", "UnknownType", "Truncated"]).toContain(error.reason)
      }
    }
  )
})

describe("decodeFrames", () => {
  const collect = (chunks: ReadonlyArray<Uint8Array>, options?: Parameters<typeof FrameDecoder.frames>[1]) =>
    Stream.runCollect(FrameDecoder.frames(Stream.fromIterable(chunks), options))

  it.effect("turns a chunked byte stream into frames", () =>
    Effect.gen(function* () {
      const a = Frame.encodeFrame(0x20100501, 1, new TextEncoder().encode('{"Result":0,"ProcessId":4}'))
      const b = Frame.encodeFrame(MessageType.NotifyContainer, 0, new TextEncoder().encode("{}"))
      const got = yield* collect(split(concat([a, b]), [3, 17, 30, 44]))
      expect(got.map((f) => [f.type, f.id, f.payload.length])).toEqual([
        [0x20100501, 1, 26],
        [MessageType.NotifyContainer, 0, 2]
      ])
    })
  )

  it.effect("emits the frames before a violation, then fails with it", () =>
    Effect.gen(function* () {
      const good = Frame.encodeFrame(0x20100101, 1, new Uint8Array(3))
      const seen: Array<Frame.Frame> = []
      const exit = yield* Stream.fromIterable([good, header(0x50000000, Frame.HeaderSize)]).pipe(
        (s) => FrameDecoder.frames(s),
        Stream.runForEach((f) => Effect.sync(() => seen.push(f))),
        Effect.exit
      )
      expect(seen).toHaveLength(1)
      expect(Exit.isFailure(exit)).toBe(true)
      const error = yield* Effect.flip(collect([good, header(0x50000000, Frame.HeaderSize)]))
      expect(error).toBeInstanceOf(ProtocolError.ProtocolError)
      expect(error).toMatchObject({ reason: "UnknownType", offset: good.length })
    })
  )

  it.effect("fails with Truncated when upstream ends inside a frame", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        collect([Frame.encodeFrame(0x20100101, 1, new Uint8Array(9)).subarray(0, 20)])
      )
      expect(error).toMatchObject({ _tag: "ProtocolError", reason: "Truncated" })
    })
  )

  it.effect("passes upstream failures through unchanged", () =>
    Effect.gen(function* () {
      const upstream = Stream.concat(
        Stream.make(Frame.encodeFrame(0x20100101, 1, new Uint8Array(1))),
        Stream.fail("socket reset" as const)
      )
      const error = yield* Effect.flip(Stream.runCollect(FrameDecoder.frames(upstream)))
      expect(error).toBe("socket reset")
    })
  )

  it.effect("uses the configured limit and accept function", () =>
    Effect.gen(function* () {
      const frame = Frame.encodeFrame(0x10100101, 1, new Uint8Array(200))
      const onlyResponses = (t: number) => t >>> 28 === 2
      expect(yield* Effect.flip(collect([frame], { acceptType: onlyResponses }))).toMatchObject({
        reason: "UnknownType"
      })
      const onlyRequests = (t: number) => t >>> 28 === 1
      expect(yield* collect([frame], { acceptType: onlyRequests })).toHaveLength(1)
      expect(
        yield* Effect.flip(collect([frame], { acceptType: onlyRequests, maxFrameSize: 100 }))
      ).toMatchObject({
        reason: "Oversize"
      })
    })
  )

  it.effect("an empty stream gives no frames", () =>
    Effect.gen(function* () {
      expect(yield* collect([])).toEqual([])
      expect(
        yield* Stream.runCollect(Stream.empty.pipe(Stream.pipeThroughChannel(FrameDecoder.decodeFrames())))
      ).toEqual([])
    })
  )

  prop(
    "chunking of the stream never changes the frames",
    [fc.array(frameArb, { maxLength: 6 }), fc.array(fc.nat(), { maxLength: 10 })],
    ([list, cuts]) => {
      const bytes = concat(list.map((f) => Frame.encodeFrame(f.type, f.id, f.payload)))
      const got = Effect.runSync(Effect.result(collect(split(bytes, cuts))))
      expect(Result.isSuccess(got)).toBe(true)
      expect(plain(Result.getOrThrow(got))).toEqual(plain(list))
    }
  )
})
