import { describe, expect } from "@effect/vitest"
import { Result, Schema } from "effect"
import {
  Codec,
  Container,
  Frame,
  FrameDecoder,
  GoJson,
  MessageType,
  Properties,
  Rpc
} from "@gcs-bridge/protocol"
import fc from "fast-check"
import { arbitrary, prop } from "./arbitrary.js"

// Reads back the single frame of an encoded buffer through the real decoder.
const readOne = (bytes: Uint8Array) => {
  const reader = new FrameDecoder.FrameReader({ maxFrameSize: 0xffffffff })
  const frames = reader.push(bytes)
  expect(reader.end()).toBeUndefined()
  expect(frames).toHaveLength(1)
  return frames[0]!
}

// Every wire body Schema: encode∘decode through Go-style JSON text is the identity.
const bodySchemas: ReadonlyArray<readonly [string, Schema.Codec<unknown, unknown>]> = [
  ...MessageType.procNames.flatMap((name) => [
    [`${name} request`, Rpc.Rpcs[name].request as unknown as Schema.Codec<unknown, unknown>] as const,
    [`${name} response`, Rpc.Rpcs[name].response as unknown as Schema.Codec<unknown, unknown>] as const
  ]),
  ["ContainerNotification", Container.ContainerNotification as unknown as Schema.Codec<unknown, unknown>],
  ["ContainerPropertiesV1", Properties.ContainerPropertiesV1 as unknown as Schema.Codec<unknown, unknown>],
  ["PropertiesV2", Properties.PropertiesV2 as unknown as Schema.Codec<unknown, unknown>]
]

describe("Schema bodies", () => {
  for (const [label, schema] of bodySchemas) {
    prop(
      `${label}: decode(parse(goStringify(encode(x)))) = x`,
      [arbitrary(schema)],
      ([value]) => {
        const encode = Schema.encodeSync(schema)
        const decode = Schema.decodeUnknownSync(schema)
        const text = GoJson.goStringify(encode(value), { escapeHtml: false })
        expect(decode(JSON.parse(text))).toEqual(value)
        // Encoding is deterministic: the decoded copy writes the same text.
        expect(GoJson.goStringify(encode(decode(JSON.parse(text))), { escapeHtml: false })).toBe(text)
      },
      { numRuns: 40 }
    )
  }
})

describe("Codec frames", () => {
  for (const name of MessageType.procNames) {
    prop(
      `${name}: guest decodeRequest(host encodeRequest(x)) = x`,
      [arbitrary(Rpc.Rpcs[name].request), fc.maxSafeNat().map((n) => n % (2 ** 40 + 1))],
      ([body, id]) => {
        const bytes = Result.getOrThrow(Codec.encodeRequest(name, id, body as never))
        const frame = readOne(bytes)
        expect(frame.type).toBe(MessageType.requestType(Rpc.Rpcs[name].proc))
        expect(frame.id).toBe(id)
        expect(new TextDecoder().decode(frame.payload).endsWith("}\n")).toBe(true)
        const decoded = Result.getOrThrow(Codec.decodeRequest(frame))
        expect(decoded.name).toBe(name)
        expect(decoded.body).toEqual(body)
      },
      { numRuns: 30 }
    )

    prop(
      `${name}: host decodeResponse(guest encodeResponse(x)) = x (base only on failure)`,
      [arbitrary(Rpc.Rpcs[name].response), fc.maxSafeNat().map((n) => n % (2 ** 32 + 1))],
      ([body, id]) => {
        const bytes = Codec.encodeResponse(name as MessageType.ProcName, id, body as never)
        const frame = readOne(bytes)
        expect(frame.type).toBe(MessageType.responseType(Rpc.Rpcs[name].proc))
        expect(MessageType.classOf(frame.type)).toBe(MessageType.MessageClass.Response)
        const decoded = Result.getOrThrow(Codec.decodeResponse(name, frame.payload)) as unknown as Record<
          string,
          unknown
        >
        const original = body as unknown as Record<string, unknown>
        if (original["Result"] === 0) {
          expect(decoded).toEqual(original)
        } else {
          for (const key of ["Result", "ActivityId", "ErrorMessage", "ErrorRecords"]) {
            expect(decoded[key]).toEqual(original[key])
          }
          expect(frame.payload.length).toBeGreaterThan(0)
        }
      },
      { numRuns: 30 }
    )
  }

  prop(
    "notifications: decodeNotification(encodeNotification(x)) = x",
    [arbitrary(Container.ContainerNotification)],
    ([body]) => {
      const frame = readOne(Codec.encodeNotification(body))
      expect(frame.type).toBe(MessageType.NotifyContainer)
      expect(frame.id).toBe(0)
      expect(frame.payload.length + Frame.HeaderSize).toBe(
        readOne(Codec.encodeNotification(body)).payload.length + Frame.HeaderSize
      )
      expect(Result.getOrThrow(Codec.decodeNotification(frame.payload))).toEqual(body)
    },
    { numRuns: 50 }
  )
})
