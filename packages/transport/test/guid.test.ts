import { describe, it } from "@effect/vitest"
import fc from "fast-check"
import { expect } from "vitest"
import { Guid } from "@gcs-bridge/protocol"
import { canonicalGuid, isGuidText, vsockServiceId } from "../src/internal/guid.js"

// The transport may not import the protocol package (DESIGN.md layering), so it
// carries its own copy of the two GUID rules it needs; they must agree.
describe("transport GUID rules agree with @gcs-bridge/protocol", () => {
  it("vsockServiceId matches GCS-PROTOCOL §13.2", () => {
    expect(vsockServiceId(0x40000000)).toBe("40000000-facb-11e6-bd58-64006a7986d3")
    expect(vsockServiceId(0x40000001)).toBe("40000001-facb-11e6-bd58-64006a7986d3")
    expect(vsockServiceId(109)).toBe("0000006d-facb-11e6-bd58-64006a7986d3")
  })

  it("vsockServiceId equals the protocol's for every port", () =>
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), (port) => {
        expect(vsockServiceId(port)).toBe(Guid.vsockServiceId(port))
      })
    ))

  it("GUID text acceptance equals the protocol's Guid schema", () =>
    fc.assert(
      fc.property(fc.uuid(), fc.string({ maxLength: 40 }), (uuid, junk) => {
        for (const text of [uuid, uuid.toUpperCase(), junk, `{${uuid}}`]) {
          const ours = isGuidText(text)
          expect(ours).toBe(Guid.isGuid(text))
          if (ours) expect(canonicalGuid(text)).toBe(text.toLowerCase())
        }
      })
    ))
})
