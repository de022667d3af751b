/**
 * The minimal responder (a peer process): dials the host's bridge port like a
 * guest, and answers every request frame with a canned success response
 * chosen by the request's type word alone — no JSON is parsed, so a benchmark
 * against it measures the host's own cost. NegotiateProtocol gets the Linux
 * GCS's genuine answer, ExecuteProcess a fresh fake pid, WaitForProcess is
 * either answered at once (exit code 0) or held forever (`holdWaits`: the
 * fake process stays "running"), everything else gets `{"Result":0,…}`.
 *
 * Argument: JSON `ResponderConfig`. Exits 0 once every connection has ended.
 */
import * as net from "node:net"
import { FrameScanner, NullContainerId, ResponseBit, frame, type RawFrame } from "./frames.js"

/** What the responder is told to do. */
export interface ResponderConfig {
  /** Unix socket paths of the host's bridge listeners (one connection each). */
  readonly paths: ReadonlyArray<string>
  /** Never answer WaitForProcess, so that every exec'd fake process stays live. */
  readonly holdWaits: boolean
}

const ProcNegotiate = 0x00100b01
const ProcExecute = 0x00100501
const ProcWait = 0x00100601

const negotiated = Buffer.from(
  `{"Result":0,"ActivityId":"${NullContainerId}","Version":4,"Capabilities":{"SupportedSchemaVersions":` +
    `[{"Major":2,"Minor":1}],"RuntimeOsType":"Linux","GuestDefinedCapabilities":{"NamespaceAddRequestSupported":true,` +
    `"SignalProcessSupported":true,"DumpStacksSupported":true,"DeleteContainerStateSupported":true}}}`
)
const success = Buffer.from(`{"Result":0,"ActivityId":"${NullContainerId}"}`)
const exited = Buffer.from(`{"Result":0,"ActivityId":"${NullContainerId}","ExitCode":0}`)

const config = JSON.parse(process.argv[2] ?? "{}") as ResponderConfig
let nextPid = 1000
let open = config.paths.length

const serve = (socket: net.Socket): void => {
  let out: Array<Buffer> = []
  const answer = (request: RawFrame) => {
    const proc = request.type & 0x0fffffff
    const type = request.type + ResponseBit
    if (proc === ProcWait && config.holdWaits) return
    const payload =
      proc === ProcNegotiate
        ? negotiated
        : proc === ProcExecute
          ? Buffer.from(`{"Result":0,"ActivityId":"${NullContainerId}","ProcessId":${nextPid++}}`)
          : proc === ProcWait
            ? exited
            : success
    out.push(frame(type, request.id, payload))
  }
  const scanner = new FrameScanner(answer)
  socket.on("data", (chunk: Buffer) => {
    scanner.push(chunk)
    if (out.length === 0) return
    // Everything answerable in this chunk goes out in one write.
    socket.write(out.length === 1 ? out[0]! : Buffer.concat(out))
    out = []
  })
  socket.on("end", () => socket.end())
  socket.on("close", () => {
    if (--open === 0) process.exit(0)
  })
  socket.on("error", () => socket.destroy())
}

/** Dials `path`, retrying while the host is not listening yet. */
const dial = (path: string, deadline: number): void => {
  const socket = net.createConnection(path)
  socket.once("connect", () => {
    socket.removeAllListeners("error")
    serve(socket)
  })
  socket.once("error", (error: NodeJS.ErrnoException) => {
    if ((error.code === "ENOENT" || error.code === "ECONNREFUSED") && Date.now() < deadline) {
      setTimeout(() => dial(path, deadline), 2)
      return
    }
    console.error(`responder: cannot dial ${path}: ${error.message}`)
    process.exit(1)
  })
}

for (const path of config.paths) dial(path, Date.now() + 60_000)
