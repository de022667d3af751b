import { describe, it } from "@effect/vitest"
import { FastCheck } from "effect"
import { expect } from "vitest"
import { isGuid, vsockServiceId as protocolVsockServiceId } from "@gcs-bridge/protocol"
import { canonicalGuid, isGuidText, vsockServiceId } from "../src/internal/guid.js"

// The transport may not import the protocol package (DESIGN.md layering), so it
// carries its own copy of the two GUID rules it needs; they must agree.
describe("transport GUID rules agree with @gcs-bridge/protocol", () => {
  it("vsockServiceId matches GCS-PROTOCOL §13.2", () => {
    expect(vsockServiceId(0x40000000)).toBe("40000000-facb-11e6-bd58-64006a7986d3")
    expect(vsockServiceId(0x40000001)).toBe("40000001-facb-11e6-bd58-64006a7986d3")
    expect(vsockServiceId(109)).toBe("0000006d-facb-11e6-bd58-64006a7986d3")
  })

  it.prop(
    "vsockServiceId equals the protocol's for every port",
    [FastCheck.integer({ min: 0, max: 0xffffffff })],
    ([port]) => {
      expect(vsockServiceId(port)).toBe(protocolVsockServiceId(port))
    }
  )

  it.prop(
    "GUID text acceptance equals the protocol's Guid schema",
    [FastCheck.uuid(), FastCheck.string({ maxLength: 40 })],
    ([uuid, junk]) => {
      for (const text of [uuid, uuid.toUpperCase(), junk, `{${uuid}}`]) {
        const ours = isGuidText(text)
        expect(ours).toBe(isGuid(text))
        if (ours) expect(canonicalGuid(text)).toBe(text.toLowerCase())
      }
    }
  )
})
