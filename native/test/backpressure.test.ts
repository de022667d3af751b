/**
 * Flow control: a stopped reader is not polled, so the kernel buffers fill,
 * bytes queue in the engine (which reports the exact count, so a caller's
 * high-water mark holds), and resuming drains everything, byte for byte.
 */
import { createHash, randomFillSync } from "node:crypto"
import { afterEach, describe, expect, it } from "vitest"
import type { NativeSocket } from "../lib/index.js"
import { ReadSize, SocketEvent } from "../lib/index.js"
import { closeAll, nextTurn, readAll, unixPair } from "./support.js"

afterEach(async () => {
  expect(await closeAll()).toBe(0)
})

const chunkSize = 64 * 1024

/** The high-water mark these callers keep (the transport's is the same). */
const highWaterMark = 64 * 1024

/** Writes `chunks` in order, waiting for drain above the high-water mark; resolves with the largest queue seen. */
const writeRespectingDrain = (
  socket: NativeSocket,
  chunks: ReadonlyArray<Uint8Array>,
  batch = 1
): Promise<number> =>
  new Promise((resolve, reject) => {
    let next = 0
    let peakQueue = 0
    const pump = (): void => {
      while (next < chunks.length) {
        const group = chunks.slice(next, next + batch)
        next += group.length
        const queued = socket.write(group)
        peakQueue = Math.max(peakQueue, queued)
        if (queued > highWaterMark) return
      }
      resolve(peakQueue)
    }
    socket.setCallback((event, err) => {
      if (event === SocketEvent.drain) pump()
      else if (event === SocketEvent.error) reject(err)
    })
    pump()
  })

/** Resolves at the socket's next drain (replacing its callback). */
const drained = (socket: NativeSocket): Promise<void> =>
  new Promise((resolve) => socket.setCallback((event) => event === SocketEvent.drain && resolve()))

describe("backpressure", () => {
  it("a stopped reader makes bytes queue in the engine, boundedly; resuming drains them", async () => {
    const { client, server } = await unixPair()
    let serverChunks = 0
    server.setCallback(() => serverChunks++)
    // The server never started reading: it is not polled for reads at all.

    const chunk = Buffer.alloc(chunkSize, 0x5a)
    let writes = 0
    let queued = 0
    while ((queued = client.write([chunk])) <= highWaterMark) {
      writes++
      if (writes > 10_000) throw new Error("write() never queued past the high-water mark")
    }
    writes++
    expect(queued).toBe(client.queued)
    expect(queued).toBeLessThanOrEqual(highWaterMark + chunk.length)

    // Loop turns pass; nothing is read, nothing drains, nothing grows.
    let drainedYet = false
    client.setCallback((event) => (drainedYet ||= event === SocketEvent.drain))
    for (let turn = 0; turn < 10; turn++) await nextTurn()
    expect(serverChunks).toBe(0)
    expect(drainedYet).toBe(false)
    expect(client.queued).toBe(queued)

    const received = readAll(server)
    while (!drainedYet) await nextTurn()
    expect(client.queued).toBe(0)
    client.shutdown()
    const all = await received
    expect(all.length).toBe(writes * chunk.length)
    expect(all.every((byte) => byte === 0x5a)).toBe(true)
  })

  it("copies queued bytes, so the caller may reuse or detach its buffer at once", async () => {
    const { client, server } = await unixPair()
    const filler = Buffer.alloc(chunkSize, 0)
    let total = 0
    while (client.write([filler]) === 0) total += filler.length
    total += filler.length

    // This chunk certainly lands in the engine's queue; then its memory is
    // overwritten and its ArrayBuffer detached.
    const marker = new Uint8Array(new ArrayBuffer(4096))
    marker.fill(0xab)
    client.write([marker.subarray(1024, 3072)])
    marker.fill(0xcd)
    structuredClone(marker.buffer, { transfer: [marker.buffer] })
    expect(marker.byteLength).toBe(0)

    const received = readAll(server)
    await drained(client)
    client.shutdown()
    const all = await received
    expect(all.length).toBe(total + 2048)
    expect(all.subarray(total).every((byte) => byte === 0xab)).toBe(true)
  })

  it("moves 64 MiB intact through a reader that keeps pausing, with write and writev", async () => {
    const { client, server } = await unixPair()
    const size = 64 * 1024 * 1024
    const source = randomFillSync(Buffer.allocUnsafe(size))
    const expected = createHash("sha256").update(source).digest("hex")
    const chunks: Array<Uint8Array> = []
    // Uneven chunk sizes, so reads and writes never line up.
    for (let at = 0, step = 0; at < size; step++) {
      const length = Math.min(size - at, 1000 + ((step * 7919) % (3 * chunkSize)))
      chunks.push(source.subarray(at, at + length))
      at += length
    }

    const hash = createHash("sha256")
    let bytes = 0
    let largestChunk = 0
    let mostBuffersInOneRead = 0
    let reads = 0
    const done = new Promise<void>((resolve, reject) => {
      server.setCallback((event, err, chunks) => {
        if (event === SocketEvent.error) return reject(err)
        if (event === SocketEvent.end) return resolve()
        if (chunks === null) return
        mostBuffersInOneRead = Math.max(mostBuffersInOneRead, chunks.length)
        for (const chunk of chunks) {
          hash.update(chunk)
          bytes += chunk.length
          largestChunk = Math.max(largestChunk, chunk.length)
        }
        // Every so often the consumer is "slow": stop, resume a turn later.
        if (++reads % 16 === 0) {
          server.readStop()
          setImmediate(() => server.readStart())
        }
      })
      server.readStart()
    })

    const half = Math.floor(chunks.length / 2)
    const peakSingle = await writeRespectingDrain(client, chunks.slice(0, half))
    const peakBatch = await writeRespectingDrain(client, chunks.slice(half), 4)
    if (client.queued > 0) await drained(client)
    client.shutdown()
    await done

    expect(bytes).toBe(size)
    expect(hash.digest("hex")).toBe(expected)
    expect(largestChunk).toBeLessThanOrEqual(ReadSize)
    // Reads found more than one Buffer's worth waiting and delivered it at once.
    expect(mostBuffersInOneRead).toBeGreaterThan(1)
    // The queue never held much more than the high-water mark plus one write.
    expect(peakSingle).toBeLessThanOrEqual(highWaterMark + 3 * chunkSize)
    expect(peakBatch).toBeLessThanOrEqual(highWaterMark + 4 * 3 * chunkSize)
  })

  it("reports the queue exactly, so any high-water mark holds", async () => {
    const { client, server } = await unixPair()
    const mark = 1024 * 1024
    const chunk = Buffer.alloc(chunkSize, 3)
    let writes = 0
    while (client.write([chunk]) <= mark) writes++
    writes++
    expect(client.queued).toBeGreaterThan(mark)
    expect(client.queued).toBeLessThanOrEqual(mark + chunkSize)
    const received = readAll(server)
    await drained(client)
    client.shutdown()
    expect((await received).length).toBe(writes * chunkSize)
  })
})
