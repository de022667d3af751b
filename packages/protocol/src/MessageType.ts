/**
 * The 32-bit message type word (§3): `class<<28 | category<<20 | opId<<8 | version`. All values here are
 * unsigned numbers (`>>> 0`), so they compare equal to what a `DataView.getUint32` reads from a header.
 */

/** Message classes, the top four bits of the type word. */
export const MessageClass = {
  Request: 0x10000000,
  Response: 0x20000000,
  Notification: 0x30000000
} as const

/** The type of {@link MessageClass}. */
export type MessageClass = (typeof MessageClass)[keyof typeof MessageClass]

/** Mask of the class bits. */
export const ClassMask = 0xf0000000

/** RPC procedures: the type word without its class bits (`category | opId<<8 | 1`), as §3.2. */
export const Proc = {
  Create: 0x00100101,
  Start: 0x00100201,
  ShutdownGraceful: 0x00100301,
  ShutdownForced: 0x00100401,
  ExecuteProcess: 0x00100501,
  WaitForProcess: 0x00100601,
  SignalProcess: 0x00100701,
  ResizeConsole: 0x00100801,
  GetProperties: 0x00100901,
  ModifySettings: 0x00100a01,
  NegotiateProtocol: 0x00100b01,
  DumpStacks: 0x00100c01,
  DeleteContainerState: 0x00100d01,
  UpdateContainer: 0x00100e01,
  LifecycleNotification: 0x00100f01,
  ModifyServiceSettings: 0x00200101
} as const

/** Name of an RPC procedure. */
export type ProcName = keyof typeof Proc

/** Every procedure name, in wire order. */
export const procNames: ReadonlyArray<ProcName> = Object.keys(Proc) as Array<ProcName>

/** The container (exit) notification type word, the only notification defined (§3.3). */
export const NotifyContainer = 0x30100101

/** The vsock port the Linux GCS dials for the bridge. */
export const LinuxGcsVsockPort = 0x40000000

/** The first port of the per-connection stdio counter (§11.4). */
export const FirstStdioPort = 0x40000001

const procByValue = new Map<number, ProcName>(procNames.map((name) => [Proc[name], name]))

/** Request type word of a procedure, e.g. `requestType(Proc.Create) === 0x10100101`. */
export const requestType = (proc: number): number => (MessageClass.Request | (proc & 0x0fffffff)) >>> 0

/** Response type word of a procedure; guests build it as `0x20000000 | (requestType & 0x0FFFFFFF)` (§3.5). */
export const responseType = (proc: number): number => (MessageClass.Response | (proc & 0x0fffffff)) >>> 0

/** The class bits of a type word (`0` when invalid). */
export const classOf = (type: number): number => (type & ClassMask) >>> 0

/** The procedure bits of a type word (category, op id and version). */
export const procOf = (type: number): number => (type & 0x0fffffff) >>> 0

/** The name of a procedure value, `undefined` for a value outside §3.2. */
export const procName = (proc: number): ProcName | undefined => procByValue.get(procOf(proc))

const hex = (n: number): string => "0x" + (n >>> 0).toString(16)

/**
 * Human-readable form of a type word, as the Go host prints it: `"Request(Create)"`, `"Notify(Container)"`,
 * `"Response(0x20000000)"`.
 */
export const typeName = (type: number): string => {
  const cls = classOf(type)
  if (cls === MessageClass.Notification)
    return type >>> 0 === NotifyContainer ? "Notify(Container)" : `Notify(${hex(type)})`
  const label =
    cls === MessageClass.Request ? "Request" : cls === MessageClass.Response ? "Response" : undefined
  return label === undefined ? hex(type) : `${label}(${procName(procOf(type)) ?? hex(type)})`
}
