/**
 * HRESULTs (§6.5). On the wire `Result` is a signed int32; everywhere else in this package an HRESULT is the
 * unsigned 32-bit number (`0x80004001`, not `-2147467263`).
 */

/**
 * The well-known codes: those the Linux GCS produces and those the Go `hcs` package knows. Unsigned values.
 */
export const HResult = {
  /** S_OK. */
  Success: 0x00000000,
  /** E_NOTIMPL: unknown or unsupported message type, or not negotiated yet. */
  NotImplemented: 0x80004001,
  /** E_FAIL: any error that carries no HRESULT of its own. */
  Fail: 0x80004005,
  /** E_INVALIDARG (HRESULT_FROM_WIN32(ERROR_INVALID_PARAMETER)): invalid container id. */
  InvalidArgument: 0x80070057,
  /** HRESULT_FROM_WIN32(ERROR_NOT_FOUND): process not found, or already exited. */
  NotFound: 0x80070490,
  /** The Linux GCS's invalid-state code (container still being created or still running). */
  GuestInvalidState: 0x80370105,
  /** HCS_E_SYSTEM_ALREADY_STOPPED (warning form). */
  AlreadyStopped: 0x80370110,
  /** Process already stopped. */
  ProcessAlreadyStopped: 0x8037011f,
  /** The operation is pending. */
  OperationPending: 0xc0370103,
  /** The host's invalid-state code. */
  InvalidState: 0xc0370105,
  /** The compute system exited unexpectedly. */
  UnexpectedExit: 0xc0370106,
  /** WaitForProcess timed out before the process exited. */
  Timeout: 0xc0370109,
  /** Unknown message (defined, unused by the Linux GCS). */
  UnknownMessage: 0xc037010b,
  /** The negotiation range does not include version 4. */
  UnsupportedProtocolVersion: 0xc037010c,
  /** Request JSON (or embedded JSON) failed to parse or validate. */
  InvalidJson: 0xc037010d,
  /** Container id not known. */
  SystemNotFound: 0xc037010e,
  /** Create with an id that already exists. */
  SystemAlreadyExists: 0xc037010f,
  /** Container not running. */
  SystemAlreadyStopped: 0xc0370110,
  /** ERROR_ACCESS_DENIED. */
  AccessDenied: 0x00000005,
  /** ERROR_INVALID_HANDLE. */
  InvalidHandle: 0x00000006,
  /** ERROR_INVALID_DATA. */
  InvalidData: 0x0000000d,
  /** ERROR_NOT_SUPPORTED. */
  NotSupported: 0x00000032,
  /** ERROR_PROC_NOT_FOUND. */
  ProcNotFound: 0x0000007f,
  /** ERROR_NOT_FOUND (what `hcs.IsNotExist` knows; differs from the guest's {@link HResult.NotFound}). */
  ElementNotFound: 0x00000490
} as const

/** The type of {@link HResultName}. */
export type HResultName = keyof typeof HResult

const names = new Map<number, HResultName>(
  (Object.keys(HResult) as Array<HResultName>).map((name) => [HResult[name], name])
)

/** The catalogue name of a code (signed or unsigned), e.g. `"SystemNotFound"`. */
export const hresultName = (code: number): string | undefined => names.get(code >>> 0)

/** An HRESULT as an unsigned 32-bit number (`-1070137074` → `0xc037010e`). */
export const toUnsigned = (code: number): number => code >>> 0

/** An HRESULT as the signed int32 the wire carries (`0xc037010e` → `-1070137074`). */
export const toSigned = (code: number): number => code | 0

/**
 * Whether a code means failure. Like the Go host, any non-zero value fails, even a positive "success with
 * information" code.
 */
export const isFailure = (code: number): boolean => code >>> 0 !== 0

/** `0x`-prefixed lowercase eight-digit hex, as the guest prints codes (`0xc037010e`). */
export const formatHResult = (code: number): string => "0x" + (code >>> 0).toString(16).padStart(8, "0")
