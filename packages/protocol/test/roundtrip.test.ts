import { describe, expect, it } from "@effect/vitest"
import { Either, Schema } from "effect"
import type { ProcName } from "@gcs-bridge/protocol"
import {
  classOf,
  ContainerNotification,
  ContainerPropertiesV1,
  decodeNotification,
  decodeRequest,
  decodeResponse,
  encodeNotification,
  encodeRequest,
  encodeResponse,
  FrameReader,
  goStringify,
  HeaderSize,
  MessageClass,
  NotifyContainer,
  procNames,
  PropertiesV2,
  requestType,
  responseType,
  Rpcs
} from "@gcs-bridge/protocol"

// Reads back the single frame of an encoded buffer through the real decoder.
const readOne = (bytes: Uint8Array) => {
  const reader = new FrameReader({ maxFrameSize: 0xffffffff })
  const frames = reader.push(bytes)
  expect(reader.end()).toBeUndefined()
  expect(frames).toHaveLength(1)
  return frames[0]!
}

// Every wire body Schema: encode∘decode through Go-style JSON text is the identity.
const bodySchemas: ReadonlyArray<readonly [string, Schema.Schema<unknown, unknown>]> = [
  ...procNames.flatMap((name) => [
    [`${name} request`, Rpcs[name].request as unknown as Schema.Schema<unknown, unknown>] as const,
    [`${name} response`, Rpcs[name].response as unknown as Schema.Schema<unknown, unknown>] as const
  ]),
  ["ContainerNotification", ContainerNotification as unknown as Schema.Schema<unknown, unknown>],
  ["ContainerPropertiesV1", ContainerPropertiesV1 as unknown as Schema.Schema<unknown, unknown>],
  ["PropertiesV2", PropertiesV2 as unknown as Schema.Schema<unknown, unknown>]
]

describe("Schema bodies", () => {
  for (const [label, schema] of bodySchemas) {
    it.prop(
      `${label}: decode(parse(goStringify(encode(x)))) = x`,
      [schema],
      ([value]) => {
        const encode = Schema.encodeSync(schema)
        const decode = Schema.decodeUnknownSync(schema)
        const text = goStringify(encode(value), { escapeHtml: false })
        expect(decode(JSON.parse(text))).toEqual(value)
        // Encoding is deterministic: the decoded copy writes the same text.
        expect(goStringify(encode(decode(JSON.parse(text))), { escapeHtml: false })).toBe(text)
      },
      { fastCheck: { numRuns: 40 } }
    )
  }
})

describe("Codec frames", () => {
  for (const name of procNames) {
    it.prop(
      `${name}: guest decodeRequest(host encodeRequest(x)) = x`,
      [
        Rpcs[name].request as unknown as Schema.Schema<unknown, unknown>,
        Schema.Int.pipe(Schema.between(0, 2 ** 40))
      ],
      ([body, id]) => {
        const bytes = Either.getOrThrow(encodeRequest(name, id, body as never))
        const frame = readOne(bytes)
        expect(frame.type).toBe(requestType(Rpcs[name].proc))
        expect(frame.id).toBe(id)
        expect(new TextDecoder().decode(frame.payload).endsWith("}\n")).toBe(true)
        const decoded = Either.getOrThrow(decodeRequest(frame))
        expect(decoded.name).toBe(name)
        expect(decoded.body).toEqual(body)
      },
      { fastCheck: { numRuns: 30 } }
    )

    it.prop(
      `${name}: host decodeResponse(guest encodeResponse(x)) = x (base only on failure)`,
      [
        Rpcs[name].response as unknown as Schema.Schema<unknown, unknown>,
        Schema.Int.pipe(Schema.between(0, 2 ** 32))
      ],
      ([body, id]) => {
        const bytes = encodeResponse(name as ProcName, id, body as never)
        const frame = readOne(bytes)
        expect(frame.type).toBe(responseType(Rpcs[name].proc))
        expect(classOf(frame.type)).toBe(MessageClass.Response)
        const decoded = Either.getOrThrow(decodeResponse(name, frame.payload)) as unknown as Record<
          string,
          unknown
        >
        const original = body as Record<string, unknown>
        if (original["Result"] === 0) {
          expect(decoded).toEqual(original)
        } else {
          for (const key of ["Result", "ActivityId", "ErrorMessage", "ErrorRecords"]) {
            expect(decoded[key]).toEqual(original[key])
          }
          expect(frame.payload.length).toBeGreaterThan(0)
        }
      },
      { fastCheck: { numRuns: 30 } }
    )
  }

  it.prop(
    "notifications: decodeNotification(encodeNotification(x)) = x",
    [ContainerNotification],
    ([body]) => {
      const frame = readOne(encodeNotification(body))
      expect(frame.type).toBe(NotifyContainer)
      expect(frame.id).toBe(0)
      expect(frame.payload.length + HeaderSize).toBe(
        readOne(encodeNotification(body)).payload.length + HeaderSize
      )
      expect(Either.getOrThrow(decodeNotification(frame.payload))).toEqual(body)
    },
    { fastCheck: { numRuns: 50 } }
  )
})
