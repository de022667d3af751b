/** GUIDs as the wire writes them (§5.3) and the Hyper-V socket helpers (§13). */
import { Schema } from "effect"
import { register } from "./internal/compile.js"

const isHexCode = (c: number): boolean =>
  (c >= 48 && c <= 57) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70)

// A char-code scan: several times faster than the equivalent regular
// expression, and GUIDs are in every response.
const isGuidText = (text: string): boolean => {
  if (text.length !== 36) return false
  for (let i = 0; i < 36; i++) {
    const c = text.charCodeAt(i)
    if (i === 8 || i === 13 || i === 18 || i === 23) {
      if (c !== 45) return false
    } else if (!isHexCode(c)) return false
  }
  return true
}

/**
 * A GUID in text form: 36 characters, dashes at 8, 13, 18 and 23, hex digits of either case, no braces (the
 * Go parser's rules).
 */
export const Guid = register(
  Schema.String.check(
    Schema.makeFilter(isGuidText, {
      expected: "a GUID like 00000000-0000-0000-0000-000000000000"
    })
  )
    .pipe(Schema.brand("Guid"))
    .annotate({ identifier: "Guid" }),
  { _tag: "Leaf", is: (u) => isGuid(u), typeIs: (u) => isGuid(u) }
)

/** The type of {@link Guid}. */
export type Guid = typeof Guid.Type

/** Whether a string is a valid GUID text. */
export const isGuid = (text: unknown): text is Guid => typeof text === "string" && isGuidText(text)

/** Brands a string as a GUID, or throws a `TypeError` (for literals and trusted values). */
export const makeGuid = (text: string): Guid => {
  if (!isGuid(text)) throw new TypeError(`not a GUID: ${JSON.stringify(text)}`)
  return text
}

/** The all-zero GUID: the null (UVM) container id and the Go host's `ActivityId`. */
export const NullGuid: Guid = makeGuid("00000000-0000-0000-0000-000000000000")

const hex = (n: number, width: number): string => n.toString(16).padStart(width, "0")

/**
 * The Hyper-V service GUID of vsock port `port` (§13.2): the template `00000000-facb-11e6-bd58-64006a7986d3`
 * with Data1 replaced by the port.
 */
export const vsockServiceId = (port: number): Guid => {
  if (!Number.isInteger(port) || port < 0 || port > 0xffffffff)
    throw new RangeError(`invalid vsock port ${port}`)
  return makeGuid(`${hex(port, 8)}-facb-11e6-bd58-64006a7986d3`)
}

/** The vsock port a service GUID stands for, when it follows the §13.2 template. */
export const vsockPortOf = (guid: Guid): number | undefined =>
  guid.slice(8).toLowerCase() === "-facb-11e6-bd58-64006a7986d3" ? parseInt(guid.slice(0, 8), 16) : undefined

/**
 * The 16-byte Windows (mixed-endian) layout of a GUID (§13.3): Data1 u32 LE, Data2 u16 LE, Data3 u16 LE, then
 * the 8 bytes of Data4 in order.
 */
export const guidToBytes = (guid: Guid): Uint8Array => {
  const h = guid.replace(/-/g, "")
  const bytes = new Uint8Array(16)
  const order = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15]
  for (let i = 0; i < 16; i++) bytes[order[i]!] = parseInt(h.slice(i * 2, i * 2 + 2), 16)
  return bytes
}

/** The GUID stored in 16 bytes of Windows layout (inverse of {@link guidToBytes}); lowercase text. */
export const guidFromBytes = (bytes: Uint8Array): Guid => {
  if (bytes.length !== 16) throw new RangeError(`a GUID has 16 bytes, got ${bytes.length}`)
  const b = (i: number) => hex(bytes[i]!, 2)
  return `${b(3)}${b(2)}${b(1)}${b(0)}-${b(5)}${b(4)}-${b(7)}${b(6)}-${b(8)}${b(9)}-${b(10)}${b(11)}${b(12)}${b(13)}${b(14)}${b(15)}` as Guid
}

/** Well-known GUIDs of §13.1. */
export const WellKnownGuid = {
  /** Bridge service id of the Windows GCS. */
  WindowsGcsHvsockServiceId: makeGuid("acef5661-84a1-4e44-856b-6245e69f4620"),
  /** Bridge service id the confidential-WCOW sidecar dials. */
  WindowsSidecarGcsHvsockServiceId: makeGuid("ae8da506-a019-4553-a52b-902bc0fa0411"),
  /** `ParentAddress` given to the Windows GCS in the HvSocket ModifySettings. */
  WindowsGcsHvHostId: makeGuid("894cc2d6-9d79-424f-93fe-42969ae6d8d1"),
  /** WCOW log-forwarding stream. */
  WindowsLoggingHvsockServiceId: makeGuid("172dad59-976d-45f2-8b6c-6d1b13f2ac4d"),
  /** HV_GUID_LOOPBACK. */
  HvGuidLoopback: makeGuid("e0e16197-dd56-4a10-9195-5ee7a155a838"),
  /** HV_GUID_PARENT. */
  HvGuidParent: makeGuid("a42e7cda-d03f-480c-9cc2-a4de20abb878")
} as const
