import { describe, expect, it } from "@effect/vitest"
import { Schema } from "effect"
import { GoJson, Guid, HResult, MessageType } from "@gcs-bridge/protocol"
import fc from "fast-check"
import { prop } from "./arbitrary.js"

describe("MessageType", () => {
  it("builds type words as §3.2 lists them, unsigned", () => {
    expect(MessageType.requestType(MessageType.Proc.Create)).toBe(0x10100101)
    expect(MessageType.responseType(MessageType.Proc.NegotiateProtocol)).toBe(0x20100b01)
    expect(MessageType.requestType(MessageType.Proc.ModifyServiceSettings)).toBe(0x10200101)
    expect(MessageType.responseType(MessageType.requestType(MessageType.Proc.UpdateContainer))).toBe(
      0x20100e01
    )
    expect(MessageType.classOf(0xf0100101)).toBe(0xf0000000)
    expect(MessageType.procOf(0x30100101)).toBe(0x00100101)
    for (const name of MessageType.procNames) {
      expect(MessageType.procName(MessageType.Proc[name])).toBe(name)
      expect(MessageType.procName(MessageType.requestType(MessageType.Proc[name]))).toBe(name)
      expect(MessageType.classOf(MessageType.responseType(MessageType.Proc[name]))).toBe(
        MessageType.MessageClass.Response
      )
    }
    expect(MessageType.procNames).toHaveLength(16)
    expect(MessageType.procName(0x00101001)).toBeUndefined()
  })

  it("names type words like the Go host", () => {
    expect(MessageType.typeName(0x10100101)).toBe("Request(Create)")
    expect(MessageType.typeName(0x20100501)).toBe("Response(ExecuteProcess)")
    expect(MessageType.typeName(MessageType.NotifyContainer)).toBe("Notify(Container)")
    expect(MessageType.typeName(0x30100102)).toBe("Notify(0x30100102)")
    expect(MessageType.typeName(0x20000000)).toBe("Response(0x20000000)")
    expect(MessageType.typeName(0x40000001)).toBe("0x40000001")
    expect(MessageType.typeName(0)).toBe("0x0")
  })

  it("knows the bridge and stdio ports", () => {
    expect(MessageType.LinuxGcsVsockPort).toBe(0x40000000)
    expect(MessageType.FirstStdioPort).toBe(MessageType.LinuxGcsVsockPort + 1)
  })
})

describe("Guid", () => {
  it("follows the Go parser's rules", () => {
    expect(Guid.isGuid(Guid.NullGuid)).toBe(true)
    expect(Guid.isGuid("3F2504E0-4f89-11D3-9A0C-0305E82C3301")).toBe(true)
    for (const bad of [
      "",
      "{3f2504e0-4f89-11d3-9a0c-0305e82c3301}",
      "3f2504e04f8911d39a0c0305e82c3301",
      "3f2504e0-4f89-11d3-9a0c-0305e82c330",
      "3f2504e0-4f8911d3-9a0c--0305e82c3301",
      "3f2504e0-4f89-11d3-9a0c-0305e82c330g"
    ]) {
      expect(Guid.isGuid(bad)).toBe(false)
      expect(() => Guid.makeGuid(bad)).toThrow(TypeError)
      expect(() => Schema.decodeUnknownSync(Guid.Guid)(bad)).toThrow()
    }
  })

  it("maps vsock ports to Hyper-V service ids (§13.2)", () => {
    expect(Guid.vsockServiceId(0x40000000)).toBe("40000000-facb-11e6-bd58-64006a7986d3")
    expect(Guid.vsockServiceId(0x40000001)).toBe("40000001-facb-11e6-bd58-64006a7986d3")
    expect(Guid.vsockServiceId(109)).toBe("0000006d-facb-11e6-bd58-64006a7986d3")
    expect(Guid.vsockPortOf(Guid.vsockServiceId(0xffffffff))).toBe(0xffffffff)
    expect(Guid.vsockPortOf(Guid.WellKnownGuid.WindowsGcsHvsockServiceId)).toBeUndefined()
    expect(() => Guid.vsockServiceId(-1)).toThrow(RangeError)
    expect(() => Guid.vsockServiceId(2 ** 32)).toThrow(RangeError)
  })

  it("uses the Windows mixed-endian byte layout (§13.3)", () => {
    const bytes = Guid.guidToBytes(Guid.makeGuid("40000001-facb-11e6-bd58-64006a7986d3"))
    expect(Buffer.from(bytes).toString("hex")).toBe("01000040cbfae611bd5864006a7986d3")
    expect(() => Guid.guidFromBytes(new Uint8Array(15))).toThrow(RangeError)
  })

  prop("bytes round-trip", [fc.uint8Array({ minLength: 16, maxLength: 16 })], ([bytes]) => {
    const guid = Guid.guidFromBytes(bytes)
    expect(Guid.isGuid(guid)).toBe(true)
    expect(guid).toBe(guid.toLowerCase())
    expect(Array.from(Guid.guidToBytes(guid))).toEqual(Array.from(bytes))
    expect(Guid.guidFromBytes(Guid.guidToBytes(Guid.makeGuid(guid.toUpperCase())))).toBe(guid)
  })
})

