import { spawnSync } from "node:child_process"
import { describe, expect, it } from "@effect/vitest"
import { Result, Schema } from "effect"
import fc from "fast-check"
import { Codec, Container, Envelope, GoJson, Guid, MessageType, ModifySettings } from "@gcs-bridge/protocol"
import { Process, Properties, Rpc } from "@gcs-bridge/protocol"
import { canonical, decoder, encoder, generatedCodecs, isCompiled } from "../src/internal/compile.js"
import { arbitrary, prop } from "./arbitrary.js"

type AnySchema = Schema.Codec<unknown, unknown>

const schemas: ReadonlyArray<readonly [string, AnySchema]> = [
  ...MessageType.procNames.flatMap((name) => [
    [`${name} request`, Rpc.Rpcs[name].request as unknown as AnySchema] as const,
    [`${name} response`, Rpc.Rpcs[name].response as unknown as AnySchema] as const
  ]),
  ["ContainerNotification", Container.ContainerNotification as unknown as AnySchema],
  ["ContainerPropertiesV1", Properties.ContainerPropertiesV1 as unknown as AnySchema],
  ["PropertiesV2", Properties.PropertiesV2 as unknown as AnySchema],
  ["LCOWMappedVirtualDisk", ModifySettings.LCOWMappedVirtualDisk as unknown as AnySchema],
  ["LCOWNetworkAdapter", ModifySettings.LCOWNetworkAdapter as unknown as AnySchema],
  ["LCOWContainerConstraints", ModifySettings.LCOWContainerConstraints as unknown as AnySchema]
]

// Every (container, key) slot of a JSON tree, the root's members first.
const slots = (root: unknown): Array<[Record<string, unknown> | Array<unknown>, string | number]> => {
  const out: Array<[Record<string, unknown> | Array<unknown>, string | number]> = []
  const walk = (v: unknown) => {
    if (Array.isArray(v)) v.forEach((item, i) => (out.push([v, i]), walk(item)))
    else if (typeof v === "object" && v !== null) {
      for (const [k, item] of Object.entries(v)) {
        out.push([v as Record<string, unknown>, k])
        walk(item)
      }
    }
  }
  walk(root)
  return out
}

const replacement = fc.oneof(
  fc.constantFrom(
    null,
    "",
    0,
    -1,
    1.5,
    2 ** 32,
    -(2 ** 31) - 1,
    true,
    "x",
    [],
    {},
    "null",
    "{}",
    "00000000-0000-0000-0000-000000000000"
  ),
  fc.string({ maxLength: 5 })
)

const mutation = fc.array(fc.tuple(fc.nat(), fc.oneof(fc.constantFrom("delete", "recase"), replacement)), {
  maxLength: 3
})

const mutate = (json: unknown, edits: ReadonlyArray<readonly [number, unknown]>): unknown => {
  const copy = JSON.parse(JSON.stringify(json)) as unknown
  for (const [at, edit] of edits) {
    const all = slots(copy)
    if (all.length === 0) break
    const [container, key] = all[at % all.length]!
    if (edit === "delete") {
      if (Array.isArray(container)) container.splice(key as number, 1)
      else delete container[key as string]
    } else if (edit === "recase") {
      // A key in another case, as Go's decoder still matches it (added last, so it wins over a twin).
      if (Array.isArray(container)) continue
      const value = container[key as string]
      delete container[key as string]
      container[(key as string).toLowerCase()] = value
    } else {
      ;(container as Record<string | number, unknown>)[key] = edit
    }
  }
  return copy
}

const same = (fast: Result.Result<unknown, unknown>, full: Result.Result<unknown, unknown>) => {
  expect(Result.isSuccess(fast)).toBe(Result.isSuccess(full))
  if (Result.isSuccess(fast) && Result.isSuccess(full)) expect(fast.success).toEqual(full.success)
}

