/** GUID rules of GCS-PROTOCOL §5.3 / §13.2; `@gcs-bridge/protocol` is off limits (DESIGN.md layering), tests check they agree. */

/** Whether `text` is a GUID in the 36-character dashed form (hex of either case, no braces). */
export const isGuidText = (text: string): boolean => /^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$/i.test(text)

/** The canonical (lower-case) text of a GUID that passed `isGuidText`. */
export const canonicalGuid = (text: string): string => text.toLowerCase()

/** `<P as 8 hex digits>-facb-11e6-bd58-64006a7986d3`: where a Linux guest's `connect(AF_VSOCK, 2, P)` reaches a Hyper-V host. */
export const vsockServiceId = (port: number): string =>
  `${port.toString(16).padStart(8, "0")}-facb-11e6-bd58-64006a7986d3`
