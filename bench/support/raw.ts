/**
 * The raw references: the host ends of a bare `net` AF_UNIX socket to an echo
 * or stream peer process, with no protocol work at either end — the floors
 * under the RPC and stdio figures.
 */
import * as net from "node:net"
import { hrtime } from "node:process"
import { startPeer } from "./peerProcess.js"
import { count, pump } from "./wire.js"

/** An echo connection to a peer process. */
export interface RawEcho {
  /** `count` round trips, one in flight; each one's latency in µs goes to `latencies`. */
  readonly sequential: (count: number, latencies: Float64Array) => Promise<void>
  /**
   * `count` round trips with `depth` frames in flight, refilled as they come
   * back: with `batched`, all frames that came back in one read are replaced
   * by one write; otherwise one write (one syscall) per frame.
   */
  readonly pipelined: (count: number, depth: number, batched: boolean) => Promise<void>
  readonly close: () => Promise<void>
}

/** Listens on `path`, starts the echo peer, and resolves once it is connected. */
export const rawEcho = async (path: string, frame: Buffer): Promise<RawEcho> => {
  const server = net.createServer()
  const accepted = new Promise<net.Socket>((resolve, reject) => {
    server.once("connection", resolve)
    server.once("error", reject)
  })
  await new Promise<void>((resolve) => server.listen(path, resolve))
  const peer = startPeer({ kind: "echo", path })
  const socket = await accepted
  server.close()
  socket.setNoDelay(true)
  const size = frame.length
  let onData: (chunk: Buffer) => void = () => {}
  socket.on("data", (chunk: Buffer) => onData(chunk))

  const sequential = (count: number, latencies: Float64Array): Promise<void> =>
    new Promise((resolve) => {
      let done = 0
      let bytes = 0
      let t0 = hrtime.bigint()
      onData = (chunk) => {
        bytes += chunk.length
        if (bytes < size) return
        bytes -= size
        latencies[done] = Number(hrtime.bigint() - t0) / 1000
        if (++done === count) return resolve()
        t0 = hrtime.bigint()
        socket.write(frame)
      }
      socket.write(frame)
    })

  const pipelined = (count: number, depth: number, batched: boolean): Promise<void> =>
    new Promise((resolve) => {
      let sent = 0
      let done = 0
      let bytes = 0
      const send = (n: number) => {
        if (n <= 0) return
        sent += n
        if (batched) socket.write(n === 1 ? frame : Buffer.concat(Array.from({ length: n }, () => frame)))
        else for (let i = 0; i < n; i++) socket.write(frame)
      }
      onData = (chunk) => {
        bytes += chunk.length
        const back = Math.floor(bytes / size)
        if (back === 0) return
        bytes -= back * size
        done += back
        if (done >= count) return resolve()
        send(Math.min(back, count - sent))
      }
      send(Math.min(depth, count))
    })

  const close = async () => {
    socket.destroy()
    await peer.stop()
  }
  return { sequential, pipelined, close }
}

/** The raw stream peer and its two drivers, each over a fresh connection. */
export interface RawStream {
  /** Receives `bytes` from the peer (it writes them in 64 KiB writes); rejects when the count differs. */
  readonly receive: (bytes: number) => Promise<void>
  /** Sends `bytes` to the peer in 64 KiB writes; rejects when the peer's count differs. */
  readonly send: (bytes: number) => Promise<void>
  readonly close: () => Promise<void>
}

/** Opens a connection to `path`, sends `command` and resolves with what came back by the end. */
const exchange = (
  path: string,
  command: string,
  bytes: number,
  check: (received: string, n: number) => boolean
) =>
  new Promise<void>((resolve, reject) => {
    const socket = net.createConnection(path, () => {
      socket.write(`${command}\n`)
      if (command === "sink") pump(socket, bytes)
    })
    socket.once("error", reject)
    let answer = ""
    if (command === "sink") socket.on("data", (chunk: Buffer) => (answer += chunk.toString("latin1")))
    count(socket, (n) => {
      socket.end()
      if (check(answer.trim(), n)) resolve()
      else reject(new Error(`raw stream ${command}: ${answer.trim() || n} of ${bytes} bytes`))
    })
  })

/** Starts the stream peer listening on `path` and waits until it is ready. */
export const rawStream = async (path: string): Promise<RawStream> => {
  const peer = startPeer({ kind: "stream", path })
  const deadline = Date.now() + 30_000
  while (!peer.output().includes("ready")) {
    if (Date.now() > deadline) throw new Error(`stream peer did not start:\n${peer.output()}`)
    await new Promise((r) => setTimeout(r, 5))
  }
  return {
    receive: (bytes) => exchange(path, `source ${bytes}`, bytes, (_, n) => n === bytes),
    send: (bytes) => exchange(path, "sink", bytes, (answer) => Number(answer) === bytes),
    close: async () => {
      await exchange(path, "quit", 0, () => true).catch(() => undefined)
      await peer.stop()
    }
  }
}