describe("HResult", () => {
  it("converts between the wire's signed form and unsigned codes", () => {
    expect(HResult.toSigned(HResult.HResult.SystemNotFound)).toBe(-1070137074)
    expect(HResult.toUnsigned(-1070137074)).toBe(0xc037010e)
    expect(HResult.toUnsigned(-2147467263)).toBe(HResult.HResult.NotImplemented)
    expect(HResult.formatHResult(-1070137074)).toBe("0xc037010e")
    expect(HResult.formatHResult(0x490)).toBe("0x00000490")
  })

  it("names the well-known codes, signed or not", () => {
    expect(HResult.hresultName(0x80070490)).toBe("NotFound")
    expect(HResult.hresultName(-2147023728)).toBe("NotFound")
    expect(HResult.hresultName(0x490)).toBe("ElementNotFound")
    expect(HResult.hresultName(0x80370105)).toBe("GuestInvalidState")
    expect(HResult.hresultName(0xc0370105)).toBe("InvalidState")
    expect(HResult.hresultName(0x12345)).toBeUndefined()
    const values = Object.values(HResult.HResult)
    expect(new Set(values).size).toBe(values.length)
    for (const v of values) expect(v).toBe(v >>> 0)
  })

  it("treats any non-zero code as failure", () => {
    expect(HResult.isFailure(0)).toBe(false)
    expect(HResult.isFailure(1)).toBe(true)
    expect(HResult.isFailure(-1)).toBe(true)
  })

  prop("toUnsigned and toSigned are inverse", [fc.integer({ min: -0x80000000, max: 0x7fffffff })], ([n]) => {
    expect(HResult.toSigned(HResult.toUnsigned(n))).toBe(n)
    expect(HResult.toUnsigned(n)).toBeGreaterThanOrEqual(0)
    expect(HResult.toUnsigned(HResult.toUnsigned(n))).toBe(HResult.toUnsigned(n))
  })
})

