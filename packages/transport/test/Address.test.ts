import { describe, it } from "@effect/vitest"
import { Effect, Result, Schema } from "effect"
import { expect } from "vitest"
import {
  Address,
  AddressError,
  AddressFromString,
  formatAddress,
  HvsockAddress,
  HybridAddress,
  MemoryAddress,
  parseAddress,
  parseAddressSync,
  UnixAddress,
  VsockAddress
} from "../src/index.js"

describe("Address", () => {
  it("parses every documented form", () => {
    expect(parseAddressSync("vsock://3")).toEqual(new VsockAddress({ cid: 3 }))
    expect(parseAddressSync("vsock://any")).toEqual(new VsockAddress({ cid: "any" }))
    expect(parseAddressSync("vsock://0")).toEqual(new VsockAddress({ cid: 0 }))
    expect(parseAddressSync("vsock://4294967294")).toEqual(new VsockAddress({ cid: 4294967294 }))
    expect(parseAddressSync("hvsock://6F3A1D52-52A5-4A65-B3B5-0E4B41A7E0C1")).toEqual(
      new HvsockAddress({ vmId: "6f3a1d52-52a5-4a65-b3b5-0e4b41a7e0c1" })
    )
    expect(parseAddressSync("hybrid:///run/fc.sock")).toEqual(new HybridAddress({ path: "/run/fc.sock" }))
    expect(parseAddressSync("unix:///tmp/x.sock")).toEqual(new UnixAddress({ path: "/tmp/x.sock" }))
    expect(parseAddressSync("unix://relative.sock")).toEqual(new UnixAddress({ path: "relative.sock" }))
    expect(parseAddressSync("memory://name")).toEqual(new MemoryAddress({ name: "name" }))
  })

  it("formats as the documented text", () => {
    expect(formatAddress(new VsockAddress({ cid: 3 }))).toBe("vsock://3")
    expect(formatAddress(new VsockAddress({ cid: "any" }))).toBe("vsock://any")
    expect(formatAddress(new HybridAddress({ path: "/run/fc.sock" }))).toBe("hybrid:///run/fc.sock")
    expect(formatAddress(new UnixAddress({ path: "/tmp/x.sock" }))).toBe("unix:///tmp/x.sock")
    expect(formatAddress(new MemoryAddress({ name: "name" }))).toBe("memory://name")
  })

  it.prop("format then parse is the identity", [Address], ([address]) => {
    expect(parseAddressSync(formatAddress(address))).toEqual(address)
    expect(Schema.decodeSync(AddressFromString)(Schema.encodeSync(AddressFromString)(address))).toEqual(
      address
    )
  })

  const bad: ReadonlyArray<readonly [string, string]> = [
    ["", "expected vsock://"],
    ["vsock:3", "expected vsock://"],
    ["tcp://127.0.0.1:80", 'unknown scheme "tcp"'],
    ["VSOCK://3", "expected vsock://"],
    ["vsock://", "decimal number or `any`"],
    ["vsock://-1", "decimal number or `any`"],
    ["vsock://03", "decimal number or `any`"],
    ["vsock://0x3", "decimal number or `any`"],
    ["vsock://3 ", "decimal number or `any`"],
    ["vsock://4294967295", "write vsock://any"],
    ["vsock://4294967296", "unsigned 32-bit"],
    ["vsock://99999999999", "decimal number or `any`"],
    ["hvsock://", "36-character GUID"],
    ["hvsock://{6f3a1d52-52a5-4a65-b3b5-0e4b41a7e0c1}", "without braces"],
    ["hvsock://6f3a1d5252a54a65b3b50e4b41a7e0c1", "36-character GUID"],
    ["hvsock://6f3a1d52-52a5-4a65-b3b5-0e4b41a7e0cz", "36-character GUID"],
    ["hybrid://", "hybrid://<path>"],
    ["unix://", "unix://<path>"],
    ["unix:///tmp/a\0b", "NUL"],
    ["memory://", "memory://<name>"],
    ["memory://a b", "without whitespace"]
  ]

  it.effect.each(bad)("rejects %j with a clear AddressError", ([input, why]) =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(parseAddress(input))
      expect(error).toBeInstanceOf(AddressError)
      expect(error.input).toBe(input)
      expect(error.message).toContain(why)
      expect(() => parseAddressSync(input)).toThrow(AddressError)
      expect(Result.isFailure(Schema.decodeResult(AddressFromString)(input))).toBe(true)
    })
  )

  it("the Schema classes validate their fields", () => {
    expect(() => new VsockAddress({ cid: -1 })).toThrow()
    expect(() => new VsockAddress({ cid: 1.5 })).toThrow()
    expect(() => new VsockAddress({ cid: 0xffffffff })).toThrow()
    expect(() => new HvsockAddress({ vmId: "not-a-guid" })).toThrow()
    expect(() => new HvsockAddress({ vmId: "6F3A1D52-52A5-4A65-B3B5-0E4B41A7E0C1" })).toThrow()
    expect(() => new UnixAddress({ path: "" })).toThrow()
    expect(() => new MemoryAddress({ name: "a\tb" })).toThrow()
  })
})
