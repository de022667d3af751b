/**
 * The seed corpus: the frames of the Go wire vectors (byte-exact frames made
 * by the genuine hcsshim code), split by direction and parsed once.
 */
import { readFileSync } from "node:fs"
import { MessageType } from "@gcs-bridge/protocol"

type ProcName = MessageType.ProcName

/** One vector frame. */
export interface SeedFrame {
  readonly name: string
  readonly direction: "host->guest" | "guest->host"
  readonly type: number
  /** The procedure name, or "ContainerNotification" for the notification. */
  readonly proc: ProcName | "ContainerNotification"
  readonly frame: Uint8Array
  readonly payload: Uint8Array
  /** The payload parsed as JSON. */
  readonly json: unknown
}

/** The corpus, by role. */
export interface Corpus {
  readonly all: ReadonlyArray<SeedFrame>
  /** Responses and notifications (what a host decodes). */
  readonly inbound: ReadonlyArray<SeedFrame>
  /** Requests (what a guest decodes). */
  readonly requests: ReadonlyArray<SeedFrame>
}

const isProc = (name: string): name is ProcName =>
  (MessageType.procNames as ReadonlyArray<string>).includes(name)

/** Reads the vectors file at `path`. */
export const loadCorpus = (path: string): Corpus => {
  const entries = JSON.parse(readFileSync(path, "utf8")) as ReadonlyArray<{
    readonly name: string
    readonly direction: "host->guest" | "guest->host"
    readonly msgType: number
    readonly procName: string
    readonly frameHex: string
    readonly payloadHex: string
  }>
  const all = entries.map((e): SeedFrame => {
    const payload = Uint8Array.from(Buffer.from(e.payloadHex, "hex"))
    const proc =
      e.procName === "ContainerNotification" || !isProc(e.procName) ? "ContainerNotification" : e.procName
    return {
      name: e.name,
      direction: e.direction,
      type: e.msgType >>> 0,
      proc,
      frame: Uint8Array.from(Buffer.from(e.frameHex, "hex")),
      payload,
      json: JSON.parse(Buffer.from(payload).toString("utf8")) as unknown
    }
  })
  return {
    all,
    inbound: all.filter((f) => f.direction === "guest->host"),
    requests: all.filter((f) => f.direction === "host->guest")
  }
}
