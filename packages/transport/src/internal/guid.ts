/**
 * GUID text rules (GCS-PROTOCOL §5.3) and the vsock port → Hyper-V service id
 * mapping (§13.2). The transport may not import `@gcs-bridge/protocol` (the
 * layering of DESIGN.md runs runtime → transport → native), so the two rules it
 * needs live here; the tests check them against the protocol package.
 */

const guidPattern = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/

/** Whether `text` is a GUID in the 36-character dashed form (hex of either case, no braces). */
export const isGuidText = (text: string): boolean => guidPattern.test(text)

/** The canonical (lower-case) text of a GUID that passed `isGuidText`. */
export const canonicalGuid = (text: string): string => text.toLowerCase()

/**
 * `<P as 8 hex digits>-facb-11e6-bd58-64006a7986d3`: the service id under which
 * a Linux guest's `connect(AF_VSOCK, 2, P)` reaches a Hyper-V host.
 */
export const vsockServiceId = (port: number): string =>
  `${port.toString(16).padStart(8, "0")}-facb-11e6-bd58-64006a7986d3`