describe("compiled codecs", () => {
  it("cover every wire body in both directions", () => {
    for (const [label, schema] of schemas) {
      expect([label, isCompiled(schema, "decode"), isCompiled(schema, "encode")]).toEqual([label, true, true])
    }
  })

  it("generates each struct's codec as code of its own where the process allows it", () => {
    expect(generatedCodecs()).toBeGreaterThan(schemas.length)
  })

  // Both ways a struct is compiled: generated code, and the loops that serve where code generation is forbidden.
  for (const [label, schema, generated] of schemas.flatMap(([label, schema]) => [
    [label, schema, true] as const,
    [`${label} (loops)`, schema, false] as const
  ])) {
    const fastDecode = decoder(schema, { generated })
    // Effect's parser sees the input as Go's decoder reads it (exact keys, no `null` for a zero field).
    const canon = canonical(schema)
    const parse = Schema.decodeUnknownResult(schema)
    const fullDecode = (u: unknown) => parse(canon(u))
    const fastEncode = encoder(schema, { generated })
    const fullEncode = Schema.encodeUnknownResult(schema)

    prop(
      `${label}: decode agrees with Effect's parser on valid and mutated wire JSON`,
      [arbitrary(schema), mutation],
      ([value, edits]) => {
        const wire = JSON.parse(
          GoJson.goStringify(Result.getOrThrow(fullEncode(value)), { escapeHtml: false })
        ) as unknown
        same(fastDecode(wire), fullDecode(wire))
        // Decoding twice must not be affected by the first decode (no shared mutable state).
        same(fastDecode(wire), fullDecode(wire))
        const bad = mutate(wire, edits)
        same(fastDecode(bad), fullDecode(bad))
      },
      { numRuns: 40 }
    )

    prop(
      `${label}: encode agrees with Effect's parser on instances and mutated plain objects`,
      [arbitrary(schema), mutation],
      ([value, edits]) => {
        same(fastEncode(value), fullEncode(value))
        const plain = mutate(JSON.parse(JSON.stringify(value)), edits)
        same(fastEncode(plain), fullEncode(plain))
      },
      { numRuns: 40 }
    )
  }

  it("encodes and decodes alike in a process that forbids code generation (the loops serve there)", () => {
    // The same exchange here and in a child process under --disallow-code-generation-from-strings, through the
    // built package (npm test builds it first). Source text, since vitest rewrites this file's own functions.
    const exchange = `(Codec, Envelope, Guid, Process, Result, generated) => {
      const base = { ContainerId: Guid.NullGuid, ActivityId: Guid.NullGuid, otsc: {} }
      const params = Result.getOrThrow(
        Codec.decodeProcessParameters({ CommandArgs: ["/bin/sh", "-c", "true"], environment: { B: "2", A: "1" } })
      )
      const exec = Codec.unchecked(Process.ContainerExecuteProcess, {
        ...base,
        Settings: Codec.unchecked(Process.ExecuteProcessSettings, { ProcessParameters: params })
      })
      const hex = (frame) => Buffer.from(Result.getOrThrow(frame)).toString("hex")
      const answer = new TextEncoder().encode('{"result":-1,"ActivityId":"' + Guid.NullGuid + '","exitCode":3}')
      return JSON.stringify({
        start: hex(Codec.encodeRequest("Start", 7, Codec.unchecked(Envelope.RequestBase, base))),
        exec: hex(Codec.encodeRequest("ExecuteProcess", 8, exec)),
        wait: Result.getOrThrow(Codec.decodeResponse("WaitForProcess", answer)),
        generated: generated() > 0
      })
    }`
    const run = new Function(`return ${exchange}`)() as (...args: ReadonlyArray<unknown>) => string
    const here = JSON.parse(run(Codec, Envelope, Guid, Process, Result, generatedCodecs)) as {
      generated: boolean
    }
    const dist = (path: string) => JSON.stringify(new URL(`../dist/${path}`, import.meta.url).href)
    const script = `
      import { Codec, Envelope, Guid, Process } from ${dist("index.js")}
      import { generatedCodecs } from ${dist("internal/compile.js")}
      import { Result } from "effect"
      process.stdout.write((${exchange})(Codec, Envelope, Guid, Process, Result, generatedCodecs))`
    const child = spawnSync(
      process.execPath,
      ["--disallow-code-generation-from-strings", "--input-type=module", "-e", script],
      { encoding: "utf8", cwd: new URL("..", import.meta.url).pathname }
    )
    expect(child.stderr).toBe("")
    expect(here.generated).toBe(true)
    expect(JSON.parse(child.stdout)).toEqual({ ...here, generated: false })
  })

  it("never mutates its input", () => {
    const schema = Rpc.Rpcs.WaitForProcess.response as unknown as AnySchema
    const input = { Result: -1, ActivityId: "00000000-0000-0000-0000-000000000000", ExitCode: 3, Extra: 1 }
    const before = JSON.stringify(input)
    expect(Result.isSuccess(decoder(schema)(input))).toBe(true)
    expect(JSON.stringify(input)).toBe(before)
  })
})
