/**
 * The host end of the raw stream reference: the stream peer process and two
 * drivers over a fresh `net` AF_UNIX connection per run — receive N bytes
 * (the peer writes them in 64 KiB writes), or send N bytes in 64 KiB writes
 * honouring `drain` and read back the peer's count.
 */
import * as net from "node:net"
import { startPeer } from "./peerProcess.js"

const ChunkSize = 64 * 1024

/** The raw stream peer and its two drivers. */
export interface RawStream {
  /** Receives `bytes` from the peer; rejects when the count differs. */
  readonly receive: (bytes: number) => Promise<void>
  /** Sends `bytes` to the peer; rejects when the peer's count differs. */
  readonly send: (bytes: number) => Promise<void>
  readonly close: () => Promise<void>
}

const connect = (path: string, command: string): Promise<net.Socket> =>
  new Promise((resolve, reject) => {
    const socket = net.createConnection(path, () => {
      socket.off("error", reject)
      socket.write(`${command}\n`)
      resolve(socket)
    })
    socket.once("error", reject)
  })

/** Starts the stream peer listening on `path` and waits until it is ready. */
export const rawStream = async (path: string): Promise<RawStream> => {
  const peer = startPeer("streamPeer", { path })
  const deadline = Date.now() + 30_000
  while (!peer.output().includes("ready")) {
    if (Date.now() > deadline) throw new Error(`stream peer did not start:\n${peer.output()}`)
    await new Promise((r) => setTimeout(r, 5))
  }
  const receive = async (bytes: number): Promise<void> => {
    const socket = await connect(path, `source ${bytes}`)
    await new Promise<void>((resolve, reject) => {
      let received = 0
      socket.on("data", (chunk: Buffer) => {
        received += chunk.length
      })
      socket.on("end", () => {
        socket.end()
        if (received === bytes) resolve()
        else reject(new Error(`raw stream: received ${received} of ${bytes}`))
      })
      socket.on("error", reject)
    })
  }
  const send = async (bytes: number): Promise<void> => {
    const socket = await connect(path, "sink")
    const block = Buffer.alloc(ChunkSize)
    await new Promise<void>((resolve, reject) => {
      let answer = ""
      socket.on("data", (chunk: Buffer) => {
        answer += chunk.toString("latin1")
      })
      socket.on("end", () => {
        if (Number(answer.trim()) === bytes) resolve()
        else reject(new Error(`raw stream: peer counted ${answer.trim()} of ${bytes}`))
      })
      socket.on("error", reject)
      let sent = 0
      const pump = () => {
        while (sent < bytes) {
          const size = Math.min(ChunkSize, bytes - sent)
          sent += size
          if (!socket.write(size === ChunkSize ? block : block.subarray(0, size)))
            return void socket.once("drain", pump)
        }
        socket.end()
      }
      pump()
    })
  }
  return {
    receive,
    send,
    close: async () => {
      await connect(path, "quit")
        .then((s) => s.on("error", () => {}))
        .catch(() => undefined)
      await peer.stop()
    }
  }
}
