/**
 * fast-check arbitraries derived from the wire Schemas (Effect 4's own
 * generator does not see through the Go combinators), and `prop`, a property
 * test on fast-check.
 */
import { it } from "@effect/vitest"
import type { Schema } from "effect"
import { SchemaAST } from "effect"
import fc from "fast-check"
import { GoSchema, Guid, ModifySettings, Negotiate, Process } from "@gcs-bridge/protocol"
import { nodeOf } from "../src/internal/compile.js"

// "__proto__" cannot round-trip through a plain object; everything else can.
const jsonKey = fc.string({ maxLength: 12 }).filter((k) => k !== "__proto__")

const jsonValue: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    fc.integer({ min: -1_000_000, max: 1_000_000 }),
    fc.string(),
    fc.array(tie("value"), { maxLength: 3 }),
    fc.dictionary(jsonKey, tie("value"), { maxKeys: 3 })
  )
})).value

const leaves = new Map<Schema.Top, fc.Arbitrary<unknown>>([
  [GoSchema.JsonValue, jsonValue],
  [GoSchema.JsonObject, fc.dictionary(jsonKey, jsonValue, { maxKeys: 4 })],
  [GoSchema.Uint8, fc.integer({ min: 0, max: 0xff })],
  [GoSchema.Uint16, fc.integer({ min: 0, max: 0xffff })],
  [GoSchema.Uint32, fc.integer({ min: 0, max: 0xffffffff })],
  [GoSchema.Int32, fc.integer({ min: -0x80000000, max: 0x7fffffff })],
  [
    GoSchema.Uint64,
    fc.integer({ min: 0, max: 0x7fffffff }).chain((hi) => fc.nat().map((lo) => hi * 4096 + lo))
  ],
  [
    GoSchema.HResultCode,
    fc.integer({ min: 0, max: 0x7fffffff }).chain((n) => fc.constantFrom(n, n + 0x80000000))
  ],
  [Guid.Guid, fc.uint8Array({ minLength: 16, maxLength: 16 }).map((bytes) => Guid.guidFromBytes(bytes))]
])

// Positions typed `interface{}`: values that survive encode∘decode.
const polymorphic: Record<string, fc.Arbitrary<unknown>> = {
  SignalProcessOptions: fc.oneof(
    fc
      .integer({ min: -0x80000000, max: 0x7fffffff })
      .map((Signal) => new Process.SignalProcessOptionsLinux({ Signal })),
    fc
      .constantFrom(...Object.values(Process.WindowsSignal))
      .map((Signal) => new Process.SignalProcessOptionsWindows({ Signal }))
  ),
  ModificationSettings: fc.dictionary(
    fc.constantFrom("Lun", "MountPath", "ReadOnly"),
    fc.oneof(fc.boolean(), fc.nat(), fc.string())
  ),
  ModifySettingsRequest: fc.oneof(
    fc
      .record({
        RequestType: fc.constantFrom(...Object.values(ModifySettings.ModifyRequestType)),
        ResourceType: fc.constantFrom(...Object.values(ModifySettings.ResourceType))
      })
      .map((r) => new ModifySettings.ModificationRequest(r)),
    fc
      .record({ ResourcePath: fc.string({ minLength: 1 }), RequestType: fc.constantFrom("Add", "Update") })
      .map((r) => new ModifySettings.HcsModifySettingRequest(r))
  ),
  GuestDefinedCapabilities: fc.oneof(
    fc.tuple(fc.boolean(), fc.boolean(), fc.boolean(), fc.boolean()).map(
      ([a, b, c, d]) =>
        new Negotiate.LinuxGuestDefinedCapabilities({
          NamespaceAddRequestSupported: a,
          SignalProcessSupported: b,
          DumpStacksSupported: c,
          DeleteContainerStateSupported: d
        })
    ),
    fc
      .tuple(fc.boolean(), fc.boolean(), fc.boolean())
      .filter(([a, b, c]) => a || b || c)
      .map(
        ([a, b, c]) =>
          new Negotiate.WindowsGuestDefinedCapabilities({
            UpdateContainerSupported: a,
            LogForwardingSupported: b,
            HostProcessContainerSupported: c,
            SignalProcessSupported: true
          })
      )
  )
}

type Wrapper = Schema.Top & {
  readonly schema?: Schema.Top
  readonly members?: ReadonlyArray<Schema.Top>
  readonly value?: Schema.Top
  readonly fields?: Readonly<Record<string, Schema.Top>>
}

const memo = new Map<Schema.Top, fc.Arbitrary<unknown>>()

/** Values of a wire Schema's type side. */
export const arbitrary = <S extends Schema.Top>(schema: S): fc.Arbitrary<S["Type"]> => {
  let arb = memo.get(schema)
  if (arb === undefined) {
    arb = derive(schema as Wrapper)
    memo.set(schema, arb)
  }
  return arb as fc.Arbitrary<S["Type"]>
}

const derive = (schema: Wrapper): fc.Arbitrary<unknown> => {
  const leaf = leaves.get(schema)
  if (leaf !== undefined) return leaf
  const node = nodeOf(schema)
  switch (node?._tag) {
    case "Field":
    case "JsonInString":
      return arbitrary(node.inner)
    case "Map":
      return fc.dictionary(jsonKey, arbitrary(node.value), { maxKeys: 3 })
    case "Polymorphic": {
      const identifier = SchemaAST.toType(schema.ast).annotations?.["identifier"] as string
      return polymorphic[identifier] ?? fc.oneof(...node.members.map((m) => arbitrary(m)))
    }
  }
  if (schema.fields !== undefined) {
    const entries = Object.entries(schema.fields)
    const record = fc.record(Object.fromEntries(entries.map(([k, f]) => [k, arbitrary(f)])), {
      requiredKeys: entries.filter(([, f]) => f.ast.context?.isOptional !== true).map(([k]) => k)
    })
    if (typeof schema !== "function") return record
    const cls = schema as unknown as new (props: unknown) => unknown
    return record.map((props) => new cls(props))
  }
  if (schema.schema !== undefined && schema.ast.context !== undefined) return arbitrary(schema.schema)
  const ast = schema.ast
  switch (ast._tag) {
    case "String":
      return fc.string({ maxLength: 12 })
    case "Number":
      return fc.integer()
    case "Boolean":
      return fc.boolean()
    case "Null":
      return fc.constant(null)
    case "Undefined":
      return fc.constant(undefined)
    case "Literal":
      return fc.constant(ast.literal)
    case "Arrays":
      return fc.array(arbitrary(schema.value!), { maxLength: 3 })
    case "Union":
      return fc.oneof(...schema.members!.map((m) => arbitrary(m)))
  }
  throw new Error(`no arbitrary for ${ast._tag}`)
}

type Values<A extends ReadonlyArray<fc.Arbitrary<unknown>>> = {
  [K in keyof A]: A[K] extends fc.Arbitrary<infer T> ? T : never
}

/** A property test: `check` runs on `numRuns` generated tuples. */
export const prop = <const A extends ReadonlyArray<fc.Arbitrary<unknown>>>(
  name: string,
  arbitraries: A,
  check: (values: Values<A>) => void,
  options?: { readonly numRuns?: number }
) =>
  it(name, () => {
    fc.assert(
      fc.property(...(arbitraries as unknown as [fc.Arbitrary<unknown>]), (...values: Array<unknown>) => {
        check(values as unknown as Values<A>)
      }),
      { numRuns: options?.numRuns ?? 100 }
    )
  })