describe("goStringify", () => {
  it("escapes like encoding/json", () => {
    const value = { s: "<a href='x'>&amp;</a>\u2028\u2029\n\t\u0001\u007f\"\\" }
    expect(GoJson.goStringify(value, { escapeHtml: true })).toBe(
      '{"s":"\\u003ca href=\'x\'\\u003e\\u0026amp;\\u003c/a\\u003e\\u2028\\u2029\\n\\t\\u0001\u007f\\"\\\\"}'
    )
    expect(GoJson.goStringify(value, { escapeHtml: false })).toBe(
      '{"s":"<a href=\'x\'>&amp;</a>\\u2028\\u2029\\n\\t\\u0001\u007f\\"\\\\"}'
    )
    expect(GoJson.goStringify({ "<k>": 1 }, { escapeHtml: true })).toBe('{"\\u003ck\\u003e":1}')
  })

  it("writes a lone surrogate as U+FFFD, as Go writes invalid UTF-8", () => {
    expect(GoJson.goStringify("a\ud800b\udc00", { escapeHtml: false })).toBe('"a\ufffdb\ufffd"')
    expect(GoJson.goStringify("\ud83d\ude00", { escapeHtml: false })).toBe('"\ud83d\ude00"')
    expect(GoJson.goStringify("\\ud800", { escapeHtml: false })).toBe('"\\\\ud800"')
  })

  it("keeps object order and sorts marked maps by UTF-8 bytes", () => {
    expect(GoJson.goStringify({ b: 1, a: 2 }, { escapeHtml: false })).toBe('{"b":1,"a":2}')
    const map = GoJson.markGoMap({ b: 1, a: 2, "10": 3, "9": 4, "\uffff": 5, "\ud83d\ude00": 6 })
    expect(GoJson.isGoMap(map)).toBe(true)
    expect(Object.keys(map)).toHaveLength(6)
    expect(GoJson.goStringify(map, { escapeHtml: false })).toBe(
      '{"10":3,"9":4,"a":2,"b":1,"\uffff":5,"\ud83d\ude00":6}'
    )
  })

  it("follows JSON.stringify for numbers, undefined and toJSON", () => {
    expect(GoJson.goStringify([1e21, 1e-7, -0.5, undefined, () => 1], { escapeHtml: false })).toBe(
      "[1e+21,1e-7,-0.5,null,null]"
    )
    expect(
      GoJson.goStringify({ a: undefined, b: null, c: { toJSON: () => "x" } }, { escapeHtml: false })
    ).toBe('{"b":null,"c":"x"}')
    expect(GoJson.goStringify(undefined, { escapeHtml: false })).toBe("null")
  })

  it("throws GoJsonError for what JSON cannot carry", () => {
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, 1n, [Number.NEGATIVE_INFINITY]]) {
      expect(() => GoJson.goStringify(bad, { escapeHtml: false })).toThrow(GoJson.GoJsonError)
    }
    const cyclic: Array<unknown> = []
    cyclic.push(cyclic)
    expect(() => GoJson.goStringify(cyclic, { escapeHtml: false })).toThrow(
      `nesting deeper than ${GoJson.MaxDepth}`
    )
  })

  prop(
    "equals JSON.stringify on JSON values without <, >, &, U+2028/2029 or lone surrogates",
    [fc.jsonValue()],
    ([value]) => {
      const expected = JSON.stringify(value)
      if (/[<>&\u2028\u2029]/.test(expected)) return
      expect(GoJson.goStringify(value, { escapeHtml: true })).toBe(expected)
    }
  )

  prop("parses back to the same value", [fc.jsonValue(), fc.boolean()], ([value, escapeHtml]) => {
    expect(JSON.parse(GoJson.goStringify(value, { escapeHtml }))).toEqual(JSON.parse(JSON.stringify(value)))
  })

  prop(
    "goStringifyPlain writes what goStringify writes, whichever path it takes",
    [fc.jsonValue(), fc.boolean(), fc.string({ unit: "binary" })],
    ([value, escapeHtml, text]) => {
      for (const v of [value, { text, value }, [text, Number.NaN]]) {
        const slow = (() => {
          try {
            return GoJson.goStringify(v, { escapeHtml })
          } catch (e) {
            return e
          }
        })()
        if (slow instanceof Error)
          expect(() => GoJson.goStringifyPlain(v, { escapeHtml })).toThrow(slow.message)
        else expect(GoJson.goStringifyPlain(v, { escapeHtml })).toBe(slow)
      }
    }
  )

  it("stringifyPlain leaves to the slow path what native stringify writes differently", () => {
    const deep: Array<unknown> = []
    let inner = deep
    for (let i = 0; i < GoJson.MaxDepth + 1; i++) inner.push((inner = []))
    for (const value of [Number.POSITIVE_INFINITY, { a: null }, "\ud800", deep, 1n, () => 1])
      expect(GoJson.stringifyPlain(value)).toBeUndefined()
    expect(GoJson.stringifyPlain({ b: "x", a: [1, true] })).toBe('{"b":"x","a":[1,true]}')
  })
})
