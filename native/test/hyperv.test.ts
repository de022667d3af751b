/**
 * AF_HYPERV is Windows-only: on Linux the family is reported missing with a
 * typed error (the socket is never even created, since 34 means something
 * else on Linux), while the SOCKADDR_HV encoding can be checked anywhere.
 */
import { afterEach, describe, expect, it } from "vitest"
import { connect, constants, encodeAddress, isNativeError, listen, supports } from "../lib/index.js"
import { closeAll, expectSystemError, thrown } from "./support.js"

afterEach(async () => {
  expect(await closeAll()).toBe(0)
})

const address = {
  family: "hyperv",
  vmId: "ACEF5661-84A1-4E44-856B-6245E69F4620",
  serviceId: "40000000-facb-11e6-bd58-64006a7986d3"
} as const

const hex = (text: string): Array<number> => Array.from(Buffer.from(text.replace(/ /g, ""), "hex"))

describe("AF_HYPERV on Linux", () => {
  it("is not supported", () => {
    expect(supports("hyperv")).toBe(false)
  })

  it("fails listen with EAFNOSUPPORT, naming the address", () => {
    const err = thrown(() => listen(address))
    expectSystemError(err, "EAFNOSUPPORT", "socket")
    // The GUIDs went through the engine's parser and back out in canonical form.
    expect(err.message).toContain(
      "hyperv:acef5661-84a1-4e44-856b-6245e69f4620/40000000-facb-11e6-bd58-64006a7986d3"
    )
  })

  it("fails connect with EAFNOSUPPORT through the callback", async () => {
    const err = await new Promise<unknown>((resolve) => connect(address, (e) => resolve(e)))
    if (!isNativeError(err)) throw new Error("expected a NativeError")
    expectSystemError(err, "EAFNOSUPPORT", "socket")
  })

  it("encodes SOCKADDR_HV with GUIDs in Windows layout (GCS-PROTOCOL §13.3)", () => {
    const bytes = encodeAddress(address)
    expect(bytes.length).toBe(36)
    expect(Array.from(bytes)).toEqual([
      constants.AF_HYPERV,
      0,
      0,
      0,
      ...hex("61 56 ef ac a1 84 44 4e 85 6b 62 45 e6 9f 46 20"),
      ...hex("00 00 00 40 cb fa e6 11 bd 58 64 00 6a 79 86 d3")
    ])
  })

  it("rejects malformed GUIDs with EINVAL", () => {
    for (const vmId of [
      "",
      "acef5661-84a1-4e44-856b-6245e69f462",
      "acef5661-84a1-4e44-856b-6245e69f46200",
      "{acef5661-84a1-4e44-856b-6245e69f4620}",
      "acef566184a14e44856b6245e69f4620",
      "acef5661-84a1-4e44-856b-6245e69f462g",
      "acef5661_84a1-4e44-856b-6245e69f4620"
    ]) {
      const err = thrown(() => listen({ ...address, vmId }))
      expectSystemError(err, "EINVAL", "listen")
      expect(err.message).toContain("vmId must be a GUID")
    }
    expectSystemError(
      thrown(() => encodeAddress({ family: "hyperv", vmId: address.vmId } as never)),
      "EINVAL",
      "address"
    )
  })
})
