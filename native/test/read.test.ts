/**
 * The read path: one read per wake-up takes all the kernel holds, straight
 * into the Buffers handed over, and delivers them in one `data` event (a
 * short rest as a view of a shared slab); readStop between events still
 * holds the peer back.
 */
import { afterEach, describe, expect, it } from "vitest"
import { ReadSize, SocketEvent } from "../lib/index.js"
import { closeAll, nextTurn, readAll, unixPair } from "./support.js"

afterEach(async () => {
  expect(await closeAll()).toBe(0)
})

/** `length` bytes that differ from one offset to the next, so misordering shows. */
const pattern = (length: number, seed: number): Buffer => {
  const bytes = Buffer.alloc(length)
  for (let i = 0; i < length; i++) bytes[i] = (i * 31 + seed * 7) & 0xff
  return bytes
}

describe("reading", () => {
  it("delivers all that many writes left in the kernel in one data event, in order, each Buffer exact-size", async () => {
    const { client, server } = await unixPair()
    const writes = Array.from({ length: 12 }, (_, i) => pattern(10_000, i))
    for (const write of writes) expect(client.write([write])).toBe(0)

    const events: Array<ReadonlyArray<Uint8Array>> = []
    server.setCallback((event, err, chunks) => {
      expect(err).toBeNull()
      if (event === SocketEvent.data) events.push(chunks!)
    })
    server.readStart()
    while (events.length === 0) await nextTurn()

    expect(events).toHaveLength(1)
    expect(Buffer.concat(events[0]!)).toEqual(Buffer.concat(writes))
    expect(events[0]!.map((chunk) => chunk.length)).toEqual([ReadSize, 120_000 - ReadSize])
    // Nothing handed over pins memory beyond its bytes (a partly filled Buffer is copied out).
    for (const chunk of events[0]!) expect(chunk.buffer.byteLength).toBe(chunk.length)
  })

  it("hands short reads over as views of a shared slab that later reads never overwrite", async () => {
    const { client, server } = await unixPair()
    const held: Array<Uint8Array> = []
    server.setCallback((event, err, chunks) => {
      expect(err).toBeNull()
      if (event === SocketEvent.data) held.push(...chunks!)
    })
    server.readStart()
    // One message per read, sizes 1..4096 bytes, enough of them to fill many 8 KiB slabs.
    const sent: Array<Buffer> = []
    for (let i = 0; i < 300; i++) {
      const message = pattern(1 + ((i * 997) % 4096), i)
      sent.push(message)
      client.write([message])
      while (held.length === i) await nextTurn()
    }
    expect(held.map((chunk) => Buffer.from(chunk))).toEqual(sent)
    // Each view keeps only its slab, the size of Node's Buffer pool.
    expect(held.every((chunk) => chunk.buffer.byteLength === 8 * 1024)).toBe(true)
    expect(new Set(held.map((chunk) => chunk.buffer)).size).toBeGreaterThan(1)
    expect(new Set(held.map((chunk) => chunk.buffer)).size).toBeLessThan(held.length)
  })

  it("reads nothing more after readStop inside a data event, until readStart", async () => {
    const { client, server } = await unixPair()
    const sent = pattern(1024 * 1024, 3)
    client.write([sent])
    expect(client.queued).toBeGreaterThan(0)

    const received: Array<Uint8Array> = []
    let events = 0
    server.setCallback((event, _err, chunks) => {
      if (event !== SocketEvent.data) return
      events++
      received.push(...chunks!)
      server.readStop()
    })
    server.readStart()
    while (events === 0) await nextTurn()
    for (let turn = 0; turn < 10; turn++) await nextTurn()
    expect(events).toBe(1)
    // The writer is held back: most of the megabyte is still queued in its engine.
    expect(client.queued).toBeGreaterThan(0)

    const rest = readAll(server)
    while (client.queued > 0) await nextTurn()
    client.shutdown()
    expect(Buffer.concat([...received, await rest])).toEqual(sent)
  })
})
