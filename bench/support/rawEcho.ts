/**
 * The host end of the raw echo reference: a `net` server on a Unix socket,
 * the echo peer process dialling it, and two drivers that send fixed-size
 * frames and count them back — one at a time, or with a window in flight.
 * No protocol work at either end: the floor under every RPC figure.
 */
import * as net from "node:net"
import { hrtime } from "node:process"
import { startPeer, type PeerProcess } from "./peerProcess.js"

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
  const peer: PeerProcess = startPeer("echoPeer", { path })
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

  return {
    sequential,
    pipelined,
    close: async () => {
      socket.end()
      socket.destroy()
      await peer.stop()
    }
  }
}
